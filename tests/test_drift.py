"""Drift: PSI, new categories, range violations, and the command's exit code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import make_bundle, synthetic_frame
from upgrade_predictor import drift, profile
from upgrade_predictor.cli import app
from upgrade_predictor.dataset import load_dataset
from upgrade_predictor.drift_report import DriftCheck
from upgrade_predictor.errors import InputError
from upgrade_predictor.scoring.scorer import Scorer


def test_psi_matches_the_formula():
    assert profile.psi([10, 20, 70], [10, 20, 70]) == 0
    # hand-computed: (0.5-0.2)ln(0.5/0.2) + (0.2-0.3)ln(0.2/0.3) + (0.3-0.5)ln(0.3/0.5)
    want = 0.3 * np.log(2.5) - 0.1 * np.log(2 / 3) - 0.2 * np.log(0.6)
    assert profile.psi([20, 30, 50], [50, 20, 30]) == pytest.approx(want)
    assert np.isfinite(profile.psi([10, 0], [0, 10]))  # empty bins are floored, not infinite


def test_profile_is_json_and_bins_hold_every_row(synthetic_csv):
    ds = load_dataset(synthetic_csv)
    prof = profile.reference_profile(ds.X, np.linspace(0, 1, ds.n), ds.schema)
    stored = json.loads(json.dumps(prof.to_dict()))  # stored in the bundle's metadata
    assert profile.ReferenceProfile.from_dict(stored) == prof
    m = prof.features["minutes_watched"]
    assert isinstance(m, profile.NumericProfile)
    assert sum(m.counts) == ds.n and len(m.counts) == len(m.cuts) + 1
    assert m.max == ds.X["minutes_watched"].max()
    c = prof.features["student_country"]
    assert isinstance(c, profile.CategoricalProfile)
    assert sum(c.counts.values()) + c.other == ds.n and "NA" in c.counts
    assert sum(prof.score.counts) == ds.n
    assert list(stored) == ["rows", "bins", "features", "score"]
    assert list(stored["features"]["minutes_watched"]) == ["kind", "cuts", "counts", "missing", "min", "max"]
    assert list(stored["features"]["student_country"]) == ["kind", "counts", "other", "known"]


def test_a_profile_with_an_unknown_or_missing_key_is_refused_by_name(synthetic_csv):
    ds = load_dataset(synthetic_csv)
    stored = profile.reference_profile(ds.X, np.linspace(0, 1, ds.n), ds.schema).to_dict()
    stored["features"]["minutes_watched"]["maxx"] = 3
    with pytest.raises(InputError, match="features.minutes_watched: unknown key `maxx`"):
        profile.ReferenceProfile.from_dict(stored)
    del stored["features"]["minutes_watched"]["maxx"], stored["features"]["minutes_watched"]["missing"]
    with pytest.raises(InputError, match="features.minutes_watched: no `missing`"):
        profile.ReferenceProfile.from_dict(stored)


def test_same_data_is_stable_and_shifted_data_is_flagged(synthetic_csv):
    ds = load_dataset(synthetic_csv)
    p = np.random.default_rng(0).random(ds.n)
    prof = profile.reference_profile(ds.X, p, ds.schema)
    same = drift.compare(prof, ds.X, p, ds.schema)
    assert not same.drifted and all(f.psi is not None and f.psi < 1e-9 for f in same.features)
    shifted = ds.X.copy()
    shifted["minutes_watched"] = shifted["minutes_watched"] * 10
    shifted.loc[: ds.n // 10, "student_country"] = "XX"
    rep = drift.compare(prof, shifted, p, ds.schema)
    by = {f["feature"]: f for f in rep.to_dict()["features"]}
    assert by["minutes_watched"]["psi"] >= drift.PSI_ALERT and by["minutes_watched"]["above_max"] > 0
    assert by["student_country"]["new_categories"] == {"XX": ds.n // 10 + 1}
    assert by["days_on_platform"]["psi"] < 1e-9
    assert rep.drifted and any("never seen" in a for a in rep.alerts)


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("drift"))


def test_cli_exit_codes_and_json(bundle_path, tmp_path):
    runner = CliRunner()
    same = synthetic_frame(800, seed=1).drop(columns="purchased")
    same.to_csv(tmp_path / "same.csv", index=False)
    ok = runner.invoke(
        app, ["drift", str(bundle_path), str(tmp_path / "same.csv"), "--out", str(tmp_path / "a.json")]
    )
    assert ok.exit_code == 0, ok.output
    assert not json.loads((tmp_path / "a.json").read_text())["drifted"]
    moved = same.copy()
    moved["days_on_platform"] = moved["days_on_platform"] + 400
    moved.loc[0, "minutes_watched"] = -5  # rejected, counted, left out
    moved.to_csv(tmp_path / "moved.csv", index=False)
    bad = runner.invoke(
        app, ["drift", str(bundle_path), str(tmp_path / "moved.csv"), "--out", str(tmp_path / "b.json")]
    )
    assert bad.exit_code == 1
    rep = json.loads((tmp_path / "b.json").read_text())
    assert rep["rows_rejected"] == 1 and rep["rows"] == 799
    assert any(a.startswith("days_on_platform") for a in rep["alerts"])
    assert "days_on_platform" in bad.output


def test_drift_without_a_profile_is_an_input_error(bundle_path, tmp_path):
    scorer = Scorer.load(bundle_path)
    scorer.bundle.metadata.reference_profile = None
    pd.DataFrame([{"a": 1}]).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(InputError, match="reference profile"):
        drift.check_file(scorer, tmp_path / "x.csv")


def test_batch_by_batch_equals_all_at_once(synthetic_csv):
    ds = load_dataset(synthetic_csv)
    p = np.random.default_rng(1).random(ds.n)
    prof = profile.reference_profile(ds.X.iloc[:300], p[:300], ds.schema)
    whole = drift.compare(prof, ds.X, p, ds.schema).to_dict()
    tally = drift.Tally(prof, ds.schema)
    for part in (slice(0, 250), slice(250, None)):
        tally.add(ds.X.iloc[part], p[part])
    parts = tally.report().to_dict()
    assert parts["score"].pop("mean") == pytest.approx(whole["score"].pop("mean"))
    assert parts == whole


def test_a_folder_of_parts_drifts_like_the_whole_file_and_names_rejects_by_id(bundle_path, tmp_path):
    df = synthetic_frame(900, seed=4).drop(columns="purchased")
    df.insert(0, "user_id", [f"u{i}" for i in range(900)])
    df.loc[[10, 700], "minutes_watched"] = -5.0
    df.loc[500, "user_id"] = "u3"
    df.to_csv(tmp_path / "whole.csv", index=False)
    (tmp_path / "parts").mkdir()
    for i, s in enumerate(range(0, 900, 400)):
        df.iloc[s : s + 400].to_parquet(tmp_path / "parts" / f"p{i}.parquet", index=False)
    scorer = Scorer.load(bundle_path)
    checked = drift.check_file(scorer, tmp_path / "whole.csv", id_column="user_id")
    assert DriftCheck.from_dict(json.loads(json.dumps(checked.to_dict()))) == checked
    with pytest.raises(InputError, match="unknown key `drifted_`"):
        DriftCheck.from_dict({**checked.to_dict(), "drifted_": True})
    whole = checked.to_dict()
    parts = drift.check_file(scorer, tmp_path / "parts", id_column="user_id").to_dict()
    for key in ("source", "files"):
        whole.pop(key), parts.pop(key)
    assert parts["score"].pop("mean") == pytest.approx(whole["score"].pop("mean"))
    assert parts == whole
    assert whole["rows_rejected"] == 2 and whole["duplicate_ids"] == 1
    assert whole["rejected_rows"] == [
        {"row": 10, "user_id": "u10", "column": "minutes_watched", "reason": "minutes_watched is negative"},
        {"row": 700, "user_id": "u700", "column": "minutes_watched", "reason": "minutes_watched is negative"},
    ]
    plain = drift.check_file(scorer, tmp_path / "whole.csv").to_dict()  # without --id: rows by number only
    assert plain["id_column"] is None and "user_id" not in plain["rejected_rows"][0]
