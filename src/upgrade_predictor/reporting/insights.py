"""What a training run says, computed from its saved folder: data, models, drivers, segments,
targeting, caveats and recommendations. Every number the report shows comes from here."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.inspection import partial_dependence, permutation_importance
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve
from sklearn.tree import DecisionTreeClassifier, export_text

from .. import config, targeting
from ..bundle import Bundle
from ..evaluation import METRICS
from ..features import source_columns
from ..models import FAMILIES, STRATEGY_LABELS, inner_pipeline
from ..training.runs import Run
from .format import signed
from .recommend import caveats_section, recommendations

TOP_SEGMENTS = 10
LEADING_MODELS = 4
N_BOOT = 1000
SHAP_ROWS = 1000


# ------------------------------------------------------------------ 1. data


def data_section(run: Run) -> dict:
    from statsmodels.stats.outliers_influence import variance_inflation_factor
    from statsmodels.tools.tools import add_constant

    aud, X, y = run.audit, run.dataset.X, run.dataset.y
    numeric = run.dataset.schema.numeric
    outliers = []
    for c in aud["feature_columns"]:
        if c["kind"] != "numeric":
            continue
        cap = float(X[c["name"]].quantile(config.CLIP_QUANTILE))
        outliers.append(
            {
                "name": c["name"],
                "max": c["max"],
                "p99": c["p99"],
                "cap": cap,
                "rows_above": int((X[c["name"]] > cap).sum()),
                "heavy_tail": c["heavy_tail"],
            }
        )
    corr = X[numeric].corr(method="spearman") if len(numeric) > 1 else pd.DataFrame()
    vif = []
    if len(numeric) > 1:
        A = add_constant(X[numeric].fillna(X[numeric].median()).to_numpy(), has_constant="add")
        with np.errstate(divide="ignore"):
            vif = [
                {"name": c, "vif": float(variance_inflation_factor(A, i + 1))} for i, c in enumerate(numeric)
            ]
    return {
        "rows": aud["rows"],
        "class_balance": aud["class_balance"],
        "columns": aud["feature_columns"],
        "missing_cells": aud.get("missing_cells", 0),
        "exact_duplicates": aud.get("exact_duplicates", 0),
        "conflicting_groups": aud.get("conflicting_groups", 0),
        "conflicting_rows": aud.get("conflicting_rows", 0),
        "warnings": aud.get("warnings", []),
        "outliers": outliers,
        "clip_quantile": config.CLIP_QUANTILE,
        "corr": corr,
        "vif": vif,
        "leakage_flags": aud.get("leakage_flags", []),
        "numeric": numeric,
        "y": y,
    }


# ------------------------------------------------------------------ 2. model comparison


def comparison_section(run: Run) -> dict:
    board = run.leaderboard.sort_values("rank")
    models = board[~board["is_reference"].astype(bool)]
    lead = [k for k in models["key"].head(LEADING_MODELS) if k in run.cv_predictions.columns]
    if "reference" in run.cv_predictions.columns:
        lead.append("reference")
    cvp = run.cv_predictions
    curves = {}
    for key in lead:
        fpr, tpr, _ = roc_curve(cvp["y"], cvp[key])
        prec, rec, _ = precision_recall_curve(cvp["y"], cvp[key])
        row = board.set_index("key").loc[key]
        curves[key] = {
            "fpr": fpr,
            "tpr": tpr,
            "precision": prec,
            "recall": rec,
            "roc_auc": float(row["roc_auc_mean"]),
            "pr_auc": float(row["pr_auc_mean"]),
        }
    m = run.metrics
    train_test = [
        {
            "metric": k,
            "train": m["train"].get(k),
            "test": m["test"].get(k),
            "cv": m.get("cv", {}).get(f"{k}_mean"),
            "gap": m["train"].get(k, np.nan) - m["test"].get(k, np.nan),
        }
        for k in METRICS
        if k in m["test"]
    ]
    ref = m.get("reference")
    return {
        "board": board,
        "curves": curves,
        "train_test": train_test,
        "reference": ref,
        "chosen_key": m["chosen"]["key"],
        "base_rate": float(cvp["y"].mean()),
        "objective": m.get("objective", "pr_auc"),
    }


# ------------------------------------------------------------------ 3. imbalance


def imbalance_section(run: Run) -> dict:
    """Each strategy against 'none' for the same family, on the same folds."""
    board = run.leaderboard[~run.leaderboard["is_reference"].astype(bool)].set_index("key")
    rows = []
    for key, r in board.iterrows():
        base_key = f"{r['family']}/none"
        # Tuned rows would be compared with an untuned baseline; their untuned twin is on the board.
        if r["strategy"] == "none" or base_key not in board.index or bool(r["tuned"]):
            continue
        b = board.loc[base_key]
        d_pr = r["pr_auc_mean"] - b["pr_auc_mean"]
        noise = max(float(b["pr_auc_sd"]), float(r["pr_auc_sd"]), 1e-9)
        verdict = "helped" if d_pr > noise else "hurt" if d_pr < -noise else "no clear difference"
        rows.append(
            {
                "key": key,
                "family": r["family"],
                "model": r["model"],
                "strategy": r["strategy"],
                "strategy_label": STRATEGY_LABELS.get(r["strategy"], r["strategy"]),
                "pr_auc": r["pr_auc_mean"],
                "d_pr_auc": d_pr,
                "sd": noise,
                "d_recall": r["recall_mean"] - b["recall_mean"],
                "d_precision": r["precision_mean"] - b["precision_mean"],
                "d_brier": r["brier_mean"] - b["brier_mean"],
                "verdict": verdict,
            }
        )
    df = pd.DataFrame(rows)
    summary = []
    if len(df):
        helped = sorted(set(df.loc[df["verdict"] == "helped", "strategy_label"]))
        summary.append(
            "On this data, "
            + (
                f"{', '.join(helped)} improved PR AUC beyond fold noise for at least one model."
                if helped
                else "no imbalance strategy improved PR AUC beyond fold noise for any model: they shift probabilities "
                "(higher recall at 0.5, worse calibration) without ranking users better."
            )
        )
        for strat, g in df.groupby("strategy", sort=False):
            counts = g["verdict"].value_counts()
            label = STRATEGY_LABELS.get(strat, strat)
            summary.append(
                f"{label}: helped PR AUC for {counts.get('helped', 0)}, hurt it for {counts.get('hurt', 0)} and made "
                f"no clear difference for {counts.get('no clear difference', 0)} of {len(g)} model(s); "
                f"mean change {signed(g['d_pr_auc'].mean())} PR AUC, {signed(g['d_recall'].mean())} recall at 0.5, "
                f"{signed(g['d_brier'].mean())} Brier (higher Brier = worse calibrated)"
            )
    return {"table": df, "summary": summary}


# ------------------------------------------------------------------ 4. chosen model


def chosen_section(run: Run) -> dict:
    m = run.metrics
    thr = float(m["threshold"]["value"])
    y, p = run.y("test"), run.rows("test")["p"].to_numpy()
    cm = confusion_matrix(y, (p >= thr).astype(int), labels=[0, 1])
    frac, mean_pred = calibration_curve(y, p, n_bins=10, strategy="quantile")
    return {
        "threshold": thr,
        "objective": m["threshold"].get("objective", "f1"),
        "confusion": cm,
        "calibration": {"observed": frac, "predicted": mean_pred},
        "brier": m["test"]["brier"],
        "chosen": m["chosen"],
        "tuning": m.get("tuning", {}),
        "test": m["test"],
    }


# ------------------------------------------------------------------ 5. drivers


def permutation_table(estimator, X: pd.DataFrame, y: np.ndarray, seed: int, repeats: int = 3) -> pd.DataFrame:
    """Drop in test PR AUC when one input column is shuffled (the pipeline takes the original columns)."""
    r = permutation_importance(
        estimator, X, y, scoring="average_precision", n_repeats=repeats, random_state=seed, n_jobs=1
    )
    return (
        pd.DataFrame({"name": X.columns, "importance": r.importances_mean, "sd": r.importances_std})
        .sort_values("importance", ascending=False)
        .reset_index(drop=True)
    )


def shap_by_column(bundle: Bundle, X: pd.DataFrame, seed: int, rows: int = SHAP_ROWS) -> dict:
    """SHAP values of the chosen model, summed back to the original input columns.

    Tree models use the exact TreeExplainer on the pipeline's model step; other families use the
    model-agnostic permutation explainer on a small sample, directly on the original columns."""
    import shap

    family = bundle.metadata.get("family", "")
    cols = list(X.columns)
    Xs = X.sample(min(rows, len(X)), random_state=seed)
    pipe = inner_pipeline(bundle.pipeline)
    kind = FAMILIES[family].shap if family in FAMILIES else "kernel"
    if kind == "tree":
        pre, model = pipe[:-1], pipe.steps[-1][1]
        Z = np.asarray(pre.transform(Xs), dtype="float64")
        names = list(pre.get_feature_names_out())
        with warnings.catch_warnings():  # shap notes a change of LightGBM's output format; handled below
            warnings.simplefilter("ignore", UserWarning)
            sv = shap.TreeExplainer(model).shap_values(Z)
        sv = np.asarray(sv[1] if isinstance(sv, list) else sv)
        if sv.ndim == 3:
            sv = sv[..., 1]
        values = np.zeros((len(Xs), len(cols)))
        for j, shares in enumerate(source_columns(names, cols, bundle.schema.categorical)):
            for c, w in shares.items():
                if c in cols:
                    values[:, cols.index(c)] += w * sv[:, j]
        units = "log-odds" if family == "gbm" else "probability"
        method = "TreeExplainer (exact), one-hot and ratio columns summed back to their source columns"
    else:
        Xs = Xs.head(100)
        cats = {c: pd.Index(sorted(X[c].unique())) for c in cols if X[c].dtype.kind not in "fiu"}

        def to_num(df):
            return np.column_stack(
                [cats[c].get_indexer(df[c]) if c in cats else df[c].to_numpy(dtype=float) for c in cols]
            ).astype(float)

        def f(A):
            df = pd.DataFrame(
                {c: (cats[c][A[:, i].astype(int)] if c in cats else A[:, i]) for i, c in enumerate(cols)}
            )
            return bundle.pipeline.predict_proba(df)[:, 1]

        background = to_num(X.sample(min(50, len(X)), random_state=seed + 1))
        explainer = shap.explainers.Permutation(f, shap.maskers.Independent(background), seed=seed)
        values = explainer(to_num(Xs), max_evals=max(10 * len(cols), 2 * len(cols) + 1), silent=True).values
        units = "probability"
        method = "permutation explainer on 100 rows against a 50-row background, on the original columns"
    imp = (
        pd.DataFrame({"name": cols, "mean_abs": np.abs(values).mean(axis=0)})
        .sort_values("mean_abs", ascending=False)
        .reset_index(drop=True)
    )
    return {"values": values, "X": Xs, "columns": cols, "importance": imp, "units": units, "method": method}


def logit_table(X: pd.DataFrame, y: np.ndarray, columns: list[str]) -> dict:
    """statsmodels Logit with an intercept on log2(1 + x) of non-negative columns: odds ratio per
    doubling, with 95% CI and p-value. Heavy tails make the raw scale meaningless here."""
    import statsmodels.api as sm

    Z = pd.DataFrame(index=X.index)
    scale = {}
    for c in columns:
        v = X[c].fillna(X[c].median())
        if v.min() >= 0:
            Z[c], scale[c] = np.log2(1 + v), "per doubling of (1 + value)"
        else:
            Z[c], scale[c] = (v - v.mean()) / (v.std() or 1), "per standard deviation"
    Z = Z.loc[:, Z.std() > 0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.Logit(np.asarray(y, dtype=float), sm.add_constant(Z, has_constant="add")).fit(
                disp=0, maxiter=200, method="newton"
            )
    except Exception as e:  # separation or a singular matrix: say so instead of failing the report
        return {"table": pd.DataFrame(), "error": f"{type(e).__name__}: {e}"}
    ci = fit.conf_int(0.05)
    t = pd.DataFrame(
        {
            "name": fit.params.index,
            "coef": fit.params.values,
            "odds_ratio": np.exp(fit.params.values),
            "low": np.exp(ci[0].values),
            "high": np.exp(ci[1].values),
            "p_value": fit.pvalues.values,
        }
    )
    t["scale"] = t["name"].map(scale).fillna("baseline odds")
    return {"table": t, "error": None, "pseudo_r2": float(fit.prsquared), "n": int(fit.nobs)}


def pdp_curves(estimator, X: pd.DataFrame, features: list[str], seed: int) -> list[dict]:
    """sklearn's partial dependence of the upgrade probability, on a sample, within the 1st-99th percentile."""
    Xs = X.sample(min(800, len(X)), random_state=seed)
    out = []
    for f in features:
        r = partial_dependence(
            estimator,
            Xs,
            [f],
            kind="average",
            grid_resolution=20,
            percentiles=(0.01, 0.99),
            response_method="predict_proba",
        )
        out.append({"feature": f, "grid": np.asarray(r["grid_values"][0]), "average": r["average"][0]})
    return out


