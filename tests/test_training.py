import json

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from conftest import run_cli, synthetic_frame
from test_features import _xy
from upgrade_predictor import config, evaluation
from upgrade_predictor.api import TrainConfig, train
from upgrade_predictor.audit import feature_keys
from upgrade_predictor.models import build_pipeline
from upgrade_predictor.training.protocol import cv_folds, holdout_split


def test_holdout_is_the_course_split():
    y = synthetic_frame(500)["purchased"].to_numpy()
    tr, te = holdout_split(y, None, 0.2, 365)
    _, te_ref = train_test_split(np.arange(len(y)), test_size=0.2, random_state=365, stratify=y)
    assert sorted(te) == sorted(te_ref)
    assert not set(tr) & set(te)


def test_grouped_split_keeps_identical_rows_on_one_side():
    df = synthetic_frame(300)
    df = pd.concat([df, df.sample(100, random_state=1)], ignore_index=True)  # 100 exact copies
    X = df.drop(columns="purchased")
    groups = feature_keys(X).to_numpy()
    tr, te = holdout_split(df["purchased"].to_numpy(), groups, 0.2, 365)
    assert not set(groups[tr]) & set(groups[te])
    budget = config.Budget("t", 3, 2, 1, 1, 1)
    for _, a, b in cv_folds(df["purchased"].to_numpy()[tr], groups[tr], budget, 365):
        assert not set(groups[tr][a]) & set(groups[tr][b])


@pytest.mark.parametrize("strategy", ["oversample", "undersample", "smote"])
def test_resampling_acts_on_training_folds_only(strategy):
    X, y, schema = _xy(500)
    tr, va = np.arange(350), np.arange(350, 500)
    pipe = build_pipeline(schema, "tree", strategy).fit(X.iloc[tr], y[tr])
    seen = pipe.named_steps["model"].tree_.n_node_samples[0]
    n_pos, n_neg = int(y[tr].sum()), int(len(tr) - y[tr].sum())
    assert seen == (2 * n_neg if strategy != "undersample" else 2 * n_pos)  # balanced training rows
    assert pipe.predict_proba(X.iloc[va]).shape == (len(va), 2)  # validation rows untouched
    # Fitted statistics come from the training fold alone.
    clip = pipe.named_steps["prepare"].named_transformers_["num"].named_steps["clip"]
    np.testing.assert_allclose(clip.high_[0], np.quantile(X.iloc[tr, 1], config.CLIP_QUANTILE))


def test_f1_threshold_matches_a_hand_computed_example():
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    # Cut at 0.6: TP 3, FP 1, FN 0 -> F1 6/7, the best of all cuts.
    assert evaluation.choose_threshold(y, p) == 0.6
    # An offer costs 30 and an upgrade is worth 100: the 0.6 cut earns 3*100 - 4*30 = 180,
    # the 0.8 cut 2*100 - 2*30 = 140, the 0.9 cut 70: 0.6 is best.
    assert evaluation.choose_threshold(y, p, "profit", 30, 100) == 0.6
    # When offers cost 90, only the surest pay: 0.9 -> 10, 0.8 -> 20, 0.6 -> -60.
    assert evaluation.choose_threshold(y, p, "profit", 90, 100) == 0.8


def _quick(tmp_path, name, **kw):
    cfg = TrainConfig(
        data=tmp_path / "d.csv",
        out=tmp_path / name,
        budget="quick",
        report=False,
        families=["logreg", "tree", "gbm"],
        strategies=["none", "smote"],
        jobs=1,
        **kw,
    )
    return train(cfg)


def test_same_seed_same_leaderboard_and_model(tmp_path):
    synthetic_frame(500).to_csv(tmp_path / "d.csv", index=False)
    a, b = _quick(tmp_path, "a"), _quick(tmp_path, "b")
    la, lb = pd.read_csv(a / "leaderboard.csv"), pd.read_csv(b / "leaderboard.csv")
    pd.testing.assert_frame_equal(la.drop(columns="fit_seconds"), lb.drop(columns="fit_seconds"))
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert ma["test"] == mb["test"] and ma["chosen"] == mb["chosen"]
    assert set(la["family"]) == {"logreg", "tree", "gbm", "reference"}
    assert {"test", "train", "split", "cv", "threshold"} <= set(ma)
    for block in ("test", "train"):
        assert {"roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "threshold"} <= set(ma[block])
    assert ma["split"]["n_test"] == 100 and ma["split"]["seed"] == 365


def test_an_existing_run_is_never_overwritten_silently(tmp_path):
    synthetic_frame(500).to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    from upgrade_predictor.errors import InputError

    with pytest.raises(InputError, match="already holds a run"):
        _quick(tmp_path, "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "frame,args,message",
    [
        (lambda df: df.assign(purchased=0), [], "single class"),
        (lambda df: df, ["--target", "bought"], "target column 'bought' not found"),
        (lambda df: df, ["--budget", "huge"], "--budget 'huge'"),
    ],
)
def test_cli_input_errors_exit_2_without_traceback_or_output(tmp_path, frame, args, message):
    frame(synthetic_frame(200)).to_csv(tmp_path / "d.csv", index=False)
    r = run_cli(
        "train", "--data", str(tmp_path / "d.csv"), "--out", str(tmp_path / "run"), *args, cwd=tmp_path
    )
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run")]  # no temp folder left


@pytest.mark.parametrize("keep", [["age", "plan", "region"], ["plan", "region"], ["age", "visits"]])
def test_any_binary_table_trains(tmp_path, keep):
    """Not only our columns: other names, word labels, an id, all-numeric or all-categorical features."""
    rng = np.random.default_rng(3)
    n = 400
    df = pd.DataFrame(
        {
            "uid": np.arange(n),
            "age": rng.integers(18, 70, n),
            "visits": rng.poisson(3, n),
            "plan": rng.choice(["a", "b", "c"], n),
            "region": rng.choice(["n", "s"], n),
        }
    )
    signal = (df["plan"] == "a") * 1.5 + (df["region"] == "n") + df["visits"] * 0.3 + rng.normal(0, 1, n)
    df["churned"] = np.where(signal > np.quantile(signal, 0.8), "yes", "no")
    df[["uid", *keep, "churned"]].to_csv(tmp_path / "d.csv", index=False)
    cfg = TrainConfig(
        data=tmp_path / "d.csv",
        target="churned",
        id_column="uid",
        out=tmp_path / "r",
        budget="quick",
        report=False,
        families=["logreg", "gbm"],
        strategies=["none", "smote"],
    )
    out = train(cfg)
    m = json.loads((out / "metrics.json").read_text())
    assert m["test"]["roc_auc"] > 0.6
    preds = pd.read_parquet(out / "predictions.parquet")
    assert preds["id"].notna().all() and len(preds) == n
    assert json.loads((out / "audit.json").read_text())["positive_label"] == "yes"
