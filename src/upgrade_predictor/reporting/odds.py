"""Odds ratios: a statsmodels Logit of the upgrade on the numeric columns, per doubling or per sd."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.discrete.discrete_model import Logit
from statsmodels.tools.tools import add_constant


@dataclass(frozen=True)
class LogitFit:
    """Odds ratios of a statsmodels Logit; `error` says why there are none."""

    table: pd.DataFrame  # name, coef, odds_ratio, low, high, p_value, scale
    error: str | None = None
    pseudo_r2: float | None = None
    n: int | None = None


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
