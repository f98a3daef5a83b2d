"""Backtest metrics of time-ordered predictions, honest intervals for upgrade counts, and recalibration.

A forecast of "how many of these free users upgrade in the next `horizon` days" is the sum of their
probabilities. If the probabilities were right and users independent, the count would be Poisson-binomial
with variance sum p(1 - p). In practice the upgrade rate moves month to month (campaigns, sales), so actual
counts stray further than that; the backtest measures by how much (an overdispersion factor) and widens
the interval accordingly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import statsmodels.api as sm
from numpy.typing import ArrayLike
from scipy.special import expit, logit
from scipy.stats import norm
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from upgrade_predictor.errors import InputError

# Tenure bands (days since registration, [low, high)) the backtest reports separately.
TENURE_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("first week", 0, 7),
    ("rest of first month", 7, 30),
    ("later", 30, None),
)
P_CLIP = 1e-6


@dataclass
class SliceMetrics:
    """Ranking, calibration and count-forecast quality of one slice of predictions."""

    name: str
    rows: int
    positives: int
    pr_auc: float
    roc_auc: float
    top_decile_lift: float
    brier: float
    expected: float  # sum of p: the forecast count
    actual: float  # sum of y
    expected_low: float  # interval for the count
    expected_high: float
    covered: bool  # actual within [expected_low, expected_high]


class OriginCount(NamedTuple):
    """Forecast and outcome of one backtest origin: expected count, actual count, Poisson-binomial variance."""

    expected: float
    actual: float
    var: float


def _arrays(y: ArrayLike, p: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y, dtype=float)
    p_arr = np.asarray(p, dtype=float)
    if y_arr.shape != p_arr.shape or y_arr.ndim != 1:
        raise InputError(f"{name}: labels ({y_arr.shape}) and probabilities ({p_arr.shape}) must match")
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise InputError(f"{name}: labels must be 0 or 1")
    if np.isnan(p_arr).any() or (p_arr < 0).any() or (p_arr > 1).any():
        raise InputError(f"{name}: probabilities must lie in [0, 1] without gaps")
    return y_arr, p_arr


def top_decile_lift(y: ArrayLike, p: ArrayLike) -> float:
    """Upgrade rate among the top 10% by p, over the overall rate; NaN without positives.

    Hand-written (no library computes lift); rows tied at the decile boundary count fractionally, so the
    result does not depend on row order.
    """
    y_arr, p_arr = _arrays(y, p, "top_decile_lift")
    if len(y_arr) == 0 or y_arr.sum() == 0:
        return float("nan")
    k = max(1, math.ceil(len(p_arr) / 10))
    threshold = np.sort(p_arr)[::-1][k - 1]
    above = p_arr > threshold
    tied = p_arr == threshold
    hits = y_arr[above].sum() + (k - above.sum()) * y_arr[tied].mean()
    return float((hits / k) / y_arr.mean())


class Ranked:
    """Probabilities sorted once, for metrics of many weighted resamples of the same rows.

    Hand-written: a bootstrap that draws whole users is a resample with integer weights per row, and
    scikit-learn's average_precision_score re-sorts the rows at every call. Here the order and its groups
    of tied scores are computed once; each resample costs a few cumulative sums. The results equal
    average_precision_score and `top_decile_lift` on the resample written out row by row."""

    def __init__(self, y: ArrayLike, p: ArrayLike) -> None:
        y_arr, p_arr = _arrays(y, p, "Ranked")
        order = np.argsort(-p_arr, kind="stable")
        self.y = y_arr[order]
        ps = p_arr[order]
        self.order = order
        self.last = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])  # last row of each group of ties

    def _groups(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ws = w[self.order]
        return np.cumsum(ws)[self.last], np.cumsum(ws * self.y)[self.last]

    def pr_auc(self, w: np.ndarray) -> float:
        """Average precision of the resample with row weights `w`."""
        total, hits = self._groups(w)
        recall = hits / hits[-1]
        precision = np.divide(hits, total, out=np.zeros_like(hits), where=total > 0)
        return float(np.sum(np.diff(recall, prepend=0.0) * precision))

    def top_decile_lift(self, w: np.ndarray) -> float:
        """`top_decile_lift` of the resample with row weights `w` (ties at the boundary count fractionally)."""
        total, hits = self._groups(w)
        n, positives = total[-1], hits[-1]
        k = max(1, math.ceil(n / 10))
        j = int(np.searchsorted(total, k))
        w_above, pos_above = (total[j - 1], hits[j - 1]) if j else (0.0, 0.0)
        tied_rate = (hits[j] - pos_above) / (total[j] - w_above)
        return float(((pos_above + (k - w_above) * tied_rate) / k) / (positives / n))


def count_interval(p: ArrayLike, level: float = 0.95, overdispersion: float = 1.0) -> tuple[float, float]:
    """Interval for the number of upgrades among users with probabilities p.

    Normal approximation to the Poisson-binomial count, variance sum p(1-p) times `overdispersion`, with a
    half-count continuity correction, clipped to [0, n]. An integer count x is inside when low <= x <= high.
    It is rough below ~10 expected upgrades (the count is skewed there); slices that small are not
    forecast separately.
    """
    p_arr = np.asarray(p, dtype=float)
    return interval_of(
        float(p_arr.sum()), float((p_arr * (1 - p_arr)).sum()), len(p_arr), level, overdispersion
    )


def interval_of(
    expected: float, var: float, n: int, level: float = 0.95, overdispersion: float = 1.0
) -> tuple[float, float]:
    """`count_interval` from the count's expectation and Poisson-binomial variance among `n` users."""
    if not 0 < level < 1:
        raise InputError(f"level must lie strictly between 0 and 1, got {level}")
    if overdispersion < 1:
        raise InputError(f"overdispersion must be at least 1, got {overdispersion}")
    half = float(norm.ppf(0.5 + level / 2)) * math.sqrt(max(var, 0.0) * overdispersion) + 0.5
    return max(0.0, expected - half), min(float(n), expected + half)


