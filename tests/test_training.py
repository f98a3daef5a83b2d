import json
import math
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from sklearn.model_selection import train_test_split

from conftest import run_cli, synthetic_frame
from test_features import _xy
from upgrade_predictor import config, targeting
from upgrade_predictor.api import TrainConfig
from upgrade_predictor.bundle import load_bundle
from upgrade_predictor.data_audit import feature_keys
from upgrade_predictor.economics import Economics, Lift
from upgrade_predictor.errors import InputError
from upgrade_predictor.models import SMOTE_K, build_pipeline, inner_pipeline, stratified_sample
from upgrade_predictor.training.calibration import platt_oof
from upgrade_predictor.training.clock import RunClock
from upgrade_predictor.training.metrics import RunMetrics, Tuning, tuning_from_dict
from upgrade_predictor.training.splits import cv_folds, holdout_split
from upgrade_predictor.training.train import run_training
from upgrade_predictor.training.tuning import trial_count


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
    assert targeting.choose_threshold(y, p) == 0.6


def test_profit_threshold_prices_what_the_offer_causes():
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    lift = Lift.parse("20%")  # tau = 0.2 p, capped at 1 - p: 0.1, 0.16, 0.14, 0.12, ...
    # Offer cost 13, upgrade value 100: each offer earns 100 tau - 13 = -3, 3, 1, -1, ...; the running
    # sums -3, 0, 1, 0 peak at 0.7, whatever the labels (the upgraders reached are not won by the offer).
    assert targeting.choose_threshold(y, p, "profit", Economics(13, 100), lift) == 0.7
    # When offers cost 30 no user's offer pays: the threshold sends none.
    assert targeting.choose_threshold(y, p, "profit", Economics(30, 100), lift) == targeting.NO_OFFER
    with pytest.raises(InputError, match="--assumed-lift"):
        targeting.choose_threshold(y, p, "profit", Economics(13, 100), None)


