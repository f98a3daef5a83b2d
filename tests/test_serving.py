"""The REST service: same scores as batch, documented errors for every malformed request, never a 500."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import make_bundle, synthetic_frame
from upgrade_predictor import serving
from upgrade_predictor.bundle import load_bundle
from upgrade_predictor.scoring.batch import score_file
from upgrade_predictor.scoring.scorer import Scorer
from upgrade_predictor.serving import limits

USER = {
    "student_country": "US",
    "days_on_platform": 10,
    "minutes_watched": 100.5,
    "courses_started": 2,
    "practice_exams_started": 1,
    "practice_exams_passed": 1,
    "minutes_spent_on_exams": 5.0,
}


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("srv"))


@pytest.fixture(scope="module")
def client(bundle_path) -> TestClient:
    app = serving.create_app(Scorer.load(bundle_path), max_body_bytes=64 * 1024)
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "threads, chunk_users",
    [(None, limits.CHUNK_USERS), (2, 64), (1, 64), (0, 64)],
    ids=["default", "chunked", "one-thread", "on-the-loop"],
)
def test_batch_and_online_agree(bundle_path, tmp_path, threads, chunk_users):
    app = serving.create_app(Scorer.load(bundle_path), threads=threads, chunk_users=chunk_users)
    users = synthetic_frame(200, seed=11).drop(columns="purchased")
    users.loc[0, "student_country"] = "NA"
    users.to_csv(tmp_path / "u.csv", index=False)
    score_file(Scorer.load(bundle_path), tmp_path / "u.csv", tmp_path / "out.csv")
    batch = pd.read_csv(tmp_path / "out.csv").sort_values("row")
    records = json.loads(users.to_json(orient="records"))
    with TestClient(app) as client:
        online = client.post("/predict", json=records)
        assert online.status_code == 200
        got = online.json()["predictions"]
        np.testing.assert_allclose([p["probability"] for p in got], batch["probability"], rtol=0, atol=1e-12)
        assert [p["decision"] for p in got] == batch["decision"].tolist()
        one = client.post("/predict", json=records[5]).json()
    assert one["probability"] == pytest.approx(batch["probability"].iloc[5], abs=1e-12)
    assert one["decision"] == batch["decision"].iloc[5]


def test_unknown_country_is_scored_with_a_warning(client):
    r = client.post("/predict", json={**USER, "student_country": "XQ"})
    assert r.status_code == 200
    assert "XQ" in r.json()["warnings"][0]


def test_one_user_with_a_large_body_is_answered_like_a_small_one(client):
    padded = {**USER, "notes": "x" * (limits.SMALL_BODY_BYTES + 1)}  # extra fields are ignored
    for query in ("", "?explain=true"):
        small, large = (client.post(f"/predict{query}", json=u) for u in (USER, padded))
        assert large.status_code == 200 and large.json() == small.json()


def test_explain_returns_three_signed_reasons(client):
    r = client.post("/predict?explain=true", json=USER).json()
    assert len(r["reasons"]) == 3 and all(s.split()[1][0] in "+-" for s in r["reasons"])


@pytest.mark.parametrize(
    "body, status, field",
    [
        ("{not json", 400, "not valid JSON"),
        ('"a string"', 422, "one user (a JSON object) or a list"),
        (json.dumps({**USER, "minutes_watched": -1}), 422, "minutes_watched"),
        (json.dumps({k: v for k, v in USER.items() if k != "courses_started"}), 422, "courses_started"),
        (json.dumps({**USER, "days_on_platform": "ten"}), 422, "days_on_platform"),
        (json.dumps({**USER, "courses_started": True}), 422, "courses_started"),
        (json.dumps({**USER, "student_country": 7}), 422, "student_country"),
        (json.dumps({**USER, "minutes_watched": None}), 422, "minutes_watched"),
        (json.dumps({**USER, "student_country": ""}), 422, "student_country"),
        (
            '{"student_country": "US", "days_on_platform": NaN, "minutes_watched": 1, "courses_started": 1, '
            '"practice_exams_started": 0, "practice_exams_passed": 0, "minutes_spent_on_exams": 0}',
            422,
            "days_on_platform",
        ),
        (json.dumps({**USER, "minutes_watched": 1e400}), 422, "minutes_watched"),
        (json.dumps([USER, {**USER, "practice_exams_passed": -2}]), 422, "[1].practice_exams_passed"),
        (json.dumps([USER] * 1000), 413, "request body over"),
    ],
)
def test_bad_requests_get_readable_errors(client, body, status, field):
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert field in r.json()["error"]


def test_chunked_huge_body_is_refused(client):
    def chunks():
        for _ in range(200):
            yield b" " * 1024

    r = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_health_model_and_docs(client):
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/model").json()
    assert info["metadata"]["threshold"] == 0.4 and "reference_profile" not in info["metadata"]
    assert info["card"].startswith("# Model card")
    spec = client.get("/openapi.json").json()
    assert "minutes_watched" in json.dumps(spec["components"]["schemas"])
    assert client.get("/docs").status_code == 200


def test_fields_are_named_from_structured_problems_even_with_spaces(tmp_path):
    path = make_bundle(tmp_path, rename={"student_country": "student country"})
    client = TestClient(serving.create_app(Scorer.load(path)), raise_server_exceptions=False)
    user = {**{k: v for k, v in USER.items() if k != "student_country"}, "student country": "US"}
    assert client.post("/predict", json=user).status_code == 200
    r = client.post("/predict", json=[user, {**user, "student country": None}])
    assert r.status_code == 422
    assert r.json()["details"] == [{"field": "[1].student country", "message": "student country is missing"}]
    spec = client.get("/openapi.json").json()["components"]["schemas"]["User"]
    assert set(spec["required"]) == {*USER} - {"student_country"} | {"student country"}
    assert spec["properties"]["minutes_watched"]["minimum"] == 0


def test_an_empty_list_is_answered_as_the_openapi_schema_says(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    lists = [v for v in body["anyOf"] if v.get("type") == "array"]
    assert len(lists) == 1 and lists[0]["items"] == {"$ref": "#/components/schemas/User"}
    r = client.post("/predict", json=[])
    if lists[0].get("minItems", 0) == 0:
        assert r.status_code == 200 and r.json() == {"predictions": []}
    else:
        assert r.status_code == 422 and "empty" in r.json()["error"]


def test_a_body_that_is_not_utf8_gets_the_documented_400(client):
    r = client.post("/predict", content=b'{"student_country": "\xff\xfe"}')
    assert r.status_code == 400 and "UTF-8" in r.json()["error"]
    responses = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["responses"]
    assert "400" in responses
    assert responses["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }


def malformed_requests() -> list[tuple[str, str, bytes]]:
    """Request kinds a client can get wrong: (name, query string, body)."""
    good = json.dumps(USER).encode()
    kinds: list[tuple[str, str, bytes]] = [
        ("empty body", "", b""),
        ("blank body", "", b"  \n "),
        ("not json", "", b"{not json"),
        ("truncated", "", good[:-5]),
        ("trailing garbage", "", good + b"x"),
        ("two objects", "", good + good),
        ("invalid utf-8", "", b'{"student_country": "\xc3\x28"}'),
        ("utf-16", "", json.dumps(USER).encode("utf-16")),
        ("utf-8 byte order mark", "", b"\xef\xbb\xbf" + good),
        ("nested too deep, small body", "", b"[" * 5_000 + b"]" * 5_000),
        ("nested too deep, large body", "", b"[" * 30_000 + b"]" * 30_000),
        ("objects nested too deep", "", b'{"a":' * 5_000 + b"1" + b"}" * 5_000),
        ("integer too long", "", b'{"days_on_platform": 1' + b"0" * 5000 + b"}"),
        ("a string", "", b'"user"'),
        ("a number", "", b"7"),
        ("null", "", b"null"),
        ("true", "", b"true"),
        ("list of numbers", "", b"[1, 2]"),
        ("list of lists", "", json.dumps([[USER]]).encode()),
        ("list with null", "", json.dumps([USER, None]).encode()),
        ("empty object", "", b"{}"),
        ("too many users", "", json.dumps([{}] * (limits.MAX_USERS + 1)).encode()),
        ("explain not a flag", "explain=maybe", good),
        ("lone surrogate", "", good.replace(b'"US"', b'"\\ud800"')),
        ("lone surrogate in a list", "", b"[" + good + b"," + good.replace(b'"US"', b'"x\\udc00"') + b"]"),
        ("NaN literal", "", good.replace(b"10", b"NaN", 1)),
        ("Infinity literal", "", good.replace(b"10", b"Infinity", 1)),
        ("-Infinity literal", "", good.replace(b"10", b"-Infinity", 1)),
    ]
    numeric = [k for k in USER if k != "student_country"]
    for name in numeric:
        for label, value in [
            ("text", "12"),
            ("true", True),
            ("list", [1]),
            ("object", {"a": 1}),
            ("negative", -1),
            ("overflow", 1e400),
            ("missing", None),
        ]:
            kinds.append((f"{name} {label}", "", json.dumps({**USER, name: value}).encode()))
    for label, value in [("number", 7), ("true", True), ("list", ["US"]), ("object", {}), ("empty", "")]:
        kinds.append(
            (f"student_country {label}", "", json.dumps({**USER, "student_country": value}).encode())
        )
    return kinds


def test_malformed_requests_get_a_4xx_with_a_message_never_a_5xx(client):
    kinds = malformed_requests()
    assert len(kinds) >= 65
    for name, query, body in kinds:
        r = client.post(f"/predict?{query}", content=body, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:200])
        assert isinstance(r.json()["error"], str) and r.json()["error"], name


def test_problems_are_named_across_the_chunks_of_a_large_request(bundle_path):
    app = serving.create_app(Scorer.load(bundle_path), chunk_users=64)
    users = json.loads(synthetic_frame(300, seed=3).drop(columns="purchased").to_json(orient="records"))
    users[5]["minutes_watched"] = -1
    users[200]["courses_started"] = -2
    r = TestClient(app).post("/predict", json=users)
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["details"]] == ["[5].minutes_watched", "[200].courses_started"]
    users[5]["minutes_watched"], users[200]["courses_started"] = 1.0, 1
    users[10]["student_country"], users[250]["days_on_platform"] = 7, "ten"
    r = TestClient(app).post("/predict", json=users)
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["details"]] == ["[10].student_country", "[250].days_on_platform"]


class GatedScorer(Scorer):
    """Holds every frame of more than `rows` rows until released, and records the size of each frame
    it scores, in order."""

    def __init__(self, path: Path, rows: int):
        super().__init__(load_bundle(path))
        self.rows = rows
        self.holding = threading.Event()
        self.release = threading.Event()
        self.sizes: list[int] = []

    def score_frame(self, df: pd.DataFrame, explain: bool = False):
        if len(df) > self.rows:
            self.holding.set()
            assert self.release.wait(60), "never released"
        self.sizes.append(len(df))
        return super().score_frame(df, explain)


def in_thread(client: TestClient, body: object) -> tuple[threading.Thread, dict]:
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(r=client.post("/predict", json=body)))
    t.start()
    return t, out


def wait_for(condition, what: str) -> None:
    """Poll until the condition holds (a generous deadline only guards against a hang)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


