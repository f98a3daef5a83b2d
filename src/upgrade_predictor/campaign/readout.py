"""The statistics of a readout: rates per arm and band, the offer's effect, its profit, the forecast's
calibration and the sample-ratio check, from one frame of assigned users and their outcomes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..economics import Economics
from .assign import BANDS, OFFER
from .balance import balance
from .records import Balance, Band, Calibration, Effect, Interval, Profit, Rate, Srm

Z95 = 1.959963984540054  # the two-sided 95% normal quantile
SRM_ALPHA = 0.001  # a split this unlikely under the plan's share is a broken assignment, not chance


@dataclass(frozen=True)
class Measured:
    """Everything a readout measures from the outcomes (the window it covers is the caller's)."""

    offer: Rate
    holdout: Rate
    bands: list[Band]
    effect: Effect
    incremental_upgrades: Interval
    profit: Profit
    calibration: Calibration
    srm: Srm
    balance: Balance


def rate(y: np.ndarray) -> Rate:
    n = int(y.size)
    ups = int(y.sum())
    return Rate(users=n, upgrades=ups, rate=ups / n if n else math.nan)


def difference(y: np.ndarray, offer: np.ndarray) -> Interval:
    """Offer rate minus holdout rate, with the 95% Wald interval of unpooled variances."""
    y1, y0 = y[offer], y[~offer]
    p1, p0 = float(y1.mean()), float(y0.mean())
    se = math.sqrt(p1 * (1 - p1) / y1.size + p0 * (1 - p0) / y0.size)
    d = p1 - p0
    return Interval(d, d - Z95 * se, d + Z95 * se)


def adjusted(y: np.ndarray, offer: np.ndarray, p: np.ndarray) -> Interval:
    """Lin's (2013) estimator: OLS of the outcome on the arm, the centred forecast and their interaction;
    the arm's coefficient with its HC2 robust standard error. The forecast explains part of who upgrades
    anyway, so the interval is narrower than the plain difference's when the forecast is informative."""
    import statsmodels.api as sm

    t = offer.astype("float64")
    pc = p - p.mean()
    # A forecast without spread (one probability for all) explains nothing: the plain difference, in HC2.
    x = np.column_stack([np.ones_like(t), t, pc, t * pc] if np.ptp(pc) > 0 else [np.ones_like(t), t])
    fit = sm.OLS(y.astype("float64"), x).fit(cov_type="HC2")
    value, se = float(fit.params[1]), float(fit.bse[1])
    return Interval(value, value - Z95 * se, value + Z95 * se)


def incremental_profit(effect: Interval, baseline: float, n_offer: int, economics: Economics) -> Interval:
    """Economics.profit at the measured effect (and its bounds), summed over the offer arm: each offered
    user's baseline is the holdout's rate, so p + tau is the offer arm's measured rate."""
    p = np.full(n_offer, baseline)

    def total(tau: float) -> float:
        return float(economics.profit(p, np.full(n_offer, tau)).sum())

    return Interval(total(effect.value), total(effect.low), total(effect.high))


def sample_ratio(n_offer: int, n_holdout: int, share: float) -> Srm:
    """Chi-square (1 df) of the arm sizes against the plan's holdout share."""
    from scipy.stats import chi2

    n = n_offer + n_holdout
    expected = np.array([n * (1 - share), n * share])
    observed = np.array([n_offer, n_holdout], dtype="float64")
    stat = float(((observed - expected) ** 2 / expected).sum()) if n else 0.0
    p_value = float(chi2.sf(stat, 1))
    return Srm(share, n_holdout / n if n else math.nan, stat, p_value, p_value < SRM_ALPHA)


def bands(band: np.ndarray, offer: np.ndarray, y: np.ndarray) -> list[Band]:
    out = []
    for b in range(1, BANDS + 1):
        inside = band == b
        if not inside.any():
            continue
        both = (inside & offer).any() and (inside & ~offer).any()
        diff = difference(y[inside], offer[inside]) if both else None
        out.append(Band(b, rate(y[inside & offer]), rate(y[inside & ~offer]), diff))
    return out


def measure(frame: pd.DataFrame, economics: Economics, share: float) -> Measured:
    """The readout of `frame` (probability, band, arm, upgraded 0/1: one row per assigned user; any
    other numeric column, rank say, is checked for balance beside the probability)."""
    y = frame["upgraded"].to_numpy(dtype="int64")
    offer = frame["arm"].to_numpy() == OFFER
    p = frame["probability"].to_numpy(dtype="float64")
    arm1, arm0 = rate(y[offer]), rate(y[~offer])
    diff = difference(y, offer)
    n1 = arm1.users
    return Measured(
        offer=arm1,
        holdout=arm0,
        bands=bands(frame["band"].to_numpy(), offer, y),
        effect=Effect(diff, adjusted(y, offer, p)),
        incremental_upgrades=Interval(diff.value * n1, diff.low * n1, diff.high * n1),
        profit=Profit(incremental_profit(diff, arm0.rate, n1, economics), arm0.rate, economics.as_dict()),
        calibration=Calibration(
            holdout_expected=float(p[~offer].sum()),
            holdout_actual=arm0.upgrades,
            offer_expected=float(p[offer].sum()),
            offer_actual=arm1.upgrades,
        ),
        srm=sample_ratio(arm1.users, arm0.users, share),
        balance=balance(frame),
    )
