"""What drives upgrades: permutation importance, SHAP, odds ratios, partial dependence and tree rules.

The steps that call the model many times (permutation importance, SHAP, partial dependence) run on
stratified samples of the test rows, sized from the model's cost so the report takes seconds on any
family and up to 100,000 rows; the report states every sample's size."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats.mstats import mquantiles
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier, export_text
from sklearn.utils import check_random_state
from statsmodels.discrete.discrete_model import Logit
from statsmodels.stats.proportion import proportion_confint
from statsmodels.tools.tools import add_constant

from .. import config
from ..bundle import Bundle
from ..features import source_weights
from ..models import inner_pipeline
from ..scoring.scorer import Scorer
from ..training.runs import Run

PERMUTATION_REPEATS = 3
PDP_GRID = 20
PDP_FEATURES = 3
STACK_ROWS = 200_000  # rows scored in one call by permutation importance and partial dependence

Step = Callable[[str], None]  # told the name of each step as it starts (the report's progress bar)


@dataclass(frozen=True)
class ShapSummary:
    """SHAP values per original input column, on a stratified sample of test rows."""

    values: np.ndarray  # rows × columns
    X: pd.DataFrame  # the sampled rows
    columns: list[str]
    importance: pd.DataFrame  # name, mean_abs; largest first
    units: str
    method: str  # how the values were computed, with the sample's size
    test_rows: int = 0  # how many test rows the sample was drawn from

    @property
    def rows(self) -> int:
        return len(self.X)


@dataclass(frozen=True)
class Samples:
    """How many of the test rows permutation importance and partial dependence use."""

    test_rows: int
    permutation: int
    pdp: int
    row_seconds: float  # the estimated cost of scoring one row that sized them


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
    samples: Samples  # the sizes permutation importance and partial dependence used
    permutation_no_leak: pd.DataFrame | None = None
    logit_no_leak: LogitFit | None = None


# ------------------------------------------------------------------ samples and their cost


def stratified_rows(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Positions of n rows drawn without replacement, in the label's proportions (all rows when n
    covers them; a plain random draw when a class is too rare to stratify)."""
    total = len(y)
    if n >= total:
        return np.arange(total)
    idx = np.arange(total)
    try:
        keep, _ = train_test_split(idx, train_size=n, stratify=y, random_state=seed)
    except ValueError:  # a class with a single row cannot be split in proportion
        keep = np.random.default_rng(seed).choice(idx, n, replace=False)
    return np.sort(keep)


def _sample(X: pd.DataFrame, y: np.ndarray | None, n: int, seed: int) -> pd.DataFrame:
    if y is None:  # no labels to stratify by: a plain random draw
        return X.sample(min(n, len(X)), random_state=seed) if n < len(X) else X
    return X.iloc[stratified_rows(y, n, seed)]


def _final_model(estimator: Any) -> Any:
    inner = inner_pipeline(estimator)
    return inner.steps[-1][1] if hasattr(inner, "steps") else inner


@dataclass(frozen=True)
class Cost:
    """Estimated CPU seconds to score with a model: per row, and per call whatever its rows."""

    row: float
    call: float


def scoring_cost(estimator: Any) -> Cost:
    """About the same for every family except k-nearest neighbours, which measures each row against
    every training row and reads its whole training set on every call (constants in config, measured
    on the 2-core machine the report's 15 s bar is set for)."""
    model = _final_model(estimator)
    if isinstance(model, KNeighborsClassifier):
        cells = model.n_samples_fit_ * model.n_features_in_
        return Cost(
            config.REPORT_ROW_SECONDS + cells * config.REPORT_KNN_CELL_SECONDS,
            config.REPORT_CALL_SECONDS + cells * config.REPORT_KNN_CALL_CELL_SECONDS,
        )
    return Cost(config.REPORT_ROW_SECONDS, config.REPORT_CALL_SECONDS)


def _size(budget_s: float, seconds_each: float, low: int, high: int, n: int) -> int:
    """A sample size that spends about budget_s, within [low, high] and at most n."""
    return int(min(n, high, max(low, int(max(budget_s, 0.0) / seconds_each))))