def tree_rules(X_tr, y_tr, X_te, y_te, columns: list[str], seed: int, depth: int = 3) -> dict:
    """A shallow sklearn tree on the behaviour columns; each leaf as an IF ... rule with its upgrade
    rate on the test set (Wilson 95% interval)."""
    from sklearn.metrics import roc_auc_score
    from statsmodels.stats.proportion import proportion_confint

    leaf_min = max(30, int(0.01 * len(X_tr)))
    tree = DecisionTreeClassifier(max_depth=depth, min_samples_leaf=leaf_min, random_state=seed)
    tree.fit(X_tr[columns].fillna(0), y_tr)
    t = tree.tree_
    rules = []

    def walk(node, bounds):
        if t.children_left[node] == -1:
            rules.append((node, dict(bounds)))
            return
        f, thr = columns[t.feature[node]], float(t.threshold[node])
        lo, hi = bounds.get(f, (-np.inf, np.inf))
        walk(t.children_left[node], {**bounds, f: (lo, min(hi, thr))})
        walk(t.children_right[node], {**bounds, f: (max(lo, thr), hi)})

    walk(0, {})
    leaf_te = tree.apply(X_te[columns].fillna(0))
    rows = []
    for node, bounds in rules:
        parts = []
        for f, (lo, hi) in bounds.items():
            if np.isfinite(lo) and np.isfinite(hi):
                parts.append(f"{lo:.4g} < {f} ≤ {hi:.4g}")
            elif np.isfinite(hi):
                parts.append(f"{f} ≤ {hi:.4g}")
            else:
                parts.append(f"{f} > {lo:.4g}")
        mask = leaf_te == node
        n, k = int(mask.sum()), int(y_te[mask].sum())
        lo_ci, hi_ci = proportion_confint(k, n, method="wilson") if n else (np.nan, np.nan)
        rows.append(
            {
                "rule": " and ".join(parts) or "everyone",
                "train_rows": int(t.n_node_samples[node]),
                "train_rate": float(t.value[node][0][1] / t.value[node][0].sum()),
                "test_rows": n,
                "test_upgrades": k,
                "test_rate": k / n if n else np.nan,
                "low": lo_ci,
                "high": hi_ci,
            }
        )
    table = pd.DataFrame(rows).sort_values("train_rate", ascending=False).reset_index(drop=True)
    p = tree.predict_proba(X_te[columns].fillna(0))[:, 1]
    return {
        "table": table,
        "text": export_text(tree, feature_names=columns, decimals=1, show_weights=True),
        "columns": columns,
        "depth": depth,
        "min_leaf": leaf_min,
        "test_roc_auc": float(roc_auc_score(y_te, p)) if len(np.unique(y_te)) == 2 else np.nan,
    }


