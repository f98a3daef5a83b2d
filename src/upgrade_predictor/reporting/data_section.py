"""The data section: the audit of the run, outlier caps and collinearity of the numeric columns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.stats.outliers_influence import variance_inflation_factor
from statsmodels.tools.tools import add_constant

from .. import config
from ..training.runs import Run


@dataclass(frozen=True)
class Outlier:
    """A numeric column's tail and the cap training clips it at (here on the whole file)."""

    name: str
    max: float
    p99: float
    cap: float
    rows_above: int
    heavy_tail: bool


@dataclass(frozen=True)
class Vif:
    name: str
    vif: float


@dataclass(frozen=True)
class DataSection:
    """What the report adds to the run's audit (run.audit holds counts, columns and warnings)."""

    outliers: list[Outlier]
    clip_quantile: float
    corr: pd.DataFrame  # Spearman correlation of the numeric columns (empty for fewer than two)
    vif: list[Vif]
    numeric: list[str]


def data_section(run: Run) -> DataSection:
    X = run.dataset.X
    numeric = run.dataset.schema.numeric
    outliers = []
    for c in run.audit.feature_columns:
        if c.numeric is None:
            continue
        cap = float(X[c.name].quantile(config.CLIP_QUANTILE))
        rows_above = int((X[c.name] > cap).sum())
        outliers.append(Outlier(c.name, c.numeric.max, c.numeric.p99, cap, rows_above, c.heavy_tail))
    corr = X[numeric].corr(method="spearman") if len(numeric) > 1 else pd.DataFrame()
    vif = []
    if len(numeric) > 1:
        A = add_constant(X[numeric].fillna(X[numeric].median()).to_numpy(), has_constant="add")
        with np.errstate(divide="ignore"):  # a perfectly collinear column has an infinite VIF
            vif = [Vif(c, float(variance_inflation_factor(A, i + 1))) for i, c in enumerate(numeric)]
    return DataSection(outliers, config.CLIP_QUANTILE, corr, vif, numeric)