def test_a_full_queue_answers_503_with_retry_after(bundle_path):
    scorer = GatedScorer(bundle_path, rows=0)
    app = serving.create_app(scorer, threads=1, queue_size=1)
    with TestClient(app) as client:
        spec = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["responses"]
        assert "Retry-After" in spec["503"]["headers"]
        first, out = in_thread(client, USER)
        assert scorer.holding.wait(60)
        r = client.post("/predict", json=USER)
        assert r.status_code == 503 and "busy" in r.json()["error"]
        assert int(r.headers["Retry-After"]) >= 1
        scorer.release.set()
        first.join(60)
        assert out["r"].status_code == 200
        assert client.post("/predict", json=USER).status_code == 200  # the queue is free again


def test_a_small_request_is_answered_while_large_ones_are_scored(bundle_path):
    scorer = GatedScorer(bundle_path, rows=50)
    app = serving.create_app(scorer, threads=2, chunk_users=100)
    large = json.loads(synthetic_frame(300, seed=4).drop(columns="purchased").to_json(orient="records"))
    with TestClient(app) as client:
        # Two large requests: one is being scored (held), the other waits; neither takes the thread
        # that small requests need.
        running = [in_thread(client, large), in_thread(client, large)]
        assert scorer.holding.wait(60)
        wait_for(lambda: app.state.pool.waiting == 1, "the second large request waits")
        small = client.post("/predict", json=USER)
        assert small.status_code == 200 and "probability" in small.json()
        assert not any("r" in out for _, out in running)  # both large requests are still in work
        scorer.release.set()
        for t, _ in running:
            t.join(60)
    for _, out in running:
        assert out["r"].status_code == 200 and len(out["r"].json()["predictions"]) == 300