def drivers_section(run: Run) -> dict:
    seed, t0 = run.seed, time.perf_counter()
    Xte, yte, Xtr, ytr = run.X("test"), run.y("test"), run.X("train"), run.y("train")
    out = {"permutation": permutation_table(run.model.pipeline, Xte[run.model.schema.names], yte, seed)}
    run.timings["permutation"] = time.perf_counter() - t0
    if run.no_leak is not None:
        out["permutation_no_leak"] = permutation_table(
            run.no_leak.pipeline, Xte[run.no_leak.schema.names], yte, seed
        )
    t0 = time.perf_counter()
    out["shap"] = shap_by_column(run.model, Xte[run.model.schema.names], seed)
    run.timings["shap"] = time.perf_counter() - t0
    numeric = [c for c in run.model.schema.numeric]
    out["logit"] = logit_table(Xtr, ytr, numeric)
    if run.leaky:
        out["logit_no_leak"] = logit_table(Xtr, ytr, [c for c in numeric if c not in run.leaky])
    # Side-by-side tables for the report: one row per column, "_no_leak" columns NaN where unused.
    imp = out["permutation"]
    if "permutation_no_leak" in out:
        imp = imp.merge(out["permutation_no_leak"], on="name", how="left", suffixes=("", "_no_leak"))
    out["importance_table"] = imp
    odds = out["logit"]["table"]
    if len(odds) and len(out.get("logit_no_leak", {}).get("table", [])):
        odds = odds.merge(out["logit_no_leak"]["table"], on="name", how="left", suffixes=("", "_no_leak"))
    out["odds_table"] = odds
    t0 = time.perf_counter()
    top = [f for f in out["permutation"]["name"] if f in numeric][:3]
    out["pdp"] = pdp_curves(run.model.pipeline, Xte[run.model.schema.names], top, seed)
    run.timings["partial_dependence"] = time.perf_counter() - t0
    behaviour = [c for c in numeric if c not in run.leaky]
    out["tree"] = (
        tree_rules(Xtr, ytr, Xte, yte, behaviour or numeric, seed) if (behaviour or numeric) else None
    )
    out["tree_without"] = list(run.leaky)
    return out


