"""Insights computed from a saved run folder: drivers, segments, targeting, caveats, recommendations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split

from upgrade_predictor import bundle, config, data_audit, dataset, evaluation, features, models, targeting
from upgrade_predictor.errors import InputError
from upgrade_predictor.reporting import (
    drivers,
    insights,
    odds,
    permutation,
    sampling,
    segments,
    shap_values,
    tree_rules,
)
from upgrade_predictor.reporting.partial_dependence import pdp_curves
from upgrade_predictor.runs.folder import RunWriter
from upgrade_predictor.sampling import stratified_rows
from upgrade_predictor.training import runs
from upgrade_predictor.training.info import TableRunInfo
from upgrade_predictor.training.metrics import Chosen, NoLeak, Reference, RunMetrics, Split, Threshold

LEAKY = "days_on_platform"


def fabricate_run(
    out: Path,
    path: Path | None = None,
    families=(("gbm", "none"), ("gbm", "class_weight")),
    chosen_family: str = "gbm",
) -> Path:
    """A small run folder written by the run folder's writer and typed records (only what the report
    reads); the chosen model and the one without the flagged columns are `chosen_family` without
    resampling."""
    out.mkdir(parents=True, exist_ok=True)
    path = Path(path or config.default_data_path())
    ds = dataset.load_dataset(path)
    idx = np.arange(ds.n)
    tr, te = train_test_split(idx, test_size=0.2, random_state=config.SEED, stratify=ds.y)
    Xtr, ytr, Xte, yte = ds.X.iloc[tr], ds.y[tr], ds.X.iloc[te], ds.y[te]
    cv = StratifiedKFold(3, shuffle=True, random_state=config.SEED)
    rep = data_audit.audit(ds)
    flagged = [c for c in rep.leakage_flags if c in ds.X.columns]

    oof, rows = {}, []
    for fam, strat in families:
        key = f"{fam}/{strat}"
        pipe = models.build_pipeline(ds.schema, fam, strat)
        oof[key] = cross_val_predict(pipe, Xtr, ytr, cv=cv, method="predict_proba")[:, 1]
    oof["reference"] = cross_val_predict(models.build_reference(), Xtr, ytr, cv=cv, method="predict_proba")[
        :, 1
    ]
    for key, p in oof.items():
        folds = [evaluation.scores(ytr[f], p[f]) for _, f in cv.split(Xtr, ytr)]
        fam, _, strat = key.partition("/")
        rows.append(
            {
                "key": key,
                "family": fam if strat else "",
                "strategy": strat,
                "model": models.FAMILIES[fam].label if strat else "course reference",
                "strategy_label": models.STRATEGY_LABELS.get(strat, ""),
                "note": "",
                "tuned": False,
                "is_reference": key == "reference",
                **evaluation.summarise(folds),
                "fit_seconds": 1.0,
            }
        )
    board = pd.DataFrame(rows).sort_values("pr_auc_mean", ascending=False)
    board["rank"] = np.arange(1, len(board) + 1)
    w = RunWriter(out)
    w.frame("leaderboard.csv", board)

    chosen = f"{chosen_family}/none"
    pipe = models.build_pipeline(ds.schema, chosen_family, "none").fit(Xtr, ytr)
    thr = targeting.choose_threshold(ytr, oof[chosen])
    p_all = pipe.predict_proba(ds.X)[:, 1]
    ref = models.build_reference().fit(Xtr, ytr)
    schema_nl = ds.schema.without(flagged)
    keep = schema_nl.names
    nl = models.build_pipeline(schema_nl, chosen_family, "none")
    oof_nl = cross_val_predict(nl, Xtr[keep], ytr, cv=cv, method="predict_proba")[:, 1]
    nl.fit(Xtr[keep], ytr)
    thr_nl = targeting.choose_threshold(ytr, oof_nl)
    p_nl = nl.predict_proba(ds.X[keep])[:, 1]

    pred = pd.DataFrame(
        {
            "row": idx,
            "set": "train",
            "y": ds.y.astype(int),
            "oof": np.nan,
            "p": p_all,
            "p_reference": np.nan,
            "p_no_leak": p_nl,
            "oof_no_leak": np.nan,
        }
    )
    pred.loc[te, "set"] = "test"
    pred.loc[tr, "oof"] = oof[chosen]
    pred.loc[tr, "oof_no_leak"] = oof_nl
    pred.loc[te, "p_reference"] = ref.predict_proba(Xte)[:, 1]
    w.frame("predictions.parquet", pred)
    cvp = pd.DataFrame({"row": tr, "y": ytr, **oof})
    w.frame("cv_predictions.parquet", cvp)

    cv_of = board.set_index("key").filter(regex="_(mean|sd)$")
    fam = models.FAMILIES[chosen_family]
    metrics = RunMetrics(
        chosen=Chosen(chosen, chosen_family, "none", fam.defaults, fam.label, False),
        objective="pr_auc",
        threshold=Threshold(thr, "f1"),
        train=evaluation.scores(ytr, p_all[tr], thr),
        test=evaluation.scores(yte, p_all[te], thr),
        cv=cv_of.loc[chosen].to_dict(),
        split=Split(len(tr), len(te), config.SEED, 0.2, False, cv.get_n_splits(), 1),
        reference=Reference(
            evaluation.scores(yte, pred.loc[te, "p_reference"].to_numpy()),
            cv_of.loc["reference"].to_dict(),
            0.5,
        ),
        no_leak=NoLeak(
            flagged,
            evaluation.scores(yte, p_nl[te], thr_nl),
            evaluation.scores(ytr, p_nl[tr], thr_nl),
            evaluation.summarise([evaluation.scores(ytr[f], oof_nl[f]) for _, f in cv.split(Xtr, ytr)]),
            thr_nl,
        )
        if flagged
        else None,
    )
    w.json("metrics.json", metrics.to_dict())
    w.json("audit.json", rep.to_dict())
    info = TableRunInfo(data=str(path), budget="quick", seed=config.SEED, test_size=0.2, duration_s=1.0)
    w.json("run.json", info.to_dict())
    meta = {
        "schema": ds.schema.to_dict(),
        "threshold": thr,
        "key": chosen,
        "family": chosen_family,
        "strategy": "none",
        "params": {},
        "label": chosen_family,
        "excluded": [],
    }
    w.bundle("model.zip", pipe, meta)
    w.bundle(
        "model_no_leak.zip",
        nl,
        {**meta, "schema": schema_nl.to_dict(), "threshold": thr_nl, "excluded": flagged},
    )
    return out


def shared_run(tmp_path_factory) -> Path:
    """One fabricated run per test session, shared by the insights and report tests."""
    out = tmp_path_factory.getbasetemp() / "fabricated_run"
    if not (out / "model_no_leak.zip").exists():
        fabricate_run(out)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return runs.load_run(shared_run(tmp_path_factory))


# ---------------------------------------------------------------- unit tests on small synthetic data


def synthetic(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "country": rng.choice(["US", "IN", "GB", "ZZ"], n, p=[0.4, 0.4, 0.19, 0.01]),
            "minutes_watched": rng.exponential(50, n),
            "courses_started": rng.integers(0, 5, n).astype(float),
            "days_on_platform": rng.integers(0, 200, n).astype(float),
        }
    )
    logit = -3 + 0.03 * X["minutes_watched"] + (X["country"] == "US") * 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    return X, y


def test_source_columns_maps_one_hots_and_ratios_back():
    names = ["country_US", "country_infrequent_sklearn", "minutes_watched", "minutes_per_course", "odd"]
    m = features.source_columns(names, ["country", "minutes_watched", "courses_started"], ["country"])
    assert m == [
        {"country": 1.0},
        {"country": 1.0},
        {"minutes_watched": 1.0},
        {"minutes_watched": 0.5, "courses_started": 0.5},
        {"odd": 1.0},
    ]


def test_shap_by_column_adds_up_to_the_model_margin():
    from upgrade_predictor.bundle import Bundle
    from upgrade_predictor.schema import Schema

    X, y = synthetic()
    kinds = {c: ("categorical" if c == "country" else "numeric") for c in X.columns}
    schema = Schema.infer(X, kinds, "y", "1", "0", None)
    pipe = models.build_pipeline(schema, "gbm", "none", {"n_estimators": 60}).fit(X, y)
    b = Bundle(pipe, {"family": "gbm", "schema": schema.to_dict(), "threshold": 0.5}, "")
    out = shap_values.shap_by_column(b, X, seed=1, rows=300)
    assert out.values.shape == (300, 4) and out.columns == list(X.columns)
    import shap

    model = pipe.steps[-1][1]
    Z = pipe[:-1].transform(out.X)
    margin = model.predict(Z, raw_score=True)
    base = shap.TreeExplainer(model).expected_value
    base = base[-1] if np.ndim(base) else base
    # SHAP is additive: summing one-hot and ratio columns back keeps each row's total.
    np.testing.assert_allclose(out.values.sum(axis=1) + base, margin, atol=1e-6)
    top = out.importance["name"].iloc[0]
    assert top == "minutes_watched"  # the column the label was drawn from
    assert (
        out.importance.set_index("name").loc["days_on_platform", "mean_abs"]
        < out.importance.set_index("name").loc["country", "mean_abs"]
    )


def test_logit_table_recovers_a_known_odds_ratio():
    rng = np.random.default_rng(3)
    n = 20000
    X = pd.DataFrame({"a": rng.exponential(20, n), "noise": rng.exponential(5, n)})
    y = (rng.random(n) < 1 / (1 + np.exp(-(-3 + 0.8 * np.log2(1 + X["a"]))))).astype(int)
    out = odds.logit_table(X, y.to_numpy(), ["a", "noise"])
    t = out.table.set_index("name")
    assert list(t.index) == ["const", "a", "noise"]
    assert t.loc["a", "low"] <= np.exp(0.8) <= t.loc["a", "high"]
    assert t.loc["a", "p_value"] < 1e-10
    assert t.loc["noise", "low"] <= 1.0 <= t.loc["noise", "high"]


def test_tree_rules_find_the_planted_threshold():
    rng = np.random.default_rng(4)
    X = pd.DataFrame({"x": rng.uniform(0, 10, 4000), "z": rng.uniform(0, 10, 4000)})
    y = ((X["x"] > 7) & (rng.random(4000) < 0.8)).astype(int).to_numpy()
    out = tree_rules.tree_rules(X[:3000], y[:3000], X[3000:], y[3000:], ["x", "z"], seed=0, depth=1)
    assert len(out.table) == 2
    best = out.table.iloc[0]
    assert best["rule"].startswith("x > ") and abs(float(best["rule"][4:]) - 7) < 0.2
    assert 0.7 <= best["test_rate"] <= 0.9 and best["low"] <= best["test_rate"] <= best["high"]
    assert out.table["test_rows"].sum() == 1000
    assert out.test_roc_auc > 0.85


def test_auc_interval_matches_sklearn_and_a_bootstrap_and_refuses_tiny_groups():
    from scipy.stats import bootstrap
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 400)
    p = np.round(np.clip(y * 0.3 + rng.random(400), 0, None), 2)  # rounded: ties count one half
    auc, lo, hi = segments.auc_interval(y, p)
    assert auc == pytest.approx(roc_auc_score(y, p))
    assert lo < auc < hi and hi - lo < 0.2
    boot = bootstrap(
        (y, p), roc_auc_score, paired=True, vectorized=False, n_resamples=500, method="percentile", rng=0
    ).confidence_interval
    assert abs(lo - boot.low) < 0.01 and abs(hi - boot.high) < 0.01
    assert np.isnan(segments.auc_interval(np.r_[1, 1, np.zeros(50)], rng.random(52))[0])


# ---------------------------------------------------------------- explanations: fast paths, stated samples


def _schema(X):
    from upgrade_predictor.schema import Schema

    kinds = {c: ("categorical" if c == "country" else "numeric") for c in X.columns}
    return Schema.infer(X, kinds, "y", "1", "0", None)


def _bundle(pipe, schema, family):
    return bundle.Bundle(pipe, {"family": family, "schema": schema.to_dict(), "threshold": 0.5}, "")


def test_lightgbm_pred_contrib_equals_shaps_tree_explainer():
    import shap

    X, y = synthetic(2000, seed=2)
    schema = _schema(X)
    pipe = models.build_pipeline(schema, "gbm", "none", {"n_estimators": 40}).fit(X, y)
    out = shap_values.shap_by_column(_bundle(pipe, schema, "gbm"), X, seed=3, rows=400, y=y)
    assert out.method.startswith("LightGBM's own TreeSHAP (pred_contrib")
    model = pipe.steps[-1][1]
    Z = pipe[:-1].transform(out.X)
    exact = np.asarray(shap.TreeExplainer(model, feature_perturbation="tree_path_dependent").shap_values(Z))
    exact = exact[..., 1] if exact.ndim == 3 else exact
    weights = features.source_weights(features.encoded_names(pipe), list(X.columns), ["country"])
    # The fast path is exact: the same values as shap's own TreeSHAP, summed back to the same columns.
    np.testing.assert_allclose(out.values, exact @ weights, atol=1e-6)


def test_linear_shap_of_logistic_regression_adds_up_to_its_log_odds():
    X, y = synthetic(1500, seed=4)
    schema = _schema(X)
    pipe = models.build_pipeline(schema, "logreg", "none").fit(X, y)
    out = shap_values.shap_by_column(_bundle(pipe, schema, "logreg"), X, seed=0, rows=200, y=y)
    assert out.units == "log-odds" and out.rows == 200 and "200 of 1,500" in out.method
    margin = pipe.decision_function(out.X)
    average = pipe.decision_function(X).mean()  # linear: the margin of the average row is the average margin
    np.testing.assert_allclose(out.values.sum(axis=1) + average, margin, atol=1e-8)
    assert out.importance["name"].iloc[0] == "minutes_watched"


def test_stratified_rows_keep_the_label_share():
    y = np.r_[np.ones(200), np.zeros(1800)].astype(int)
    keep = stratified_rows(y, 500, seed=1)
    assert len(keep) == len(np.unique(keep)) == 500 and y[keep].sum() == 50
    assert list(stratified_rows(y, 5000, seed=1)) == list(range(2000))


def test_permutation_importance_and_partial_dependence_equal_sklearns():
    from sklearn.inspection import partial_dependence, permutation_importance

    X, y = synthetic(1200, seed=6)
    pipe = models.build_pipeline(_schema(X), "gbm", "none", {"n_estimators": 30}).fit(X, y)
    ours = permutation.permutation_table(pipe, X, y, seed=3).set_index("name").loc[X.columns]
    theirs = permutation_importance(pipe, X, y, scoring="average_precision", n_repeats=3, random_state=3)
    np.testing.assert_allclose(ours["importance"], theirs.importances_mean, atol=1e-12)
    np.testing.assert_allclose(ours["sd"], theirs.importances_std, atol=1e-12)
    for curve in pdp_curves(pipe, X, ["minutes_watched", "courses_started"], seed=0, rows=len(X)):
        r = partial_dependence(
            pipe,
            X,
            [curve.feature],
            grid_resolution=20,
            percentiles=(0.01, 0.99),
            response_method="predict_proba",
        )
        np.testing.assert_allclose(curve.grid, r["grid_values"][0], atol=1e-12)
        np.testing.assert_allclose(curve.average, r["average"][0], atol=1e-12)


def test_a_forest_of_deep_trees_is_explained_on_a_sample_its_size_buys(monkeypatch):
    from sklearn.ensemble import RandomForestClassifier

    X, y = synthetic(12000, seed=7)
    schema = _schema(X)
    pipe = models.build_pipeline(schema, "forest", "none", {"n_estimators": 20, "min_samples_leaf": 1}).fit(
        X, y
    )
    forest = pipe.steps[-1][1]
    assert isinstance(forest, RandomForestClassifier)
    nodes = sum(t.tree_.node_count for t in forest.estimators_)
    monkeypatch.setattr(config, "REPORT_SHAP_SECONDS", 40 * nodes * config.REPORT_TREESHAP_NODE_SECONDS)
    out = shap_values.shap_by_column(_bundle(pipe, schema, "forest"), X, seed=0, y=y)
    # The budget buys 40 rows of exact TreeSHAP on these trees: far fewer than the configured most.
    assert out.rows == 40 < config.REPORT_SHAP_ROWS and out.test_rows == len(X)
    assert abs(y[out.X.index].sum() - 40 * y.mean()) <= 1  # stratified by the label
    assert "a stratified sample of 40 of 12,000 test rows" in out.method and f"{nodes:,} nodes" in out.method
    # Exact on that sample: each row's values add up to the forest's probability.
    import shap

    expected = shap.TreeExplainer(forest, feature_perturbation="tree_path_dependent").expected_value
    base = np.atleast_1d(expected)[-1]
    np.testing.assert_allclose(out.values.sum(axis=1) + base, pipe.predict_proba(out.X)[:, 1], atol=1e-6)


def test_models_without_a_fast_path_use_kernel_shap_on_a_small_stated_sample(monkeypatch):
    X, y = synthetic(800, seed=8)
    schema = _schema(X)
    pipe = models.build_pipeline(schema, "knn", "none").fit(X, y)
    monkeypatch.setattr(config, "REPORT_AGNOSTIC_SECONDS", 0.2)
    out = shap_values.shap_by_column(_bundle(pipe, schema, "knn"), X, seed=0, y=y)
    cost = sampling.scoring_cost(pipe)
    per_row = 2 * cost.call + 14 * config.REPORT_AGNOSTIC_BACKGROUND * cost.row  # 4 columns: 14 coalitions
    assert out.rows == max(config.REPORT_SHAP_MIN_ROWS, int(0.2 / per_row)) < config.REPORT_AGNOSTIC_ROWS
    assert out.method.startswith("Kernel SHAP (shap's KernelExplainer, every coalition of the 4 columns")
    assert f"a stratified sample of {out.rows:,} of 800 test rows" in out.method
    assert out.units == "probability" and np.isfinite(out.values).all() and out.values.shape == (out.rows, 4)


def test_sample_sizes_shrink_with_the_cost_of_scoring():
    X, y = synthetic(3000, seed=9)
    schema = _schema(X)
    cheap = models.build_pipeline(schema, "logreg", "none").fit(X, y)
    knn = models.build_pipeline(schema, "knn", "none").fit(X, y)
    one = drivers.plan_samples([cheap], 100_000, 4)
    assert one.permutation == config.REPORT_PERMUTATION_ROWS and one.pdp == config.REPORT_PDP_ROWS
    # A second model shares the sample and the budget; k-nearest neighbours, which scores each row
    # against every training row, gets smaller samples still (the table's rows do not matter).
    two = drivers.plan_samples([cheap, cheap], 100_000, 4)
    knn_plan = drivers.plan_samples([cheap, knn], 100_000, 4)
    assert sampling.scoring_cost(knn).row > sampling.scoring_cost(cheap).row
    assert knn_plan.permutation < two.permutation <= one.permutation and knn_plan.pdp <= two.pdp
    assert knn_plan.permutation >= config.REPORT_PERMUTATION_MIN_ROWS and knn_plan.test_rows == 100_000
    assert drivers.plan_samples([knn], 50, 4).permutation == 50  # never more rows than the test set has


def test_load_run_rejects_missing_and_incomplete_folders(tmp_path):
    with pytest.raises(InputError, match="no such run folder"):
        runs.load_run(tmp_path / "nope")
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(InputError, match="missing run.json"):
        runs.load_run(tmp_path)


def _old_scores(v: float) -> dict:
    names = [
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "pr_auc",
        "brier",
        "log_loss",
    ]
    return {**{k: v for k in names}, "threshold": 0.5}


def write_old_run(out: Path, data: Path) -> None:
    """A run folder as training wrote it before results were typed: the JSON files spelt out by hand."""
    out.mkdir()
    ds = dataset.load_dataset(data)
    pipe = models.build_pipeline(ds.schema, "logreg", "none").fit(ds.X, ds.y)
    meta = {"schema": ds.schema.to_dict(), "threshold": 0.5, "key": "logreg/none", "family": "logreg"}
    bundle.save_bundle(out / "model.zip", pipe, {**meta, "strategy": "none", "params": {}, "label": "lr"}, "")
    rows = np.arange(ds.n)
    p = pipe.predict_proba(ds.X)[:, 1]
    sets = np.where(rows % 5 == 0, "test", "train")
    pd.DataFrame({"row": rows, "set": sets, "y": ds.y, "oof": p, "p": p}).to_parquet(
        out / "predictions.parquet"
    )
    pd.DataFrame({"row": rows, "y": ds.y, "logreg/none": p}).to_parquet(out / "cv_predictions.parquet")
    pd.DataFrame({"key": ["logreg/none"], "rank": [1]}).to_csv(out / "leaderboard.csv", index=False)
    run_json = {
        "data": str(data), "target": "purchased", "budget": "quick", "seed": 7, "id_column": None,
        "positive": None, "numeric": [], "categorical": [], "exclude": [], "test_size": 0.2,
        "group_duplicates": False, "families": ["logreg"], "strategies": ["none"], "objective": "pr_auc",
        "threshold": "f1", "offer_cost": 4.0, "upgrade_value": 90.0, "jobs": 2, "report": True, "dask": None,
        "threshold_objective": "f1", "fingerprint": ds.fingerprint, "started": "2026-11-01T10:00:00",
        "duration_s": 12.5,
    }  # fmt: skip
    audit_json = {
        "source": str(data), "fingerprint": ds.fingerprint, "rows": ds.n, "columns": 2,
        "target": "purchased", "positive_label": "1",
        "class_balance": {"positive": 3, "negative": 7, "positive_share": 0.3},
        "missing_cells": 0, "exact_duplicates": 1, "conflicting_groups": 0, "conflicting_rows": 0,
        "feature_columns": [
            {"name": "student_country", "kind": "categorical", "missing": 0, "distinct": 7,
             "rare_categories": 2, "rare_rows": 30, "top": {"US": 180, "NA": 60},
             "univariate_auc": 0.55, "leakage_flag": False},
            {"name": "days_on_platform", "kind": "numeric", "missing": 0, "min": 0.0, "median": 150.0,
             "p99": 296.0, "max": 299.0, "skew": 0.1, "zeros_share": 0.01, "heavy_tail": False,
             "univariate_auc": 0.93, "leakage_flag": True},
        ],
        "leakage_flags": ["days_on_platform"],
        "warnings": ["possible leakage: days_on_platform alone reaches ROC AUC 0.930."],
    }  # fmt: skip
    metrics_json = {
        "chosen": {"key": "logreg/none", "family": "logreg", "strategy": "none", "params": {"C": 1.0},
                   "label": "logistic regression", "calibrated": False},
        "objective": "pr_auc",
        "threshold": {"value": 0.31, "objective": "f1"},
        "train": _old_scores(0.8), "test": _old_scores(0.7),
        "cv": {"pr_auc_mean": 0.75, "pr_auc_sd": 0.02},
        "split": {"n_train": 480, "n_test": 120, "seed": 7, "test_size": 0.2, "group_duplicates": False,
                  "cv_splits": 3, "cv_repeats": 1},
        "tuning": {},
        "reference": {"test": _old_scores(0.6), "cv": {"pr_auc_mean": 0.6}, "threshold": 0.5},
    }  # fmt: skip
    for name, d in (("run.json", run_json), ("audit.json", audit_json), ("metrics.json", metrics_json)):
        (out / name).write_text(json.dumps(d, indent=2))


def test_a_run_folder_written_before_typed_results_still_loads(tmp_path, synthetic_csv):
    write_old_run(tmp_path / "run", synthetic_csv)
    run = runs.load_run(tmp_path / "run")
    assert (run.info.seed, run.info.offer_cost, run.info.upgrade_value, run.info.budget) == (
        7,
        4.0,
        90.0,
        "quick",
    )
    assert run.info.families == ["logreg"] and run.info.data == str(synthetic_csv)
    assert run.audit.leakage_flags == ["days_on_platform"] and run.audit.exact_duplicates == 1
    country, days = run.audit.feature_columns
    assert country.categorical.top == {"US": 180, "NA": 60} and country.numeric is None
    assert days.numeric.p99 == 296.0 and days.leakage_flag and not days.heavy_tail
    assert run.metrics.test.pr_auc == 0.7 and run.metrics.reference.threshold == 0.5
    assert run.metrics.threshold.value == 0.31 and run.metrics.no_leak is None
    assert run.leaky == [] and len(run.rows("test")) == 120


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("run.json", "[1, 2]", r"run\.json: holds a JSON array, not the object"),
        ("run.json", '{"seed": "seven"}', r"run\.json: not the settings of a run.*'seed' is 'seven'"),
        ("run.json", '{"offer_cost": null}', r"run\.json: .*'offer_cost' is None, not a number"),
        ("run.json", '{"numeric": "minutes"}', r"run\.json: not the settings of a run.*'numeric'"),
        ("run.json", '{"group_duplicates": "no"}', r"run\.json: .*'group_duplicates'"),
        ("audit.json", '"audit"', r"audit\.json: holds a JSON string"),
        ("metrics.json", '{"chosen": {}}', r"metrics\.json: not the metrics of a run"),
        ("metrics.json", "{", r"metrics\.json: damaged JSON"),
    ],
)
def test_a_run_file_of_another_shape_says_how_to_retrain(tmp_path, name, content, message):
    for f in runs.RUN_FILES:
        (tmp_path / f).write_text("{}")
    (tmp_path / "audit.json").write_text(json.dumps(_minimal_audit()))
    (tmp_path / name).write_text(content)
    with pytest.raises(InputError, match=message) as e:
        runs.load_run(tmp_path)
    assert str(tmp_path / name) in str(e.value) and "upgrade-predictor train" in str(e.value)


def _minimal_audit() -> dict:
    balance = {"positive": 1, "negative": 1, "positive_share": 0.5}
    return {
        "source": "d.csv", "fingerprint": "", "rows": 2, "columns": 0, "target": "y", "positive_label": "1",
        "class_balance": balance, "feature_columns": [],
    }  # fmt: skip


# ---------------------------------------------------------------- on a run folder of the real data


@pytest.mark.slow
def test_load_run_refuses_a_changed_data_file(tmp_path, tmp_path_factory):
    src = shared_run(tmp_path_factory)
    shutil.copytree(src, tmp_path / "run")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    info["fingerprint"] = "0" * 64
    (tmp_path / "run" / "run.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="changed since this run was trained"):
        runs.load_run(tmp_path / "run")


@pytest.mark.slow
def test_insights_on_the_real_data(run):
    ins = insights.build_insights(run)
    # The audit flags days_on_platform; the report must show the model without it and target with it.
    assert run.leaky == [LEAKY]
    cav = ins.caveats
    pr = {r.metric: r for r in cav.compare}["pr_auc"]
    assert pr.test_with > pr.test_without + 0.2
    assert ins.targeting.model == "no_leak"
    # Drivers are per original column, not per one-hot column.
    assert set(ins.drivers.shap.importance["name"]) == set(run.dataset.X.columns)
    assert ins.drivers.permutation["name"].iloc[0] == LEAKY
    assert LEAKY not in ins.drivers.tree.columns
    # Segments: counts add up to the file, and every interval contains its rate.
    seg = ins.segments.table
    assert seg["rows"].sum() == run.dataset.n and seg["upgrades"].sum() == int(run.dataset.y.sum())
    assert ((seg["low"] <= seg["rate"]) & (seg["rate"] <= seg["high"])).all()
    # Targeting: no lift was stated, so nothing is priced; the ranking's audiences grow with their share
    # and each states the lift at which it would break even.
    pol = ins.targeting.policies.set_index("policy")
    assert not ins.targeting.priced and pol["profit"].isna().all()
    assert pol.loc["top 5%", "offers"] < pol.loc["top 10%", "offers"] < pol.loc["top 20%", "offers"]
    assert (pol["break_even_lift"] > 0).all()
    recs = ins.recommendations
    assert 3 <= len(recs) <= 6 and all(r.anchor and any(ch.isdigit() for ch in r.text) for r in recs)
