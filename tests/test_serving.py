"""The REST service: same scores as batch, documented errors for every malformed request, never a 500."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import make_bundle, synthetic_frame
from upgrade_predictor import serving
from upgrade_predictor.scoring.batch import score_file
from upgrade_predictor.scoring.scorer import Scorer

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


def test_batch_and_online_agree(client, bundle_path, tmp_path):
    users = synthetic_frame(200, seed=11).drop(columns="purchased")
    users.loc[0, "student_country"] = "NA"
    users.to_csv(tmp_path / "u.csv", index=False)
    score_file(Scorer.load(bundle_path), tmp_path / "u.csv", tmp_path / "out.csv")
    batch = pd.read_csv(tmp_path / "out.csv").sort_values("row")["probability"].to_numpy()
    records = json.loads(users.to_json(orient="records"))
    online = client.post("/predict", json=records)
    assert online.status_code == 200
    got = np.array([p["probability"] for p in online.json()["predictions"]])
    np.testing.assert_allclose(got, batch, rtol=0, atol=1e-12)
    one = client.post("/predict", json=records[5]).json()
    assert one["probability"] == pytest.approx(batch[5], abs=1e-12)
    assert one["decision"] == int(batch[5] >= one["threshold"])


def test_unknown_country_is_scored_with_a_warning(client):
    r = client.post("/predict", json={**USER, "student_country": "XQ"})
    assert r.status_code == 200
    assert "XQ" in r.json()["warnings"][0]


def test_explain_returns_three_signed_reasons(client):
    r = client.post("/predict?explain=true", json=USER).json()
    assert len(r["reasons"]) == 3 and all(s.split()[1][0] in "+-" for s in r["reasons"])


@pytest.mark.parametrize(
    "body, status, field",
    [
        ("{not json", 422, "not valid JSON"),
        ('"a string"', 422, "one user (a JSON object) or a list"),
        ("[]", 422, "empty"),
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