def plan_samples(estimators: list[Any], test_rows: int, columns: int) -> Samples:
    """Sample sizes for permutation importance and partial dependence, from the costliest model.

    Permutation importance scores 1 + columns x repeats copies of its sample per model, partial
    dependence grid x features copies, each in one call. The same sample serves every model so
    their results compare."""
    cost = max((scoring_cost(e) for e in estimators), key=lambda c: c.row)
    copies = (1 + columns * PERMUTATION_REPEATS) * len(estimators)
    return Samples(
        test_rows=test_rows,
        permutation=_size(
            config.REPORT_PERMUTATION_SECONDS - len(estimators) * cost.call,
            cost.row * copies,
            config.REPORT_PERMUTATION_MIN_ROWS,
            config.REPORT_PERMUTATION_ROWS,
            test_rows,
        ),
        pdp=_size(
            config.REPORT_PDP_SECONDS - cost.call,
            cost.row * PDP_GRID * PDP_FEATURES,
            config.REPORT_PDP_MIN_ROWS,
            config.REPORT_PDP_ROWS,
            test_rows,
        ),
        row_seconds=cost.row,
    )


# ------------------------------------------------------------------ permutation importance


def _stacked_proba(estimator: Any, frames: list[pd.DataFrame]) -> np.ndarray:
    """Positive-class probabilities of equal-length frames (one row each in the result), scored in as
    few calls as memory allows."""
    n = len(frames[0])
    per_call = max(1, STACK_ROWS // max(n, 1))
    out = [
        estimator.predict_proba(pd.concat(frames[i : i + per_call], ignore_index=True))[:, 1]
        for i in range(0, len(frames), per_call)
    ]
    return np.concatenate(out).reshape(len(frames), n)


def permutation_table(
    estimator: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    seed: int,
    repeats: int = PERMUTATION_REPEATS,
    rows: int | None = None,
) -> pd.DataFrame:
    """Drop in test PR AUC when one input column is shuffled (the pipeline takes the original columns),
    on a stratified sample of `rows` rows (all rows when None).

    The numbers are sklearn.inspection.permutation_importance's (the same shuffles, drawn the way it
    draws them, and the same scores; a test holds them equal), but every shuffled copy is scored in
    one call: sklearn calls the model once per column and repeat, and a model whose every call reads
    its whole training set (k-nearest neighbours) spent seconds on the calls alone."""
    keep = stratified_rows(y, len(y) if rows is None else rows, seed)
    Xs, ys = X.iloc[keep].reset_index(drop=True), np.asarray(y)[keep]
    column_seed = check_random_state(seed).randint(np.iinfo(np.int32).max + 1)
    frames = [Xs]
    for c in Xs.columns:
        rng, order, values = check_random_state(column_seed), np.arange(len(Xs)), Xs[c].to_numpy()
        for _ in range(repeats):  # as sklearn does: each repeat reshuffles the shuffled column
            rng.shuffle(order)
            values = values[order]
            frames.append(Xs.assign(**{c: values}))
    p = _stacked_proba(estimator, frames)
    base = average_precision_score(ys, p[0])
    drops = np.array([base - average_precision_score(ys, q) for q in p[1:]]).reshape(Xs.shape[1], repeats)
    return (
        pd.DataFrame({"name": Xs.columns, "importance": drops.mean(axis=1), "sd": drops.std(axis=1)})
        .sort_values("importance", ascending=False)
        .reset_index(drop=True)
    )


# ------------------------------------------------------------------ SHAP, the fastest exact path per family


def shap_by_column(
    bundle: Bundle, X: pd.DataFrame, seed: int, rows: int | None = None, y: np.ndarray | None = None
) -> ShapSummary:
    """SHAP values of the chosen model per original column, on a stratified sample of X's rows.

    LightGBM: its own TreeSHAP (pred_contrib, the scorer's `--explain` path); decision trees and
    forests: shap's path-dependent TreeExplainer; logistic regression: exact linear SHAP from the
    coefficients; k-nearest neighbours and the SVM: shap's KernelExplainer. `rows` None sizes
    the sample from the model's cost (small for forests of deep trees and for the model-agnostic
    explainer); encoded columns are summed back to their source columns with features.source_weights."""
    import shap  # here, not at the top: it adds about 0.4 s to every command of the CLI

    cols = list(bundle.schema.names) if set(bundle.schema.names) == set(X.columns) else list(X.columns)
    X = X[cols]
    pipe = inner_pipeline(bundle.pipeline)
    model = _final_model(bundle.pipeline)
    total = len(X)

    def sized(seconds_per_row: float = 0.0) -> int:
        """`rows` when given; else as many as the budget buys (cheap exact paths: the configured most)."""
        if rows is not None:
            return min(rows, total)
        if seconds_per_row <= 0:
            return min(config.REPORT_SHAP_ROWS, total)
        return _size(
            config.REPORT_SHAP_SECONDS,
            seconds_per_row,
            config.REPORT_SHAP_MIN_ROWS,
            config.REPORT_SHAP_ROWS,
            total,
        )

    def of(n: int) -> str:
        return (
            f"a stratified sample of {n:,} of {total:,} test rows"
            if n < total
            else f"all {total:,} test rows"
        )

    if hasattr(model, "booster_"):
        Xs = _sample(X, y, sized(), seed)
        values, names = Scorer(bundle).contributions(Xs)
        values = values[:, [names.index(c) for c in cols]]
        units = "log-odds"
        method = f"LightGBM's own TreeSHAP (pred_contrib, exact) on {of(len(Xs))}"
    elif isinstance(model, DecisionTreeClassifier | RandomForestClassifier):
        trees = getattr(model, "estimators_", [model])
        nodes = sum(int(t.tree_.node_count) for t in trees)
        per_row = nodes * config.REPORT_TREESHAP_NODE_SECONDS
        Xs = _sample(X, y, sized(per_row), seed)
        explainer = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
        values = _class1(explainer.shap_values(_encoded(pipe, Xs))) @ _weights(bundle, pipe, cols)
        units = "probability"
        what = f"the forest's {len(trees)} trees hold" if len(trees) > 1 else "the tree holds"
        method = (
            f"Path-dependent TreeSHAP (shap's TreeExplainer, exact) on {of(len(Xs))}; {what} {nodes:,} nodes, "
            f"and exact values cost time in proportion to them (about {per_row:.2g} s a row)"
        )
    elif isinstance(model, LogisticRegression):
        Xs = _sample(X, y, sized(), seed)
        Z_all = _encoded(pipe, X)
        # Independent features: coefficient x (value - mean) on the model's own scale, exactly.
        explainer = shap.LinearExplainer(model, (Z_all.mean(axis=0), np.cov(Z_all, rowvar=False)))
        values = np.asarray(explainer.shap_values(_encoded(pipe, Xs))) @ _weights(bundle, pipe, cols)
        units = "log-odds"
        method = (
            f"Exact linear SHAP from the logistic regression's coefficients (each column's distance "
            f"from the test average) on {of(len(Xs))}"
        )
    else:
        values, Xs, method = _kernel_shap(bundle, X, y, seed, rows)
        units = "probability"
    imp = (
        pd.DataFrame({"name": cols, "mean_abs": np.abs(values).mean(axis=0)})
        .sort_values("mean_abs", ascending=False)
        .reset_index(drop=True)
    )
    return ShapSummary(values, Xs, cols, imp, units, method, total)


def _encoded(pipe: Any, X: pd.DataFrame) -> np.ndarray:
    """The matrix the pipeline's model sees (samplers act only in fit, so transform skips them)."""
    return np.asarray(pipe[:-1].transform(X), dtype="float64")


def _weights(bundle: Bundle, pipe: Any, cols: list[str]) -> np.ndarray:
    """Encoded columns -> original columns, named as the scorer names them for `--explain`."""
    return source_weights(Scorer.encoded_names(pipe), cols, bundle.schema.categorical)


def _class1(sv: Any) -> np.ndarray:
    """The positive class's values from any of shap's output layouts."""
    sv = np.asarray(sv[1] if isinstance(sv, list) else sv)
    return sv[..., 1] if sv.ndim == 3 else sv


def _kernel_shap(
    bundle: Bundle, X: pd.DataFrame, y: np.ndarray | None, seed: int, rows: int | None
) -> tuple[np.ndarray, pd.DataFrame, str]:
    """shap's model-agnostic KernelExplainer on the original columns, against a few background rows.

    Kernel SHAP, not shap's permutation explainer: that one compiles numba code on its first call in
    every process (about 5 s, a third of the report's budget). With few columns every coalition is
    evaluated, and the values are exact with respect to the background."""
    import shap

    cols = list(X.columns)
    background_rows = min(config.REPORT_AGNOSTIC_BACKGROUND, len(X))
    every = 2 ** len(cols) - 2
    # Sampled coalitions must outnumber the columns for the regression to determine every value.
    coalitions = min(every, max(config.REPORT_AGNOSTIC_COALITIONS, 4 * len(cols)))
    # Each explained row costs two calls of the model: the row itself, then every coalition x background.
    cost = scoring_cost(bundle.pipeline)
    per_row = 2 * cost.call + coalitions * background_rows * cost.row
    n = (
        min(rows, len(X))
        if rows is not None
        else _size(
            config.REPORT_AGNOSTIC_SECONDS,
            per_row,
            config.REPORT_SHAP_MIN_ROWS,
            config.REPORT_AGNOSTIC_ROWS,
            len(X),
        )
    )
    Xs = _sample(X, y, n, seed)
    to_num, f = _numeric_view(bundle, X, cols)
    background = to_num(_sample(X, y, background_rows, seed + 1))
    np.random.seed(seed)  # KernelExplainer draws its coalitions from numpy's global generator
    explainer = shap.KernelExplainer(f, background)
    # l1_reg=False: every column gets its value (shap's default keeps only the ten largest).
    values = np.asarray(explainer.shap_values(to_num(Xs), nsamples=coalitions, l1_reg=False, silent=True))
    how = (
        f"every coalition of the {len(cols)} columns"
        if coalitions == every
        else f"{coalitions} sampled coalitions of the {len(cols)} columns"
    )
    sample = f"a stratified sample of {len(Xs):,} of {len(X):,}" if len(Xs) < len(X) else f"all {len(X):,}"
    method = (
        f"Kernel SHAP (shap's KernelExplainer, {how}, against {background_rows} background rows) on the original "
        f"columns, on {sample} test rows: this model has no exact fast path"
    )
    return values, Xs, method


def _numeric_view(
    bundle: Bundle, X: pd.DataFrame, cols: list[str]
) -> tuple[Callable[[pd.DataFrame], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """Model-agnostic explainers work on a numeric matrix: categories become their code numbers, and
    the model sees them translated back (scored through the scorer, as `score` would)."""
    cats = {c: _codes(X[c]) for c in cols if X[c].dtype.kind not in "fiu"}
    scorer = Scorer(bundle)

    def to_num(df: pd.DataFrame) -> np.ndarray:
        # A missing cell is not found (-1), which indexes the last code: the missing one.
        return np.column_stack(
            [cats[c].get_indexer(pd.Index(df[c])) if c in cats else df[c].to_numpy(dtype=float) for c in cols]
        ).astype(float)

    def predict(A: np.ndarray) -> np.ndarray:
        df = pd.DataFrame(
            {c: (cats[c][A[:, i].astype(int)] if c in cats else A[:, i]) for i, c in enumerate(cols)}
        )
        return scorer.predict(df.astype({c: X[c].dtype for c in cols}))

    return to_num, predict


def _codes(column: pd.Series) -> pd.Index:
    """A category column's codes, sorted, with a missing cell as a code of its own (last)."""
    codes = pd.Index(sorted(column.dropna().unique()))
    return codes.append(pd.Index([np.nan])) if column.isna().any() else codes


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


def pdp_curves(
    estimator: Any,
    X: pd.DataFrame,
    features: list[str],
    seed: int,
    rows: int = config.REPORT_PDP_ROWS,
    y: np.ndarray | None = None,
) -> list[PdpCurve]:
    """Partial dependence of the upgrade probability, averaged over a stratified sample of `rows` rows,
    on a grid within the 1st-99th percentile.

    sklearn.inspection.partial_dependence's brute method and grid (a test holds the curves equal),
    with every grid value of every feature scored in one call instead of one call per value."""
    Xs = _sample(X, y, rows, seed).reset_index(drop=True)
    grids, frames = [], []
    for f in features:
        v = Xs[f].to_numpy()
        uniques = np.unique(v)
        if len(uniques) < PDP_GRID:  # sklearn's rule: few distinct values are the grid themselves
            grid = uniques
        else:
            lo, hi = mquantiles(v, prob=(0.01, 0.99), axis=0)
            grid = np.linspace(lo, hi, num=PDP_GRID, endpoint=True)
        grids.append(grid)
        frames += [Xs.assign(**{f: np.full(len(Xs), g, dtype=v.dtype)}) for g in grid]
    if not frames:
        return []
    averages = _stacked_proba(estimator, frames).mean(axis=1)
    out, start = [], 0
    for f, grid in zip(features, grids):
        out.append(PdpCurve(f, np.asarray(grid), averages[start : start + len(grid)]))
        start += len(grid)
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


def drivers_section(run: Run, step: Step | None = None) -> Drivers:
    """Every driver of the chosen model (and of the model without the leaky columns, when there is one)."""
    step = step or (lambda name: None)
    seed = run.info.seed
    Xte, yte, Xtr, ytr = run.X("test"), run.y("test"), run.X("train"), run.y("train")
    names = run.model.schema.names
    models = [run.model.pipeline] + ([run.no_leak.pipeline] if run.no_leak is not None else [])
    samples = plan_samples(models, len(Xte), len(names))

    def timed(name: str, what: str, build: Callable[[], Any]) -> Any:
        step(what)
        t0 = time.perf_counter()
        out = build()
        run.timings[f"drivers/{name}"] = time.perf_counter() - t0
        return out

    def permutation(bundle: Bundle) -> pd.DataFrame:
        cols = bundle.schema.names
        return permutation_table(bundle.pipeline, Xte[cols], yte, seed, rows=samples.permutation)

    perm, perm_nl = timed(
        "permutation",
        f"permutation importance ({samples.permutation:,} rows)",
        lambda: (permutation(run.model), None if run.no_leak is None else permutation(run.no_leak)),
    )
    shap = timed("shap", "SHAP values", lambda: shap_by_column(run.model, Xte[names], seed, y=yte))
    numeric = list(run.model.schema.numeric)
    top = [f for f in perm["name"] if f in numeric][:PDP_FEATURES]
    pdp = timed(
        "partial_dependence",
        f"partial dependence ({samples.pdp:,} rows)",
        lambda: pdp_curves(run.model.pipeline, Xte[names], top, seed, rows=samples.pdp, y=yte),
    )
    step("odds ratios and tree rules")
    t0 = time.perf_counter()
    logit = logit_table(Xtr, ytr, numeric)
    logit_nl = logit_table(Xtr, ytr, [c for c in numeric if c not in run.leaky]) if run.leaky else None
    behaviour = [c for c in numeric if c not in run.leaky] or numeric
    tree = tree_rules(Xtr, ytr, Xte, yte, behaviour, seed) if behaviour else None
    run.timings["drivers/logit_and_tree"] = time.perf_counter() - t0
    # Side-by-side tables for the report: one row per column, "_no_leak" columns NaN where unused.
    imp = perm
    if perm_nl is not None:
        imp = imp.merge(perm_nl, on="name", how="left", suffixes=("", "_no_leak"))
    odds = logit.table
    if len(odds) and logit_nl is not None and len(logit_nl.table):
        odds = odds.merge(logit_nl.table, on="name", how="left", suffixes=("", "_no_leak"))
    return Drivers(
        permutation=perm,
        shap=shap,
        logit=logit,
        importance_table=imp,
        odds_table=odds,
        pdp=pdp,
        tree=tree,
        tree_without=list(run.leaky),
        permutation_no_leak=perm_nl,
        logit_no_leak=logit_nl,
        samples=samples,
    )