# ------------------------------------------------------------------ 6. segments


def _auc_ranks(y, p, axis=-1):
    """ROC AUC by the Mann-Whitney rank identity, vectorised over bootstrap resamples (scipy calls it
    with a resample axis; roc_auc_score would need a Python loop per resample)."""
    from scipy.stats import rankdata

    r = rankdata(p, axis=axis)
    n1 = np.sum(y, axis=axis)
    n0 = y.shape[axis] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.sum(r * y, axis=axis) - n1 * (n1 + 1) / 2) / (n1 * n0)


def auc_interval(y: np.ndarray, p: np.ndarray, seed: int, n_boot: int = 300) -> tuple[float, float, float]:
    from scipy.stats import bootstrap

    y = np.asarray(y, dtype=float)
    if y.sum() < 5 or (len(y) - y.sum()) < 5:
        return np.nan, np.nan, np.nan
    res = bootstrap(
        (y, np.asarray(p, dtype=float)),
        _auc_ranks,
        paired=True,
        vectorized=True,
        method="percentile",
        n_resamples=n_boot,
        random_state=seed,
    )
    return float(_auc_ranks(y, p)), float(res.confidence_interval.low), float(res.confidence_interval.high)


def segments_section(run: Run) -> dict | None:
    """Upgrade rate (Wilson interval) and out-of-sample ROC AUC (bootstrap interval) per category."""
    from statsmodels.stats.proportion import proportion_confint

    cats = run.dataset.schema.categorical
    if not cats:
        return None
    col = cats[0]
    pr = run.predictions
    # Out-of-sample score for every row: out-of-fold on training rows, held-out on test rows.
    p = pr["oof"].where(pr["set"] == "train", pr["p"]).to_numpy()
    p_nl = (
        pr["oof_no_leak"].where(pr["set"] == "train", pr["p_no_leak"]).to_numpy()
        if "p_no_leak" in pr
        else None
    )
    y = pr["y"].to_numpy(dtype=int)
    codes = run.dataset.X[col].iloc[pr["row"].to_numpy()].to_numpy()
    counts = pd.Series(codes).value_counts()
    top = list(counts.index[:TOP_SEGMENTS])
    overall = float(y.mean())
    rows = []
    for name in top + ["other"]:
        mask = ~np.isin(codes, top) if name == "other" else codes == name
        n, k = int(mask.sum()), int(y[mask].sum())
        if not n:
            continue
        lo, hi = proportion_confint(k, n, method="wilson")
        auc = auc_interval(y[mask], p[mask], run.seed)
        row = {
            "segment": name if name != "other" else f"other ({len(counts) - len(top)} codes)",
            "rows": n,
            "upgrades": k,
            "rate": k / n,
            "low": lo,
            "high": hi,
            "auc": auc[0],
            "auc_low": auc[1],
            "auc_high": auc[2],
            "verdict": "above overall"
            if lo > overall
            else "below overall"
            if hi < overall
            else "not distinguishable",
        }
        if p_nl is not None:
            a = auc_interval(y[mask], p_nl[mask], run.seed)
            row.update(auc_no_leak=a[0], auc_no_leak_low=a[1], auc_no_leak_high=a[2])
        rows.append(row)
    return {
        "column": col,
        "table": pd.DataFrame(rows),
        "overall": overall,
        "distinct": int(len(counts)),
        "top": TOP_SEGMENTS,
    }


