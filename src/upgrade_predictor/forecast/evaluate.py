"""What the backtest says: metrics by origin and tenure band, forecast counts with honest intervals,
and the lift over the tenure-only baseline (the offer policy is priced in policy.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from .backtest import (
    Ranked,
    backtest_table,
    interval_of,
    origin_count,
    overdispersion_from_origins,
    top_decile_lift,
)
from .design import Design
from .protocol import AGGREGATED, ForecastOutcome, OriginResult, snapshot_dates

N_BOOT = 200


@dataclass(frozen=True)
class Difference:
    """A paired bootstrap difference (model minus baseline) over users, with its 95% interval."""

    metric: str
    baseline: str
    model: float
    other: float
    difference: float
    low: float
    high: float


def backtest_frame(o: ForecastOutcome, design: Design, method: str, phi: float) -> pd.DataFrame:
    """Per origin and model, per tenure band: ranking metrics, Brier and expected vs actual row labels."""
    y = design.rows["label"].to_numpy()
    tenure = design.rows["tenure_days"].to_numpy()
    frames = {}
    for k, origin in enumerate(o.origins, 1):
        s = origin.split
        for name, p in {"model": origin.model(method), **origin.baselines()}.items():
            frames[f"{k}|{s.test_start}|{name}"] = (y[s.test], p, tenure[s.test])
    table = backtest_table(frames, overdispersion=phi)
    parts = table["origin"].str.split("|", expand=True)
    table.insert(0, "model", parts[2])
    table.insert(0, "test_start", parts[1])
    table["origin"] = parts[0].astype(int)
    return table


def snapshot_counts(o: ForecastOutcome, design: Design, method: str) -> pd.DataFrame:
    """On each calendar date of the test periods the design holds every free user: the forecast count of
    upgrades within the horizon against what happened (the model and the aggregated-table baseline)."""
    y = design.rows["label"].to_numpy()
    cut = design.rows["cutoff"].dt.date.to_numpy()
    rows = []
    for k, origin in enumerate(o.origins, 1):
        s = origin.split
        for d in snapshot_dates(s, design):
            at = cut[s.test] == d
            if not at.any():
                continue
            for name, p in _counted(origin, method).items():
                c = origin_count(y[s.test][at], p[at])
                rows.append(
                    {
                        "origin": k,
                        "date": d,
                        "model": name,
                        "free_users": int(at.sum()),
                        "expected": c.expected,
                        "actual": c.actual,
                        "var": c.var,
                    }
                )
    return pd.DataFrame(rows)


def _counted(origin: OriginResult, method: str) -> dict[str, np.ndarray]:
    """The forecasts whose counts the report draws: the model's and, when it ran, the aggregated table's."""
    counted = {"model": origin.model(method)}
    if AGGREGATED in origin.p:
        counted[AGGREGATED] = origin.p[AGGREGATED]
    return counted


def with_intervals(counts: pd.DataFrame, phi: float) -> pd.DataFrame:
    """Add the count interval (Poisson-binomial variance x phi, normal approximation) and coverage."""
    out = counts.copy()
    bounds = [
        interval_of(e, v, n, 0.95, phi) for e, v, n in zip(out["expected"], out["var"], out["free_users"])
    ]
    out["low"] = [lo for lo, _ in bounds]
    out["high"] = [hi for _, hi in bounds]
    out["covered"] = (out["low"] <= out["actual"]) & (out["actual"] <= out["high"])
    return out


def overdispersion(counts: pd.DataFrame) -> float:
    """How far the model's weekly counts strayed from its forecasts in the backtest (>= 1)."""
    mine = counts[counts["model"] == "model"]
    return overdispersion_from_origins(list(zip(mine["expected"], mine["actual"], mine["var"])))


def _by_user(users: np.ndarray, seed: int, n: int) -> list[np.ndarray]:
    """Bootstrap resamples drawing whole users (their rows are not independent), as row weights: how
    many times each row's user was drawn."""
    uniq, inverse = np.unique(users, return_inverse=True)
    rng = np.random.default_rng(seed)
    return [
        np.bincount(rng.integers(0, len(uniq), len(uniq)), minlength=len(uniq))[inverse] for _ in range(n)
    ]


def differences(
    y: np.ndarray,
    users: np.ndarray,
    p_model: np.ndarray,
    others: dict[str, np.ndarray],
    seed: int,
    n_boot: int = N_BOOT,
) -> list[Difference]:
    """PR AUC and top-decile lift of the model against each baseline, paired bootstrap over users.

    Hand-written: scipy's bootstrap resamples rows, and rows of one user must move together here."""
    yf = y.astype(float)
    draws = [
        w.astype(float) for w in _by_user(users, seed, n_boot) if (w * yf).any() and (w * (1 - yf)).any()
    ]
    metrics = {"pr_auc": average_precision_score, "top_decile_lift": top_decile_lift}
    ranked = Ranked(y, p_model)
    # The model's value on each resample is computed once and paired with every baseline's.
    mine = {m: np.array([getattr(ranked, m)(w) for w in draws]) for m in metrics}
    out = []
    for name, p in others.items():
        theirs = Ranked(y, p)
        for metric, f in metrics.items():
            diffs = mine[metric] - np.array([getattr(theirs, metric)(w) for w in draws])
            lo, hi = np.nanquantile(diffs, [0.025, 0.975]) if len(diffs) else (np.nan, np.nan)
            a, b = float(f(y, p_model)), float(f(y, p))
            out.append(Difference(metric, name, a, b, a - b, float(lo), float(hi)))
    return out
