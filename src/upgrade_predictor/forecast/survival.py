"""Time to upgrade as a survival curve (Kaplan-Meier), overall and by segment.

Most users are still free when the data end, so their time to upgrade is right-censored: a plain share of
upgraders by day t undercounts late upgrades of recent sign-ups. Kaplan-Meier uses each user only while
observed. Durations are whole days from registration: an upgrade on the registration day is duration 0
with event 1; a free user registered on the last data day is censored at 0 but was watched for that
whole day, so censoring at day t leaves the user at risk for day t (statsmodels' convention too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import norm
from statsmodels.duration.survfunc import SurvfuncRight

from upgrade_predictor.errors import InputError
from upgrade_predictor.forecast.design import check_users, day_number


@dataclass
class SurvivalCurve:
    """Share of users upgraded by the end of each day since registration, with a pointwise 95% band."""

    label: str
    days: np.ndarray  # 0, 1, ..., longest observed duration
    upgraded_share: np.ndarray  # 1 - S(t): upgraded on or before day t
    low: np.ndarray
    high: np.ndarray
    n: int
    events: int
    share_day0: float  # upgraded on the registration day
    share_by_day7: float  # upgraded on days 0-7 (NaN when nobody was followed that long)
    median_days: float | None  # first day by which half upgraded; None when that never happens in the data

    def share_by(self, day: int) -> float:
        """1 - S(day), NaN beyond the longest follow-up."""
        return float(self.upgraded_share[day]) if 0 <= day < len(self.days) else float("nan")


def time_to_upgrade(users: pd.DataFrame, data_end: date) -> pd.DataFrame:
    """One row per user: duration (days to first upgrade, or to data_end when still free) and event (1/0).

    Static attributes of `users` (every column but registered and first_upgrade) are carried along so that
    `km_by_segment` can split on them. An upgrade dated after data_end is not known yet: censored.
    """
    reg, upg = check_users(users, data_end)
    end = day_number(data_end)
    event = upg <= end
    out = users.drop(columns=["registered", "first_upgrade"]).reset_index(drop=True)
    out["duration"] = np.where(event, upg - reg, end - reg).astype(np.int64)
    out["event"] = event.astype(np.int64)
    return out


def km_curve(
    durations: ArrayLike, events: ArrayLike, label: str = "all", level: float = 0.95
) -> SurvivalCurve:
    """Kaplan-Meier estimate of the upgraded share by day, on a daily grid."""
    t = np.asarray(durations, dtype=float)
    e = np.asarray(events)
    if len(t) == 0 or len(t) != len(e):
        raise InputError(
            f"{label}: need as many events as durations and at least one user ({len(t)}, {len(e)})"
        )
    if np.isnan(t).any() or (t < 0).any() or (t != np.round(t)).any():
        raise InputError(f"{label}: durations must be whole, non-negative days; check the dates")
    if not np.isin(e, (0, 1)).all():
        raise InputError(f"{label}: events must be 0 (still free) or 1 (upgraded)")
    days = np.arange(int(t.max()) + 1)
    surv = np.ones(len(days))
    se = np.zeros(len(days))
    if e.sum() > 0:
        sf = SurvfuncRight(t, e.astype(float))
        # surv_prob is given at event times only; carry each value forward to the following days.
        step = np.searchsorted(np.asarray(sf.surv_times), days, side="right") - 1
        has = step >= 0
        surv[has] = np.asarray(sf.surv_prob)[step[has]]
        se[has] = np.asarray(sf.surv_prob_se)[step[has]]
    low_s, high_s = _loglog_band(surv, se, level)
    upgraded = 1.0 - surv
    # Median by hand from the grid: statsmodels' quantile needs S strictly below 0.5, missing a flat 0.5.
    half = np.flatnonzero(surv <= 0.5)
    return SurvivalCurve(
        label=label,
        days=days,
        upgraded_share=upgraded,
        low=1.0 - high_s,
        high=1.0 - low_s,
        n=len(t),
        events=int(e.sum()),
        share_day0=float(upgraded[0]),
        share_by_day7=float(upgraded[7]) if len(days) > 7 else float("nan"),
        median_days=float(half[0]) if len(half) else None,
    )


def _loglog_band(surv: np.ndarray, se: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise band for S(t) on the log(-log) scale from Greenwood's standard error.

    Written here because statsmodels gives the standard error and simultaneous bands only; the log(-log)
    form keeps the band inside [0, 1] and is the usual default (e.g. R's survfit).
    """
    z = float(norm.ppf(0.5 + level / 2))
    low, high = surv.copy(), surv.copy()
    inside = (surv > 0) & (surv < 1) & (se > 0)
    s = surv[inside]
    theta_se = se[inside] / (s * np.abs(np.log(s)))
    low[inside] = s ** np.exp(z * theta_se)
    high[inside] = s ** np.exp(-z * theta_se)
    return low, high


def km_by_segment(
    frame: pd.DataFrame, column: str, min_users: int = 200, top: int = 6
) -> list[SurvivalCurve]:
    """One curve per value of `column` (largest groups first), skipping groups under `min_users`.

    `frame` is `time_to_upgrade` output or anything with duration, event and `column` (e.g. a first-day
    activity flag joined in). Empty cells form their own "(missing)" group.
    """
    for col in ("duration", "event", column):
        if col not in frame.columns:
            raise InputError(f"segment frame is missing column {col}; build it with time_to_upgrade")
    values = frame[column].astype(object).where(frame[column].notna(), "(missing)")
    sizes = values.value_counts(sort=True)
    chosen = sizes[sizes >= min_users].index[:top]
    curves = []
    for value in chosen:
        part = frame[(values == value).to_numpy()]
        curves.append(km_curve(part["duration"], part["event"], label=f"{column}={value}"))
    return curves


def curves_table(curves: list[SurvivalCurve], days: tuple[int, ...] = (0, 1, 7, 14, 30)) -> pd.DataFrame:
    """One row per curve: users, upgrades, upgraded share by the given days and the median."""
    records = []
    for c in curves:
        rec: dict[str, object] = {"segment": c.label, "users": c.n, "upgrades": c.events}
        rec.update({f"by_day_{d}": c.share_by(d) for d in days})
        rec["median_days"] = c.median_days
        records.append(rec)
    return pd.DataFrame.from_records(records)
