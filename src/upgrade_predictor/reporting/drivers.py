"""What drives upgrades: permutation importance, SHAP, odds ratios, partial dependence and tree rules."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import partial_dependence, permutation_importance
from sklearn.metrics import roc_auc_score
from sklearn.tree import DecisionTreeClassifier, export_text
from statsmodels.discrete.discrete_model import Logit
from statsmodels.stats.proportion import proportion_confint
from statsmodels.tools.tools import add_constant

from ..bundle import Bundle
from ..features import source_weights
from ..models import FAMILIES, inner_pipeline
from ..training.runs import Run

SHAP_ROWS = 1000


@dataclass(frozen=True)
class ShapSummary:
    """SHAP values per original input column, on a sample of test rows."""

    values: np.ndarray  # rows × columns
    X: pd.DataFrame  # the sampled rows
    columns: list[str]
    importance: pd.DataFrame  # name, mean_abs; largest first
    units: str
    method: str


@dataclass(frozen=True)
class LogitFit:
    """Odds ratios of a statsmodels Logit; `error` says why there are none."""

    table: pd.DataFrame  # name, coef, odds_ratio, low, high, p_value, scale
    error: str | None = None
    pseudo_r2: float | None = None
    n: int | None = None


@dataclass(frozen=True)
class PdpCurve:
    feature: str
    grid: np.ndarray
    average: np.ndarray


@dataclass(frozen=True)
class TreeRules:
    """A shallow tree's leaves as IF ... rules, with test-set upgrade rates."""

    table: pd.DataFrame  # rule, train_rows, train_rate, test_rows, test_upgrades, test_rate, low, high
    text: str
    columns: list[str]
    depth: int
    min_leaf: int
    test_roc_auc: float


@dataclass(frozen=True)
class Drivers:
    permutation: pd.DataFrame
    shap: ShapSummary
    logit: LogitFit
    importance_table: pd.DataFrame  # one row per column; "_no_leak" columns NaN where unused
    odds_table: pd.DataFrame  # the same, for odds ratios
    pdp: list[PdpCurve]
    tree: TreeRules | None
    tree_without: list[str]  # columns the tree leaves out
    permutation_no_leak: pd.DataFrame | None = None
    logit_no_leak: LogitFit | None = None


def permutation_table(
    estimator: Any, X: pd.DataFrame, y: np.ndarray, seed: int, repeats: int = 3
) -> pd.DataFrame:
    """Drop in test PR AUC when one input column is shuffled (the pipeline takes the original columns)."""
    r = permutation_importance(
        estimator, X, y, scoring="average_precision", n_repeats=repeats, random_state=seed, n_jobs=1
    )
    return (
        pd.DataFrame({"name": X.columns, "importance": r.importances_mean, "sd": r.importances_std})
        .sort_values("importance", ascending=False)
        .reset_index(drop=True)
    )


def shap_by_column(bundle: Bundle, X: pd.DataFrame, seed: int, rows: int = SHAP_ROWS) -> ShapSummary:
    """SHAP values of the chosen model, summed back to the original input columns.

    Tree models use the exact TreeExplainer on the pipeline's model step; other families use the
    model-agnostic permutation explainer on a small sample, directly on the original columns."""
    import shap  # here, not at the top: it adds about 0.4 s to every command of the CLI

    family = bundle.metadata.family or ""
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
        values = sv @ source_weights(names, cols, bundle.schema.categorical)
        units = "log-odds" if family == "gbm" else "probability"
        method = "TreeExplainer (exact), one-hot and ratio columns summed back to their source columns"
    else:
        Xs = Xs.head(100)
        to_num, f = _numeric_view(bundle, X, cols)
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
    return ShapSummary(values, Xs, cols, imp, units, method)