def test_one_thread_answers_small_requests_between_the_chunks_of_a_large_one(bundle_path):
    scorer = GatedScorer(bundle_path, rows=50)
    app = serving.create_app(scorer, threads=1, chunk_users=100)
    pool = app.state.pool
    large = json.loads(synthetic_frame(300, seed=4).drop(columns="purchased").to_json(orient="records"))
    with TestClient(app) as client:
        t_large, out_large = in_thread(client, large)
        assert scorer.holding.wait(60)  # the first chunk is being scored
        t_small, out_small = in_thread(client, USER)
        wait_for(lambda: pool.waiting == 1, "the small request waits")
        scorer.release.set()
        t_large.join(60)
        t_small.join(60)
    assert out_small["r"].status_code == 200 and out_large["r"].status_code == 200
    assert scorer.sizes == [100, 1, 100, 100]


class FailingScorer(GatedScorer):
    """A scorer with a bug that only some rows reach (minutes_watched 12345)."""

    def score_frame(self, df: pd.DataFrame, explain: bool = False):
        scored = super().score_frame(df, explain)
        if (df["minutes_watched"] == 12345).any():
            raise RuntimeError("a bug")
        return scored


def test_a_failure_in_a_batch_fails_only_the_request_that_caused_it(bundle_path):
    scorer = FailingScorer(bundle_path, rows=0)
    app = serving.create_app(scorer, threads=1)
    with TestClient(app) as client:
        first, _ = in_thread(client, USER)
        assert scorer.holding.wait(60)  # the thread is busy: the next three wait and form one batch
        others = [in_thread(client, {**USER, "minutes_watched": m}) for m in (1.0, 12345.0, 2.0)]
        wait_for(lambda: app.state.pool.waiting == 3, "three requests wait")
        scorer.release.set()
        for t, _ in [(first, None), *others]:
            t.join(60)
    assert scorer.sizes[:2] == [1, 3]
    assert [out["r"].status_code for _, out in others] == [200, 500, 200]