@pytest.mark.slow
def test_the_cli_prices_a_table_run_under_an_assumed_lift(tmp_path):
    synthetic_frame(300).to_csv(tmp_path / "d.csv", index=False)
    r = run_cli(
        "train", "--data", str(tmp_path / "d.csv"), "--out", str(tmp_path / "run"), "--budget", "quick",
        "--families", "logreg", "--strategies", "none", "--no-report", "--threshold", "profit",
        "--assumed-lift", "20%", "--discount", "2", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["assumed_lift"] == "20%" and info["discount"] == 2.0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["threshold"]["objective"] == "profit"
    assert "an assumed lift of +20% of each user's upgrade probability" in r.stderr


def _quick(tmp_path, name, **kw):
    settings = {"families": ["logreg", "tree", "gbm"], "strategies": ["none", "smote"], **kw}
    cfg = TrainConfig(
        data=tmp_path / "d.csv", out=tmp_path / name, budget="quick", report=False, jobs=1, **settings
    )
    return run_training(cfg, Console(quiet=True))


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
    assert RunMetrics.from_dict(ma).to_dict() == ma  # the reader gives back what the writer wrote
    for at, key in (((), "chosn"), (("split",), "seeds"), (("test",), "pr_aucc"), (("limits",), "note")):
        bad = json.loads(json.dumps(ma))
        block = bad
        for k in at:
            block = block[k]
        block[key] = 1
        with pytest.raises(InputError, match=f"unknown key `{key}`"):
            RunMetrics.from_dict(bad)


def test_an_existing_run_is_never_overwritten_silently(tmp_path):
    synthetic_frame(500).to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    from upgrade_predictor.errors import InputError

    with pytest.raises(InputError, match="not a run folder"):
        _quick(tmp_path, "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "frame,args,message",
    [
        (lambda df: df.assign(purchased=0), [], "single class"),
        (lambda df: df, ["--target", "bought"], "target column 'bought' not found"),
        (lambda df: df, ["--budget", "huge"], "'huge' is not one of 'quick', 'standard', 'thorough'"),
        (lambda df: df, ["--threshold", "profit"], "give --assumed-lift"),
        (lambda df: df, ["--assumed-lift", "twenty"], "is not a lift"),
        (lambda df: df, ["--assumed-lift", "5%", "--discount", "200"], "no offer could pay"),
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
    out = run_training(cfg, Console(quiet=True))
    m = json.loads((out / "metrics.json").read_text())
    assert m["test"]["roc_auc"] > 0.6
    preds = pd.read_parquet(out / "predictions.parquet")
    assert preds["id"].notna().all() and len(preds) == n
    assert json.loads((out / "audit.json").read_text())["positive_label"] == "yes"


def test_stratified_sample_keeps_the_class_shares_and_acts_in_fit_only():
    X, y, schema = _xy(2000)
    Xs, ys = stratified_sample(X, y, 500, seed=1)
    assert len(Xs) == len(ys) == 500
    assert abs(ys.mean() - y.mean()) < 0.01  # stratified: the positive share survives
    assert set(Xs.index) <= set(X.index) and Xs.index.is_unique
    pipe = build_pipeline(schema, "tree", "none", fit_rows=500).fit(X, y)
    assert pipe.named_steps["model"].tree_.n_node_samples[0] == 500
    assert pipe.predict_proba(X).shape == (2000, 2)  # every scored row, none thinned
    Xa, ya = stratified_sample(X, y, 5000, seed=1)  # fewer rows than the cap: untouched
    assert Xa is X and len(ya) == 2000


def _budget(monkeypatch, **changes):
    """The quick budget with some fields changed, for runs in this process."""
    monkeypatch.setitem(config.BUDGETS, "quick", replace(config.BUDGETS["quick"], **changes))


def test_capped_families_fit_on_a_stated_sample_in_cv_and_the_final_model(tmp_path, monkeypatch):
    synthetic_frame(600).to_csv(tmp_path / "d.csv", index=False)
    _budget(monkeypatch, fit_rows={"cheap": 150}, max_rows={"logreg": 100})
    a = _quick(tmp_path, "a", families=["logreg", "tree"], strategies=["none", "undersample"])
    board = pd.read_csv(a / "leaderboard.csv")
    tree = board[board["family"] == "tree"]
    assert len(tree) and (tree["fit_rows"] == 150).all()
    assert tree["note"].str.contains("stratified sample of 150 of the 240 rows").all()
    ref = board[board["family"] == "reference"]
    assert (ref["fit_rows"] == 240).all()  # no forest cap in this budget: the reference fits every row
    assert "logreg" not in set(board["family"])  # left out above its max_rows, with the reason stated
    limits = json.loads((a / "metrics.json").read_text())["limits"]
    assert limits["fit_rows"] == {"tree": 150} and "logreg" in limits["left_out"]
    assert limits["time_limit"] is None
    model = inner_pipeline(load_bundle(a / "model.zip").pipeline)  # the sampler step serialises
    assert model.named_steps["subsample"].kw_args["max_rows"] == 150
    b = _quick(tmp_path, "b", families=["logreg", "tree"], strategies=["none", "undersample"])
    pd.testing.assert_frame_equal(
        board.drop(columns="fit_seconds"), pd.read_csv(b / "leaderboard.csv").drop(columns="fit_seconds")
    )


def test_tuning_runs_fewer_trials_on_larger_folds_but_as_many_for_any_seed():
    budget = replace(config.BUDGETS["standard"], tune_rows=10_000)
    full = trial_count("gbm", budget, 10_000)
    assert full == budget.trials
    assert trial_count("gbm", budget, 20_000) == round(budget.trials / 2)
    assert trial_count("gbm", budget, 10_000_000) == 3  # never below three
    assert trial_count("svm", budget, 5_000) < full  # a costly family gets fewer


def test_a_tuning_record_reads_back_as_written_and_refuses_a_misspelled_key():
    t = Tuning("smote", 0.71, 9, {"learning_rate": 0.05, "num_leaves": 31}, planned_trials=12)
    d = t.to_dict()
    assert list(d) == ["strategy", "best_value", "n_trials", "planned_trials", "best_params"]
    assert tuning_from_dict({"gbm": d}) == {"gbm": t}
    older = {k: v for k, v in d.items() if k != "planned_trials"}  # runs written before trial plans
    assert Tuning.from_dict(older).planned_trials is None
    with pytest.raises(InputError, match="tuning.gbm: unknown key `n_trails`"):
        tuning_from_dict({"gbm": {**older, "n_trails": 9}})
    with pytest.raises(InputError, match="no `best_value`"):
        Tuning.from_dict({k: v for k, v in d.items() if k != "best_value"})


@pytest.mark.parametrize("limit", [0, -5, math.nan, math.inf])
def test_time_limit_must_be_a_positive_finite_number(limit):
    with pytest.raises(InputError, match="--time-limit"):
        TrainConfig(time_limit=limit).check()


def test_a_time_limited_run_still_fits_and_says_results_may_vary(tmp_path):
    synthetic_frame(500).to_csv(tmp_path / "d.csv", index=False)
    clock = RunClock()
    cfg = TrainConfig(
        data=tmp_path / "d.csv",
        out=tmp_path / "r",
        budget="quick",
        report=False,
        families=["logreg", "tree", "gbm", "forest"],
        strategies=["none", "oversample", "smote"],
        jobs=1,
        time_limit=0.01,  # used up by loading and the audit: the cheapest candidate alone is compared
    )
    out = run_training(cfg, Console(quiet=True), None, clock)
    board = pd.read_csv(out / "leaderboard.csv")
    assert 1 <= len(board) < 4 * 3 + 1 and not board["tuned"].any()
    limits = json.loads((out / "metrics.json").read_text())["limits"]
    assert limits["time_limit"] == 0.01
    assert any("may vary between machines" in n for n in limits["notes"])
    assert any("no time was left to tune" in n for n in limits["notes"])
    assert (out / "model.zip").exists()
    assert list(clock.stages) == ["audit", "comparison", "tuning", "final fit", "write"]


@pytest.mark.parametrize("positives", [4, 6, 12])
def test_few_rows_of_one_class_exit_2_or_train_with_fewer_smote_neighbours(tmp_path, positives):
    df = synthetic_frame(300)
    df["purchased"] = 0
    df.loc[df.sample(positives, random_state=0).index, "purchased"] = 1
    df.to_csv(tmp_path / "d.csv", index=False)
    r = run_cli(
        "train",
        "--data",
        str(tmp_path / "d.csv"),
        "--out",
        str(tmp_path / "run"),
        "--budget",
        "quick",
        "--families",
        "logreg,knn,gbm",
        "--strategies",
        "none,undersample,smote",
        "--no-report",
        cwd=tmp_path,
    )
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    need = 12  # quick: 2 folds, each training fold split 5 ways by calibration
    if positives < need:
        assert r.returncode == 2, r.stderr
        assert f"{positives} of 300 rows have purchased = '1'" in r.stderr
        assert f"needs at least {need} of them" in r.stderr
        assert not (tmp_path / "run").exists()
    else:
        assert r.returncode == 0, r.stderr
        limits = json.loads((tmp_path / "run" / "metrics.json").read_text())["limits"]
        assert 1 <= limits["smote_k"] < SMOTE_K
        assert f"SMOTE interpolates between {limits['smote_k']} nearest neighbour(s)" in r.stderr
        # Undersampled to twice its 12-odd positives, a KNN fit would hold fewer rows than its neighbours.
        assert "k-nearest neighbours with random undersampling left out" in r.stderr
        board = pd.read_csv(tmp_path / "run" / "leaderboard.csv")
        assert {"knn/none", "knn/smote", "gbm/smote"} <= set(board["key"]) and "knn/undersample" not in set(
            board["key"]
        )


def test_platt_oof_puts_distorted_scores_back_on_the_probability_scale():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 4000)
    y = (rng.uniform(size=4000) < p).astype(int)
    distorted = p**0.2  # every score pushed up, as oversampling does
    cal = platt_oof(distorted, y, seed=365)
    assert abs(cal.mean() - y.mean()) < 0.02 < abs(distorted.mean() - y.mean())
    assert np.corrcoef(cal, p)[0, 1] > 0.95  # the ranking survives


def _repeated_users(n_users: int = 250, copies: int = 4, seed: int = 5) -> pd.DataFrame:
    """Each user's row repeated with a small jitter, and a label that is noise per user: a model can
    only score above chance on a user it has seen."""
    base = synthetic_frame(n_users, seed=seed)
    base["purchased"] = np.random.default_rng(seed).permutation(base["purchased"].to_numpy())
    df = base.loc[base.index.repeat(copies)].reset_index(names="user")
    jitter = np.random.default_rng(seed + 1).normal(0, 0.01, len(df))
    df["minutes_watched"] = (df["minutes_watched"] * np.exp(jitter)).round(3)
    df["user"] = "u" + df["user"].astype(str)
    return df


def test_group_column_keeps_each_users_rows_together_and_is_no_feature(tmp_path, monkeypatch):
    from upgrade_predictor.training import calibration

    _repeated_users().to_csv(tmp_path / "d.csv", index=False)
    calls: list[np.ndarray] = []
    real = calibration.grouped_calibration_splits

    def spy(y, groups, seed):
        calls.append(np.asarray(groups))
        return real(y, groups, seed)

    monkeypatch.setattr(calibration, "grouped_calibration_splits", spy)
    runs = {}
    for name, group in (("free", None), ("grouped", "user")):
        cfg = TrainConfig(
            data=tmp_path / "d.csv",
            out=tmp_path / name,
            budget="quick",
            report=False,
            families=["gbm"],
            strategies=["class_weight"],  # calibrated: the final fit's calibration folds are grouped too
            group_column=group,
            id_column="user",
        )
        runs[name] = run_training(cfg, Console(quiet=True))
    preds = pd.read_parquet(runs["grouped"] / "predictions.parquet")
    train_users = set(preds.loc[preds["set"] == "train", "id"])
    assert not train_users & set(preds.loc[preds["set"] == "test", "id"])
    assert calls and all(len(np.unique(g)) == len(train_users) for g in calls)
    for fold_train, fold_cal in real(np.zeros(len(calls[0])), calls[0], 365):
        assert not set(calls[0][fold_train]) & set(calls[0][fold_cal])
    m = {k: json.loads((v / "metrics.json").read_text()) for k, v in runs.items()}
    assert m["grouped"]["split"]["group_column"] == "user" and m["free"]["split"]["group_column"] is None
    assert json.loads((runs["grouped"] / "run.json").read_text())["group_column"] == "user"
    assert "user" not in load_bundle(runs["grouped"] / "model.zip").schema.names
    # Rows of one user on both sides let the model recall labels it has seen; kept together, the
    # noise label is what it is.
    assert m["free"]["test"]["roc_auc"] > 0.75 and m["free"]["cv"]["roc_auc_mean"] > 0.75
    assert m["grouped"]["test"]["roc_auc"] < 0.65 and m["grouped"]["cv"]["roc_auc_mean"] < 0.65


def test_the_audit_suggests_group_when_an_id_repeats(tmp_path):
    from upgrade_predictor.data_audit import audit
    from upgrade_predictor.dataset import load_dataset

    _repeated_users(60, copies=2).to_csv(tmp_path / "d.csv", index=False)
    free = audit(load_dataset(tmp_path / "d.csv", id_column="user"))
    assert any(
        "60 values of the id column user have more than one row (120 rows)" in w for w in free.warnings
    )
    assert any("--group user" in w for w in free.warnings)
    grouped = audit(load_dataset(tmp_path / "d.csv", id_column="user", group_column="user"))
    assert not any("id column" in w for w in grouped.warnings)
    frame = _repeated_users(60, copies=2)
    frame = pd.concat([frame, frame.head(3)], ignore_index=True)  # three exact copies
    frame.to_csv(tmp_path / "e.csv", index=False)
    warned = {
        g: next(w for w in audit(load_dataset(tmp_path / "e.csv", group_column=g)).warnings if "exact" in w)
        for g in (None, "user")
    }
    assert "--group-duplicates" in warned[None] and "unless they share a --group value" in warned["user"]


@pytest.mark.parametrize(
    "change,options,message",
    [
        (lambda df: df, {"group_column": "purchased"}, "the target cannot group the rows"),
        (lambda df: df, {"group_column": "cohort"}, "--group: column(s) cohort not in the file"),
        (
            lambda df: df.assign(user=df["user"].where(df.index != 7)),
            {},
            "'user' has 1 missing value(s) (rows 9)",
        ),
        (lambda df: df.assign(user=df.index % 4), {}, "4 groups of rows are too few"),
        (lambda df: df, {"group_duplicates": True}, "choose one way to keep rows together"),
    ],
)
def test_a_group_column_that_cannot_group_is_refused(tmp_path, change, options, message):
    change(_repeated_users(60)).to_csv(tmp_path / "d.csv", index=False)
    cfg = TrainConfig(data=tmp_path / "d.csv", out=tmp_path / "r", budget="quick", report=False)
    cfg = replace(cfg, **{"group_column": "user", **options})
    with pytest.raises(InputError, match=re.escape(message)):
        run_training(cfg, Console(quiet=True))
    assert not (tmp_path / "r").exists()