def _numeric_view(
    bundle: Bundle, X: pd.DataFrame, cols: list[str]
) -> tuple[Callable[[pd.DataFrame], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """The permutation explainer works on a numeric matrix: categories become their code numbers, and
    the model sees them translated back."""
    cats = {c: pd.Index(sorted(X[c].unique())) for c in cols if X[c].dtype.kind not in "fiu"}

    def to_num(df: pd.DataFrame) -> np.ndarray:
        return np.column_stack(
            [cats[c].get_indexer(df[c]) if c in cats else df[c].to_numpy(dtype=float) for c in cols]
        ).astype(float)

    def predict(A: np.ndarray) -> np.ndarray:
        df = pd.DataFrame(
            {c: (cats[c][A[:, i].astype(int)] if c in cats else A[:, i]) for i, c in enumerate(cols)}
        )
        return bundle.pipeline.predict_proba(df)[:, 1]

    return to_num, predict


def logit_table(X: pd.DataFrame, y: np.ndarray, columns: list[str]) -> LogitFit:
    """statsmodels Logit with an intercept on log2(1 + x) of non-negative columns: odds ratio per
    doubling, with 95% CI and p-value. Heavy tails make the raw scale meaningless here."""
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
            fit = Logit(np.asarray(y, dtype=float), add_constant(Z, has_constant="add")).fit(
                disp=0, maxiter=200, method="newton"
            )
    except Exception as e:  # separation or a singular matrix: say so instead of failing the report
        return LogitFit(pd.DataFrame(), error=f"{type(e).__name__}: {e}")
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
    return LogitFit(t, None, float(fit.prsquared), int(fit.nobs))


def pdp_curves(estimator: Any, X: pd.DataFrame, features: list[str], seed: int) -> list[PdpCurve]:
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
        out.append(PdpCurve(f, np.asarray(r["grid_values"][0]), np.asarray(r["average"][0])))
    return out


def _rule_text(bounds: dict[str, tuple[float, float]]) -> str:
    parts = []
    for f, (lo, hi) in bounds.items():
        if np.isfinite(lo) and np.isfinite(hi):
            parts.append(f"{lo:.4g} < {f} ≤ {hi:.4g}")
        elif np.isfinite(hi):
            parts.append(f"{f} ≤ {hi:.4g}")
        else:
            parts.append(f"{f} > {lo:.4g}")
    return " and ".join(parts) or "everyone"


def tree_rules(
    X_tr: pd.DataFrame,
    y_tr: np.ndarray,
    X_te: pd.DataFrame,
    y_te: np.ndarray,
    columns: list[str],
    seed: int,
    depth: int = 3,
) -> TreeRules:
    """A shallow sklearn tree on the behaviour columns; each leaf as an IF ... rule with its upgrade
    rate on the test set (Wilson 95% interval)."""
    leaf_min = max(30, int(0.01 * len(X_tr)))
    tree = DecisionTreeClassifier(max_depth=depth, min_samples_leaf=leaf_min, random_state=seed)
    tree.fit(X_tr[columns].fillna(0), y_tr)
    t = tree.tree_
    leaves: list[tuple[int, dict[str, tuple[float, float]]]] = []

    # sklearn exports a tree as text but not its leaves as bounds per column: walk it for those.
    def walk(node: int, bounds: dict[str, tuple[float, float]]) -> None:
        if t.children_left[node] == -1:
            leaves.append((node, dict(bounds)))
            return
        f, thr = columns[t.feature[node]], float(t.threshold[node])
        lo, hi = bounds.get(f, (-np.inf, np.inf))
        walk(t.children_left[node], {**bounds, f: (lo, min(hi, thr))})
        walk(t.children_right[node], {**bounds, f: (max(lo, thr), hi)})

    walk(0, {})
    leaf_te = tree.apply(X_te[columns].fillna(0))
    rows = []
    for node, bounds in leaves:
        mask = leaf_te == node
        n, k = int(mask.sum()), int(y_te[mask].sum())
        lo_ci, hi_ci = proportion_confint(k, n, method="wilson") if n else (np.nan, np.nan)
        rows.append(
            {
                "rule": _rule_text(bounds),
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
    return TreeRules(
        table,
        export_text(tree, feature_names=columns, decimals=1, show_weights=True),
        columns,
        depth,
        leaf_min,
        float(roc_auc_score(y_te, p)) if len(np.unique(y_te)) == 2 else np.nan,
    )


def drivers_section(run: Run) -> Drivers:
    seed, t0 = run.info.seed, time.perf_counter()
    Xte, yte, Xtr, ytr = run.X("test"), run.y("test"), run.X("train"), run.y("train")
    perm = permutation_table(run.model.pipeline, Xte[run.model.schema.names], yte, seed)
    run.timings["permutation"] = time.perf_counter() - t0
    perm_nl = (
        None
        if run.no_leak is None
        else permutation_table(run.no_leak.pipeline, Xte[run.no_leak.schema.names], yte, seed)
    )
    t0 = time.perf_counter()
    shap = shap_by_column(run.model, Xte[run.model.schema.names], seed)
    run.timings["shap"] = time.perf_counter() - t0
    numeric = list(run.model.schema.numeric)
    logit = logit_table(Xtr, ytr, numeric)
    logit_nl = logit_table(Xtr, ytr, [c for c in numeric if c not in run.leaky]) if run.leaky else None
    # Side-by-side tables for the report: one row per column, "_no_leak" columns NaN where unused.
    imp = perm
    if perm_nl is not None:
        imp = imp.merge(perm_nl, on="name", how="left", suffixes=("", "_no_leak"))
    odds = logit.table
    if len(odds) and logit_nl is not None and len(logit_nl.table):
        odds = odds.merge(logit_nl.table, on="name", how="left", suffixes=("", "_no_leak"))
    t0 = time.perf_counter()
    top = [f for f in perm["name"] if f in numeric][:3]
    pdp = pdp_curves(run.model.pipeline, Xte[run.model.schema.names], top, seed)
    run.timings["partial_dependence"] = time.perf_counter() - t0
    behaviour = [c for c in numeric if c not in run.leaky] or numeric
    return Drivers(
        permutation=perm,
        shap=shap,
        logit=logit,
        importance_table=imp,
        odds_table=odds,
        pdp=pdp,
        tree=tree_rules(Xtr, ytr, Xte, yte, behaviour, seed) if behaviour else None,
        tree_without=list(run.leaky),
        permutation_no_leak=perm_nl,
        logit_no_leak=logit_nl,
    )
