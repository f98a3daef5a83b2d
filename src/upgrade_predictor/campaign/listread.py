"""The readout of a plain ranked list: with nobody held out no effect of an offer can be measured, but the
forecast can be checked against what happened: expected against actual upgrades, and the precision and
realized lift of each score band. This backtests the tool's own predictions in production."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd

from .assign import BANDS
from .listfile import ScoredList
from .readout import Z95
from .records import Interval, ListBand, ListReadout

NO_HOLDOUT = (
    "nobody was held out, so this readout checks the forecast, not the offer: the offer's effect needs a "
    "holdout (draw one with `campaign plan`)"
)


def band_of(n: int) -> np.ndarray:
    """Quintiles by rank, as a plan cuts its target group: band 1 holds the best-ranked fifth."""
    return 1 + (np.arange(n) * BANDS) // n if n else np.zeros(0, dtype="int64")


def expected_count(p: np.ndarray) -> Interval:
    """The sum of the probabilities and the 95% normal range of the upgrade count were the forecast right
    (a sum of independent Bernoullis: variance sum p(1 - p))."""
    value = float(p.sum())
    sd = math.sqrt(float((p * (1 - p)).sum()))
    return Interval(value, value - Z95 * sd, value + Z95 * sd)


def ranking_scores(y: np.ndarray, p: np.ndarray) -> tuple[float | None, float | None]:
    """ROC AUC and average precision of the list's probabilities; None when one class is absent."""
    if y.min(initial=0) == y.max(initial=0):
        return None, None
    from sklearn.metrics import average_precision_score, roc_auc_score

    return float(roc_auc_score(y, p)), float(average_precision_score(y, p))


def list_bands(y: np.ndarray, p: np.ndarray, rank: np.ndarray) -> list[ListBand]:
    band = band_of(len(y))
    rate, mean_p = float(y.mean()), float(p.mean())
    out = []
    for b in range(1, BANDS + 1):
        inside = band == b
        if not inside.any():
            continue
        precision = float(y[inside].mean())
        out.append(
            ListBand(
                band=b,
                first_rank=int(rank[inside].min()),
                last_rank=int(rank[inside].max()),
                users=int(inside.sum()),
                mean_probability=float(p[inside].mean()),
                expected_upgrades=float(p[inside].sum()),
                actual_upgrades=int(y[inside].sum()),
                precision=precision,
                lift=precision / rate if rate > 0 else math.nan,
                expected_lift=float(p[inside].mean()) / mean_p if mean_p > 0 else math.nan,
            )
        )
    return out


def build_list(
    scored: ScoredList,
    sha256: str,
    first_upgrade: pd.Series,
    as_of: tuple[date, str],
    horizon: int,
    data_end: date,
) -> ListReadout:
    """The readout of the list given each listed user's first upgrade day (NaT if none), in the list's
    order: an upgrade counts when it falls in [as_of, as_of + horizon), as in a plan's readout."""
    day, source = as_of
    window_end = day + timedelta(days=horizon - 1)
    days = pd.to_datetime(first_upgrade.reset_index(drop=True))
    hit = (days >= pd.Timestamp(day)) & (days <= pd.Timestamp(window_end))
    y = hit.fillna(False).to_numpy(dtype="int64")
    p = scored.users["probability"].to_numpy(dtype="float64")
    expected = expected_count(p)
    roc, ap = ranking_scores(y, p)
    days_open = max(0, (window_end - data_end).days)
    return ListReadout(
        holdout=False,
        note=NO_HOLDOUT,
        scored_file=str(scored.path),
        scored_sha256=sha256,
        as_of=day.isoformat(),
        as_of_source=source,
        horizon=horizon,
        window_end=window_end.isoformat(),
        data_end=data_end.isoformat(),
        horizon_closed=days_open == 0,
        days_open=days_open,
        interim=days_open > 0,
        users=len(y),
        expected_upgrades=expected,
        actual_upgrades=int(y.sum()),
        upgrade_rate=float(y.mean()),
        actual_over_expected=float(y.sum()) / expected.value if expected.value > 0 else math.nan,
        upgraded_before_as_of=int((days < pd.Timestamp(day)).sum()),
        roc_auc=roc,
        average_precision=ap,
        bands=list_bands(y, p, scored.users["rank"].to_numpy()),
    )
