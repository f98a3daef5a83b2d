"""Who may ask the service: bearer tokens from a token file, /health open, the 401 documented, the
same scores with a token, and no open service on other interfaces unless asked for."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from conftest import make_bundle, run_cli, synthetic_frame
from test_serving import USER
from upgrade_predictor import serving
from upgrade_predictor.errors import InputError
from upgrade_predictor.scoring.scorer import Scorer
from upgrade_predictor.serving import startup
from upgrade_predictor.serving.access import check_bind, is_loopback, load_tokens

TOKEN = "s3cret-token-0123456789abcdef"
SECOND = "another.token_with~all+chars/ok=="


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _token_file(folder: Path, text: str, mode: int = 0o600) -> Path:
    path = folder / "tokens.txt"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("access"))


@pytest.fixture(scope="module")
def token_file(tmp_path_factory) -> Path:
    return _token_file(
        tmp_path_factory.mktemp("tokens"), f"# the service's tokens\n\n{TOKEN}\n  {SECOND}  \n"
    )


@pytest.fixture(scope="module")
def guarded(bundle_path, token_file) -> TestClient:
    app = serving.create_app(
        Scorer.load(bundle_path), max_body_bytes=64 * 1024, tokens=load_tokens(token_file)
    )
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def open_client(bundle_path) -> TestClient:
    return TestClient(serving.create_app(Scorer.load(bundle_path)), raise_server_exceptions=False)


@pytest.mark.parametrize(
    "headers, challenge",
    [
        ({}, "Bearer"),
        (_bearer("wrong-token-0123456789"), 'Bearer error="invalid_token"'),
        (_bearer(TOKEN[:-1]), 'Bearer error="invalid_token"'),
        (_bearer(TOKEN + "x"), 'Bearer error="invalid_token"'),
        ({"Authorization": f"Basic {TOKEN}"}, "Bearer"),
        ({"Authorization": "Bearer "}, "Bearer"),
    ],
    ids=["none", "wrong", "prefix", "longer", "basic", "empty"],
)
def test_a_request_without_an_accepted_token_gets_401_and_no_score(guarded, headers, challenge):
    for r in (
        guarded.post("/predict", json=USER, headers=headers),
        guarded.post("/predict?explain=true", json=[USER, USER], headers=headers),
        guarded.get("/model", headers=headers),
        guarded.get("/openapi.json", headers=headers),
        guarded.get("/docs", headers=headers),
        guarded.get("/no-such-path", headers=headers),
    ):
        assert r.status_code == 401, r.request.url
        assert r.headers["www-authenticate"] == challenge
        body = r.json()
        assert set(body) == {"error"} and TOKEN not in body["error"]
        assert "probability" not in r.text and "card" not in r.text


def test_an_unauthenticated_body_is_refused_before_it_is_read(guarded):
    r = guarded.post("/predict", content=b"x" * (128 * 1024), headers={"content-type": "application/json"})
    assert r.status_code == 401


def test_with_a_token_the_answers_are_those_of_the_open_service(guarded, open_client):
    users = json.loads(synthetic_frame(120, seed=5).drop(columns="purchased").to_json(orient="records"))
    for token in (TOKEN, SECOND):
        for query, body in (("", USER), ("", users), ("?explain=true", users[:10]), ("", [])):
            got = guarded.post(f"/predict{query}", json=body, headers=_bearer(token))
            want = open_client.post(f"/predict{query}", json=body)
            assert got.status_code == want.status_code == 200
            assert got.json() == want.json()
        assert guarded.get("/model", headers=_bearer(token)).json() == open_client.get("/model").json()
    # the scheme is case-insensitive; problems in the body are still named as without tokens
    bad = {**USER, "minutes_watched": "a lot"}
    got = guarded.post("/predict", json=bad, headers={"Authorization": f"bearer {TOKEN}"})
    assert got.status_code == 422 and got.json() == open_client.post("/predict", json=bad).json()


def test_health_stays_open(guarded):
    r = guarded.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_the_openapi_schema_documents_the_bearer_scheme_and_the_401(guarded, open_client):
    spec = guarded.get("/openapi.json", headers=_bearer(TOKEN)).json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "a token of the service's --token-file",
    }
    for path, method in (("/predict", "post"), ("/model", "get")):
        operation = spec["paths"][path][method]
        assert operation["security"] == [{"bearer": []}]
        assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
        assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
    health = spec["paths"]["/health"]["get"]
    assert "security" not in health and "401" not in health["responses"]
    assert guarded.get("/docs", headers=_bearer(TOKEN)).status_code == 200
    # without tokens, the schema is as it was
    plain = open_client.get("/openapi.json").json()
    assert "securitySchemes" not in plain["components"]
    assert "401" not in plain["paths"]["/predict"]["post"]["responses"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "holds no token"),
        ("# only a comment\n\n   \n", "holds no token"),
        ("short-secret\n", "line 1 .* shorter than 16 characters"),
        (f"{TOKEN}\nwith space inside the token\n", "line 2 .* is not a token"),
        (f"{TOKEN}\ntoken-with-ünïcode-characters\n", "line 2 .* is not a token"),
    ],
    ids=["empty", "comments-only", "short", "space", "non-ascii"],
)
def test_a_token_file_without_usable_tokens_is_refused(tmp_path, text, message):
    path = _token_file(tmp_path, text)
    with pytest.raises(InputError, match=message) as e:
        load_tokens(path)
    assert str(path) in str(e.value)
    for secret in ("short-secret", "with space", "ünïcode", TOKEN):
        assert secret not in str(e.value)


def test_an_unreadable_token_file_is_refused_by_name(tmp_path):
    with pytest.raises(InputError, match="cannot read the token file .*missing.txt"):
        load_tokens(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="cannot read the token file"):
        load_tokens(tmp_path)
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe" + TOKEN.encode())
    with pytest.raises(InputError, match="not UTF-8"):
        load_tokens(tmp_path / "binary.txt")


def test_a_token_file_others_can_read_is_flagged_and_the_tokens_are_not_kept(tmp_path):
    private = load_tokens(_token_file(tmp_path, TOKEN, 0o600))
    shared = load_tokens(_token_file(tmp_path, TOKEN, 0o644))
    assert not private.readable_by_others and shared.readable_by_others
    assert TOKEN not in repr(private) and TOKEN.encode() not in b"".join(private.digests)
    assert private.accept(TOKEN.encode()) and not private.accept(TOKEN.encode()[:-1])


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.4", False),
        ("example.org", False),
    ],
)
def test_only_loopback_serves_without_a_token(token_file, host, loopback):
    assert is_loopback(host) is loopback
    assert check_bind(host, load_tokens(token_file), insecure=False) is None
    if loopback:
        assert check_bind(host, None, insecure=False) is None
        return
    with pytest.raises(
        InputError, match="refusing to listen on .* without a token.*--token-file.*--insecure"
    ):
        check_bind(host, None, insecure=False)
    assert "without a token (--insecure)" in (check_bind(host, None, insecure=True) or "")


def test_serve_refuses_other_interfaces_without_a_token(bundle_path, tmp_path):
    refused = run_cli("serve", str(bundle_path), "--host", "0.0.0.0")
    assert refused.returncode == 2, refused.stderr
    assert "refusing to listen on 0.0.0.0 without a token" in refused.stderr
    short = _token_file(tmp_path, "# mine\nshort-secret\n")
    bad = run_cli("serve", str(bundle_path), "--host", "0.0.0.0", "--token-file", str(short))
    assert bad.returncode == 2 and "shorter than 16 characters" in bad.stderr
    # a usable file others can read: a warning naming the file; then the missing model stops it
    shared = _token_file(tmp_path, TOKEN + "\n", 0o644)
    warned = run_cli("serve", str(tmp_path / "no.zip"), "--host", "0.0.0.0", "--token-file", str(shared))
    assert warned.returncode == 2 and "can be read by other users" in warned.stderr
    for result in (refused, bad, warned):
        assert "Traceback" not in result.stderr
        for secret in ("short-secret", TOKEN):
            assert secret not in result.stdout + result.stderr


def test_workers_read_the_token_file_named_by_the_environment(bundle_path, token_file, monkeypatch):
    seen: dict = {}
    monkeypatch.setattr(startup.uvicorn, "run", lambda *args, **kwargs: seen.update(args=args, kwargs=kwargs))
    for name in (
        startup.MODEL_ENV,
        startup.TOKENS_ENV,
        startup.LIMIT_ENV,
        startup.THREADS_ENV,
        startup.QUEUE_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    scorer = Scorer.load(bundle_path)
    serving.serve(
        scorer, host="0.0.0.0", workers=2, model_path=str(bundle_path), tokens=load_tokens(token_file)
    )
    assert os.environ[startup.TOKENS_ENV] == str(token_file.absolute())
    assert seen["kwargs"]["workers"] == 2 and seen["kwargs"]["access_log"] is False
    assert TOKEN not in repr(seen) and not [k for k, v in os.environ.items() if TOKEN in v or SECOND in v]
    with TestClient(startup.app_from_env()) as worker:
        assert worker.post("/predict", json=USER).status_code == 401
        assert worker.post("/predict", json=USER, headers=_bearer(SECOND)).status_code == 200
    with pytest.raises(InputError, match="refusing to listen on 0.0.0.0"):
        serving.serve(scorer, host="0.0.0.0", workers=2, model_path=str(bundle_path))


def test_tokens_never_reach_a_log_line(bundle_path, token_file, caplog):
    """uvicorn with its access log on (the service turns it off): the lines name the path, never a token."""
    app = serving.create_app(Scorer.load(bundle_path), tokens=load_tokens(token_file))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, log_level="debug", access_log=True
    )
    server = uvicorn.Server(config)
    caplog.set_level(logging.DEBUG)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        statuses = []
        for token in (TOKEN, "wrong-token-0123456789", None):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/predict",
                data=json.dumps(USER).encode(),
                headers={"Content-Type": "application/json", **(_bearer(token) if token else {})},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    statuses.append(answer.status)
            except urllib.error.HTTPError as e:
                statuses.append(e.code)
    finally:
        server.should_exit = True
        thread.join(30)
    assert statuses == [200, 401, 401]
    access = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert len(access) == 3 and all("/predict" in line for line in access)
    assert TOKEN not in caplog.text and "wrong-token-0123456789" not in caplog.text