def origin_count(y: ArrayLike, p: ArrayLike) -> OriginCount:
    """The (expected, actual, variance) triple of one origin, for `overdispersion_from_origins`."""
    y_arr, p_arr = _arrays(y, p, "origin_count")
    return OriginCount(float(p_arr.sum()), float(y_arr.sum()), float((p_arr * (1 - p_arr)).sum()))


def overdispersion_from_origins(results: Sequence[tuple[float, float, float]]) -> float:
    """Mean squared standardised count error across backtest origins, floored at 1.

    Each origin contributes ((actual - expected) / sqrt(var))^2, whose mean is 1 when only binomial noise
    is at work. A factor measured on slices of one size transfers to slices of similar size: a shift in the
    rate adds variance growing with the square of the count, binomial noise only linearly.
    """
    if len(results) == 0:
        raise InputError("overdispersion needs at least one backtest origin")
    z2 = []
    for expected, actual, var in results:
        if var <= 0:
            raise InputError(f"an origin has variance {var}; it needs probabilities strictly inside (0, 1)")
        z2.append((actual - expected) ** 2 / var)
    return max(1.0, float(np.mean(z2)))


def slice_metrics(
    name: str,
    y: ArrayLike,
    p: ArrayLike,
    level: float = 0.95,
    overdispersion: float = 1.0,
) -> SliceMetrics:
    """Metrics of one slice; ranking metrics are NaN when the slice has a single class (or no rows)."""
    y_arr, p_arr = _arrays(y, p, name)
    two_classes = len(np.unique(y_arr)) == 2
    low, high = count_interval(p_arr, level, overdispersion)
    actual = float(y_arr.sum())
    return SliceMetrics(
        name=name,
        rows=len(y_arr),
        positives=int(actual),
        pr_auc=float(average_precision_score(y_arr, p_arr)) if two_classes else float("nan"),
        roc_auc=float(roc_auc_score(y_arr, p_arr)) if two_classes else float("nan"),
        top_decile_lift=top_decile_lift(y_arr, p_arr),
        brier=float(brier_score_loss(y_arr, p_arr)) if len(y_arr) else float("nan"),
        expected=float(p_arr.sum()),
        actual=actual,
        expected_low=low,
        expected_high=high,
        covered=bool(low <= actual <= high),
    )


def backtest_table(
    frames: Mapping[str, tuple[ArrayLike, ArrayLike, ArrayLike]],
    level: float = 0.95,
    overdispersion: float = 1.0,
) -> pd.DataFrame:
    """One row per (origin or model, band): "all" first, then each of TENURE_BANDS.

    `frames` maps a name to (y, p, tenure_days) arrays of equal length.
    """
    records = []
    for key, (y, p, tenure) in frames.items():
        y_arr, p_arr = _arrays(y, p, key)
        t = np.asarray(tenure, dtype=float)
        if t.shape != y_arr.shape:
            raise InputError(f"{key}: tenure has {t.shape[0]} values but labels have {y_arr.shape[0]}")
        bands: list[tuple[str, np.ndarray]] = [("all", np.ones(len(t), dtype=bool))]
        for band, lo, hi in TENURE_BANDS:
            bands.append((band, (t >= lo) & (t < (np.inf if hi is None else hi))))
        for band, mask in bands:
            m = slice_metrics(f"{key} / {band}", y_arr[mask], p_arr[mask], level, overdispersion)
            records.append({"origin": key, "band": band, **asdict(m)})
    return pd.DataFrame.from_records(records).drop(columns="name")


def recalibrate(
    p_train_recent: ArrayLike,
    y_train_recent: ArrayLike,
    p_new: ArrayLike,
    method: str = "intercept",
) -> np.ndarray:
    """Recalibrate p_new with a logistic fit on the most recent labelled period.

    "intercept": shift the log-odds by one constant so the mean predicted matches the observed rate on the
    recent period (the ranking is unchanged; with the log-odds as offset, the maximum-likelihood intercept
    makes the means match exactly). "platt": fit slope and intercept on the log-odds.
    """
    y_arr, p_arr = _arrays(y_train_recent, p_train_recent, "recalibrate")
    new = np.asarray(p_new, dtype=float)
    if method not in ("intercept", "platt"):
        raise InputError(f"recalibration method {method!r} is unknown; use 'intercept' or 'platt'")
    if len(np.unique(y_arr)) < 2:
        raise InputError(
            "the recent period has only one class; recalibration needs upgrades and non-upgrades"
        )
    x = logit(np.clip(p_arr, P_CLIP, 1 - P_CLIP))
    x_new = logit(np.clip(new, P_CLIP, 1 - P_CLIP))
    family = sm.families.Binomial()
    if method == "intercept":
        fit = sm.GLM(y_arr, np.ones((len(x), 1)), family=family, offset=x).fit()
        out = expit(x_new + fit.params[0])
    else:
        fit = sm.GLM(y_arr, sm.add_constant(x, has_constant="add"), family=family).fit()
        out = expit(fit.params[0] + fit.params[1] * x_new)
    return np.clip(out, P_CLIP, 1 - P_CLIP)
