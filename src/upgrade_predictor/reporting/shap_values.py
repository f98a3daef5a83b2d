"""SHAP values of the chosen model per original input column, by the explainer its family owns
(models.FAMILIES): the model's own contributions (LightGBM's exact TreeSHAP), shap's tree or linear
explainer, else shap's model-agnostic KernelExplainer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import config
from ..bundle import Bundle
from ..features import encoded_names, source_weights
from ..models import Explainer, family_of, inner_pipeline
from .sampling import final_model, sample_rows, sample_size, scoring_cost


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
class Explained:
    """What one explainer returns: values per column of the sampled rows, their units and its method."""

    values: np.ndarray
    X: pd.DataFrame
    units: str
    method: str


@dataclass(frozen=True)
class Task:
    """What every explainer is given: the bundle, the test rows in the schema's column order, their
    labels (to stratify by), the seed and the sample size asked for (None: sized from the cost)."""

    bundle: Bundle
    X: pd.DataFrame
    y: np.ndarray | None
    seed: int
    rows: int | None

    @property
    def pipe(self) -> Any:
        return inner_pipeline(self.bundle.pipeline)

    @property
    def model(self) -> Any:
        return final_model(self.bundle.pipeline)

    def sized(self, seconds_per_row: float = 0.0, agnostic: bool = False) -> int:
        """`rows` when given; else as many as the budget buys (cheap exact paths: the configured most).
        The model-agnostic explainer has a budget and a most of its own."""
        total = len(self.X)
        most = config.REPORT_AGNOSTIC_ROWS if agnostic else config.REPORT_SHAP_ROWS
        if self.rows is not None:
            return min(self.rows, total)
        if seconds_per_row <= 0:
            return min(most, total)
        budget = config.REPORT_AGNOSTIC_SECONDS if agnostic else config.REPORT_SHAP_SECONDS
        return sample_size(budget, seconds_per_row, config.REPORT_SHAP_MIN_ROWS, most, total)

    def sample(self, n: int, seed_offset: int = 0) -> pd.DataFrame:
        return sample_rows(self.X, self.y, n, self.seed + seed_offset)

    def of(self, n: int) -> str:
        total = len(self.X)
        return (
            f"a stratified sample of {n:,} of {total:,} test rows"
            if n < total
            else f"all {total:,} test rows"
        )

    def encoded(self, X: pd.DataFrame) -> np.ndarray:
        """The matrix the pipeline's model sees (samplers act only in fit, so transform skips them)."""
        return np.asarray(self.pipe[:-1].transform(X), dtype="float64")

    def weights(self) -> np.ndarray:
        """Encoded columns -> original columns, named as the scorer names them for `--explain`."""
        return source_weights(encoded_names(self.pipe), list(self.X.columns), self.bundle.schema.categorical)


def shap_by_column(
    bundle: Bundle, X: pd.DataFrame, seed: int, rows: int | None = None, y: np.ndarray | None = None
) -> ShapSummary:
    """SHAP values of the chosen model per original column, on a stratified sample of X's rows.

    LightGBM: its own TreeSHAP (pred_contrib, the scorer's `--explain` path); decision trees and
    forests: shap's path-dependent TreeExplainer; logistic regression: exact linear SHAP from the
    coefficients; k-nearest neighbours and the SVM: shap's KernelExplainer. `rows` None sizes
    the sample from the model's cost (small for forests of deep trees and for the model-agnostic
    explainer); encoded columns are summed back to their source columns with features.source_weights."""
    cols = list(bundle.schema.names) if set(bundle.schema.names) == set(X.columns) else list(X.columns)
    task = Task(bundle, X[cols], y, seed, rows)
    out = EXPLAINERS[explainer_kind(task.model)](task)
    imp = (
        pd.DataFrame({"name": cols, "mean_abs": np.abs(out.values).mean(axis=0)})
        .sort_values("mean_abs", ascending=False)
        .reset_index(drop=True)
    )
    return ShapSummary(out.values, out.X, cols, imp, out.units, out.method, len(X))


def explainer_kind(model: Any) -> Explainer:
    """The explainer the family of a fitted model owns; model-agnostic for a model no family makes."""
    family = family_of(model)
    return "kernel" if family is None else family.explainer


def _contributions(task: Task) -> Explained:
    """LightGBM's own TreeSHAP on the encoded columns, summed back to the input's columns."""
    Xs = task.sample(task.sized())
    contrib = task.model.booster_.predict(task.encoded(Xs), pred_contrib=True)[:, :-1]  # last column: bias
    method = f"LightGBM's own TreeSHAP (pred_contrib, exact) on {task.of(len(Xs))}"
    return Explained(contrib @ task.weights(), Xs, "log-odds", method)


