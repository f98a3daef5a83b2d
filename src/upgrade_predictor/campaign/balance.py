"""The balance check of a randomized split: per band and overall, offer against holdout on every numeric
column of the assignments, as standardized mean differences (Austin 2009: |SMD| > 0.1 is the usual
sign of an imbalance worth a look)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .assign import BANDS, OFFER
from .records import Balance, BandBalance

SMD_LIMIT = 0.1
NOT_COVARIATES = ("user_id", "band", "arm", "upgraded")  # the design and the outcome, not the users


def smd(a: np.ndarray, b: np.ndarray) -> float:
    """(mean a - mean b) / sqrt((var a + var b) / 2); 0 when neither varies and the means agree."""
    if a.size == 0 or b.size == 0:
        return math.nan
    diff = float(a.mean() - b.mean())
    spread = math.sqrt(
        (float(a.var(ddof=1) if a.size > 1 else 0.0) + float(b.var(ddof=1) if b.size > 1 else 0.0)) / 2
    )
    if spread == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / spread


def covariates(frame: pd.DataFrame) -> list[str]:
    """The numeric columns of the assignments that describe the users: probability first, then the rest
    in file order (rank, and any column a later plan adds)."""
    numeric = [
        c for c in frame.columns if c not in NOT_COVARIATES and pd.api.types.is_numeric_dtype(frame[c])
    ]
    return sorted(numeric, key=lambda c: c != "probability")


def band_balance(band: int, frame: pd.DataFrame, columns: list[str], limit: float) -> BandBalance:
    offer = frame["arm"].to_numpy() == OFFER
    p = frame["probability"].to_numpy(dtype="float64")
    values = {c: smd(*_split(frame[c], offer)) for c in columns}
    return BandBalance(
        band=band,
        offer_mean_probability=float(p[offer].mean()) if offer.any() else math.nan,
        holdout_mean_probability=float(p[~offer].mean()) if (~offer).any() else math.nan,
        smd=values,
        flagged=[c for c, v in values.items() if abs(v) > limit],
        chance=math.sqrt(1 / offer.sum() + 1 / (~offer).sum())
        if offer.any() and (~offer).any()
        else math.inf,
    )


def _split(column: pd.Series, offer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = column.to_numpy(dtype="float64")
    return v[offer], v[~offer]


def balance(frame: pd.DataFrame, limit: float = SMD_LIMIT) -> Balance:
    """The balance of `frame` (one row per assigned user: band, arm and the numeric columns)."""
    columns = covariates(frame)
    band = frame["band"].to_numpy()
    per_band = [
        band_balance(b, frame[band == b], columns, limit) for b in range(1, BANDS + 1) if (band == b).any()
    ]
    overall = band_balance(0, frame, columns, limit)
    flagged = bool(overall.flagged) or any(b.flagged for b in per_band)
    return Balance(threshold=limit, overall=overall, bands=per_band, flagged=flagged)
