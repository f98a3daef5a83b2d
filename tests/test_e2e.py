"""One standard run on the real file: the bars the project promises, checked end to end."""

import json

import pandas as pd
import pytest

from upgrade_predictor import config
from upgrade_predictor.bundle import load_bundle
from upgrade_predictor.models import FAMILY_NAMES

pytestmark = pytest.mark.slow


def test_standard_run_on_the_real_data_meets_the_bars(real_run):
    m = json.loads((real_run / "metrics.json").read_text())
    assert m["split"] == {**m["split"], "n_test": 3553, "n_train": 14208, "seed": 365}
    assert m["test"]["pr_auc"] >= 0.88
    assert m["test"]["f1"] >= 0.81
    # Train and test are both reported, and the held-out set was not filtered.
    assert set(m["train"]) == set(m["test"])
    assert m["reference"]["test"]["f1"] < m["test"]["f1"]
    board = pd.read_csv(real_run / "leaderboard.csv")
    assert set(FAMILY_NAMES) <= set(board["family"])
    assert set(config.STRATEGIES) <= set(board["strategy"])
    assert "reference" in set(board["key"])
    assert (board["pr_auc_sd"] > 0).all()  # a spread across folds, not one lucky number


def test_real_run_flags_the_leak_and_trains_without_it(real_run):
    audit = json.loads((real_run / "audit.json").read_text())
    assert audit["leakage_flags"] == ["days_on_platform"]
    m = json.loads((real_run / "metrics.json").read_text())
    assert m["no_leak"]["excluded"] == ["days_on_platform"]
    assert m["no_leak"]["test"]["pr_auc"] < m["test"]["pr_auc"]
    nl = load_bundle(real_run / "model_no_leak.zip")
    assert "days_on_platform" not in nl.schema.names


def test_bundle_scores_like_the_run(real_run, real_data):
    from upgrade_predictor.dataset import load_dataset

    bundle = load_bundle(real_run / "model.zip")
    preds = pd.read_parquet(real_run / "predictions.parquet")
    test = preds[preds["set"] == "test"].head(200)
    ds = load_dataset(real_data)
    p = bundle.pipeline.predict_proba(ds.X.iloc[test["row"].to_numpy()])[:, 1]
    assert abs(p - test["p"].to_numpy()).max() < 1e-12
    assert bundle.threshold == pytest.approx(
        json.loads((real_run / "metrics.json").read_text())["threshold"]["value"]
    )