def _tree(task: Task) -> Explained:
    """shap's path-dependent TreeExplainer, on as many rows as the trees' size buys."""
    import shap  # here, not at the top: it adds about 0.4 s to every command of the CLI

    model = task.model
    trees = getattr(model, "estimators_", [model])
    nodes = sum(int(t.tree_.node_count) for t in trees)
    per_row = nodes * config.REPORT_TREESHAP_NODE_SECONDS
    Xs = task.sample(task.sized(per_row))
    explainer = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
    values = _class1(explainer.shap_values(task.encoded(Xs))) @ task.weights()
    what = f"the forest's {len(trees)} trees hold" if len(trees) > 1 else "the tree holds"
    method = (
        f"Path-dependent TreeSHAP (shap's TreeExplainer, exact) on {task.of(len(Xs))}; {what} {nodes:,} nodes, "
        f"and exact values cost time in proportion to them (about {per_row:.2g} s a row)"
    )
    return Explained(values, Xs, "probability", method)


def _linear(task: Task) -> Explained:
    """Independent features: coefficient x (value - mean) on the model's own scale, exactly."""
    import shap

    Xs = task.sample(task.sized())
    Z_all = task.encoded(task.X)
    explainer = shap.LinearExplainer(task.model, (Z_all.mean(axis=0), np.cov(Z_all, rowvar=False)))
    values = np.asarray(explainer.shap_values(task.encoded(Xs))) @ task.weights()
    method = (
        f"Exact linear SHAP from the logistic regression's coefficients (each column's distance "
        f"from the test average) on {task.of(len(Xs))}"
    )
    return Explained(values, Xs, "log-odds", method)


def _class1(sv: Any) -> np.ndarray:
    """The positive class's values from any of shap's output layouts."""
    sv = np.asarray(sv[1] if isinstance(sv, list) else sv)
    return sv[..., 1] if sv.ndim == 3 else sv


def _kernel(task: Task) -> Explained:
    """shap's model-agnostic KernelExplainer on the original columns, against a few background rows.

    Kernel SHAP, not shap's permutation explainer: that one compiles numba code on its first call in
    every process (about 5 s, a third of the report's budget). With few columns every coalition is
    evaluated, and the values are exact with respect to the background."""
    import shap

    X, cols = task.X, list(task.X.columns)
    background_rows = min(config.REPORT_AGNOSTIC_BACKGROUND, len(X))
    every = 2 ** len(cols) - 2
    # Sampled coalitions must outnumber the columns for the regression to determine every value.
    coalitions = min(every, max(config.REPORT_AGNOSTIC_COALITIONS, 4 * len(cols)))
    # Each explained row costs two calls of the model: the row itself, then every coalition x background.
    cost = scoring_cost(task.bundle.pipeline)
    per_row = 2 * cost.call + coalitions * background_rows * cost.row
    Xs = task.sample(task.sized(per_row, agnostic=True))
    to_num, f = _numeric_view(task.bundle, X, cols)
    background = to_num(task.sample(background_rows, seed_offset=1))
    np.random.seed(task.seed)  # KernelExplainer draws its coalitions from numpy's global generator
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
    return Explained(values, Xs, "probability", method)


def _numeric_view(
    bundle: Bundle, X: pd.DataFrame, cols: list[str]
) -> tuple[Callable[[pd.DataFrame], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """Model-agnostic explainers work on a numeric matrix: categories become their code numbers, and
    the model sees them translated back (scored by the bundle's pipeline, as `score` would)."""
    cats = {c: _codes(X[c]) for c in cols if X[c].dtype.kind not in "fiu"}
    pipeline = bundle.pipeline

    def to_num(df: pd.DataFrame) -> np.ndarray:
        # A missing cell is not found (-1), which indexes the last code: the missing one.
        return np.column_stack(
            [cats[c].get_indexer(pd.Index(df[c])) if c in cats else df[c].to_numpy(dtype=float) for c in cols]
        ).astype(float)

    def predict(A: np.ndarray) -> np.ndarray:
        df = pd.DataFrame(
            {c: (cats[c][A[:, i].astype(int)] if c in cats else A[:, i]) for i, c in enumerate(cols)}
        )
        return np.asarray(
            pipeline.predict_proba(df.astype({c: X[c].dtype for c in cols}))[:, 1], dtype="float64"
        )

    return to_num, predict


def _codes(column: pd.Series) -> pd.Index:
    """A category column's codes, sorted, with a missing cell as a code of its own (last)."""
    codes = pd.Index(sorted(column.dropna().unique()))
    return codes.append(pd.Index([np.nan])) if column.isna().any() else codes


# Each explainer's path; a family names the one its models take (models.Family.explainer).
EXPLAINERS: dict[Explainer, Callable[[Task], Explained]] = {
    "contributions": _contributions,
    "tree": _tree,
    "linear": _linear,
    "kernel": _kernel,
}