def test_concurrent_requests_each_get_their_own_answers(tmp_path):
    path = make_bundle(tmp_path, id_column="user_id")
    scorer = Scorer.load(path)
    users = synthetic_frame(240, seed=9).drop(columns="purchased")
    users.insert(0, "user_id", [f"c{i}" for i in range(len(users))])
    expected = scorer.score_frame(users).probability
    records = json.loads(users.to_json(orient="records"))
    app = serving.create_app(scorer, threads=2, chunk_users=16, small_body_bytes=2048)
    failures: list[str] = []

    def client_run(client: TestClient, k: int) -> None:
        # Each client sends its users one by one, then in lists of 3 (small) and of 40 (large).
        mine = list(range(k, len(records), 8))
        batches = [[i] for i in mine[:10]] + [mine[i : i + 3] for i in range(10, 19, 3)] + [mine[:30]]
        for batch in batches:
            r = client.post(
                "/predict", json=records[batch[0]] if len(batch) == 1 else [records[i] for i in batch]
            )
            got = [r.json()] if len(batch) == 1 else r.json()["predictions"]
            if [g["id"] for g in got] != [records[i]["user_id"] for i in batch]:
                failures.append(f"client {k}: ids {[g['id'] for g in got]} for {batch}")
            elif not np.allclose([g["probability"] for g in got], expected[batch], rtol=0, atol=1e-12):
                failures.append(f"client {k}: probabilities differ for {batch}")

    with TestClient(app) as client:
        workers = [threading.Thread(target=client_run, args=(client, k)) for k in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
    assert not failures, failures[:5]