# ------------------------------------------------------------------ 7. targeting


def targeting_section(run: Run) -> dict:
    """Curves and policies for the model fit to score today's users (the no-leak one when it exists)."""
    pr = run.predictions
    use_nl = run.no_leak is not None and "p_no_leak" in pr
    pcol, ocol = ("p_no_leak", "oof_no_leak") if use_nl else ("p", "oof")
    tr, te = pr[pr["set"] == "train"], pr[pr["set"] == "test"]
    y_te, p_te = te["y"].to_numpy(int), te[pcol].to_numpy()
    curves = {"model fit to score today" if use_nl else "chosen model": p_te}
    if use_nl:
        curves["chosen model (with " + ", ".join(run.leaky) + ")"] = te["p"].to_numpy()
    if "p_reference" in te and te["p_reference"].notna().all():
        curves["course reference"] = te["p_reference"].to_numpy()
    gains = {k: targeting.gains_curve(y_te, v) for k, v in curves.items()}
    policies = targeting.recommend_policies(
        tr["y"].to_numpy(int),
        tr[ocol].to_numpy(),
        y_te,
        p_te,
        run.offer_cost,
        run.upgrade_value,
        n_boot=N_BOOT,
        seed=run.seed,
    )
    for f in ("offers", "upgraders_reached", "profit"):
        for s in ("", "_low", "_high"):
            policies[f"{f}{s}_per_1000"] = policies[f + s] * 1000 / len(y_te)
    return {
        "model": "no_leak" if use_nl else "chosen",
        "gains": gains,
        "deciles": targeting.gains_table(y_te, p_te, bins=10),
        "profit": targeting.profit_curve(y_te, p_te, run.offer_cost, run.upgrade_value),
        "policies": policies,
        "offer_cost": run.offer_cost,
        "upgrade_value": run.upgrade_value,
        "defaults": {"offer_cost": config.OFFER_COST, "upgrade_value": config.UPGRADE_VALUE},
        "n_test": int(len(y_te)),
        "n_boot": N_BOOT,
        "base_rate": float(y_te.mean()),
    }


# ------------------------------------------------------------------ everything


def build_insights(run: Run) -> dict:
    """Compute every section; timings (seconds) land in run.timings."""
    steps = [
        ("data", lambda: data_section(run)),
        ("comparison", lambda: comparison_section(run)),
        ("imbalance", lambda: imbalance_section(run)),
        ("chosen", lambda: chosen_section(run)),
        ("drivers", lambda: drivers_section(run)),
        ("segments", lambda: segments_section(run)),
        ("targeting", lambda: targeting_section(run)),
    ]
    ins = {}
    for name, f in steps:
        t0 = time.perf_counter()
        ins[name] = f()
        run.timings[name] = time.perf_counter() - t0
    ins["caveats"] = caveats_section(run, ins["drivers"])
    ins["recommendations"] = recommendations(ins)
    return ins
