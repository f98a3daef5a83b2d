"""Segments: upgrade rate and model quality per group of the first categorical column."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import bootstrap, rankdata
from statsmodels.stats.proportion import proportion_confint

from ..training.runs import Run

TOP_SEGMENTS = 10


@dataclass(frozen=True)
class Segments:
    column: str
    # segment, rows, upgrades, rate, low, high, auc, auc_low, auc_high, verdict
    # (+ auc_no_leak, auc_no_leak_low, auc_no_leak_high with a model fit to score today's users)
    table: pd.DataFrame
    overall: float  # upgrade rate over all rows
    distinct: int  # how many codes the column has
    top: int  # how many of them get their own row


def _auc_ranks(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    """ROC AUC by the Mann-Whitney rank identity, vectorised over bootstrap resamples (scipy calls it
    with a resample axis; roc_auc_score would need a Python loop per resample)."""
    r = rankdata(p, axis=axis)
    n1 = np.sum(y, axis=axis)
    n0 = y.shape[axis] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.sum(r * y, axis=axis) - n1 * (n1 + 1) / 2) / (n1 * n0)


def auc_interval(y: np.ndarray, p: np.ndarray, seed: int, n_boot: int = 300) -> tuple[float, float, float]:
    """ROC AUC with a percentile bootstrap 95% interval; NaN for fewer than 5 of either class."""
    y = np.asarray(y, dtype=float)
    if y.sum() < 5 or (len(y) - y.sum()) < 5:
        return np.nan, np.nan, np.nan
    res = bootstrap(
        (y, np.asarray(p, dtype=float)),
        _auc_ranks,
        paired=True,
        vectorized=True,
        method="percentile",
        n_resamples=n_boot,
        random_state=seed,
    )
    return float(_auc_ranks(y, p)), float(res.confidence_interval.low), float(res.confidence_interval.high)


def _out_of_sample(pr: pd.DataFrame, oof: str, held_out: str) -> np.ndarray:
    """Out-of-fold scores on training rows, held-out scores on test rows: every row scored unseen."""
    return pr[oof].where(pr["set"] == "train", pr[held_out]).to_numpy()


def segments_section(run: Run) -> Segments | None:
    """Upgrade rate (Wilson interval) and out-of-sample ROC AUC (bootstrap interval) per category."""
    cats = run.dataset.schema.categorical
    if not cats:
        return None
    col = cats[0]
    pr = run.predictions
    p = _out_of_sample(pr, "oof", "p")
    p_nl = _out_of_sample(pr, "oof_no_leak", "p_no_leak") if "p_no_leak" in pr else None
    y = pr["y"].to_numpy(dtype=int)
    codes = run.dataset.X[col].iloc[pr["row"].to_numpy()].to_numpy()
    counts = pd.Series(codes).value_counts()
    top = list(counts.index[:TOP_SEGMENTS])
    overall = float(y.mean())
    rows = []
    for name in top + ["other"]:
        mask = ~np.isin(codes, top) if name == "other" else codes == name
        n, k = int(mask.sum()), int(y[mask].sum())
        if not n:
            continue
        lo, hi = proportion_confint(k, n, method="wilson")
        auc = auc_interval(y[mask], p[mask], run.info.seed)
        row = {
            "segment": name if name != "other" else f"other ({len(counts) - len(top)} codes)",
            "rows": n,
            "upgrades": k,
            "rate": k / n,
            "low": lo,
            "high": hi,
            "auc": auc[0],
            "auc_low": auc[1],
            "auc_high": auc[2],
            "verdict": "above overall"
            if lo > overall
            else "below overall"
            if hi < overall
            else "not distinguishable",
        }
        if p_nl is not None:
            a = auc_interval(y[mask], p_nl[mask], run.info.seed)
            row.update(auc_no_leak=a[0], auc_no_leak_low=a[1], auc_no_leak_high=a[2])
        rows.append(row)
    return Segments(col, pd.DataFrame(rows), overall, int(len(counts)), TOP_SEGMENTS)
