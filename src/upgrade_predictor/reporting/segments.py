"""Segments: upgrade rate and model quality per group of the first categorical column."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata
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


def auc_interval(y: np.ndarray, p: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """ROC AUC with DeLong's 95% interval; NaN for fewer than 5 of either class.

    DeLong's variance comes from each row's placement among the other class (one ranking of the
    segment), where a bootstrap ranks hundreds of resamples: on 100,000 rows that was most of the
    report's time, for intervals that agree. No library we use has it, so it is written here
    (DeLong, DeLong & Clarke-Pearson 1988; midranks as in Sun & Xu 2014)."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=float)
    pos, neg = p[y], p[~y]
    m, n = len(pos), len(neg)
    if m < 5 or n < 5:
        return np.nan, np.nan, np.nan
    between = rankdata(np.r_[pos, neg])
    # Per positive: the share of negatives scored below it; per negative: of positives above it (ties half).
    v_pos = (between[:m] - rankdata(pos)) / n
    v_neg = 1 - (between[m:] - rankdata(neg)) / m
    auc = float(v_pos.mean())
    se = float(np.sqrt(v_pos.var(ddof=1) / m + v_neg.var(ddof=1) / n))
    z = float(norm.ppf(0.5 + level / 2))
    return auc, max(0.0, auc - z * se), min(1.0, auc + z * se)


def _out_of_sample(pr: pd.DataFrame, oof: str, held_out: str) -> np.ndarray:
    """Out-of-fold scores on training rows, held-out scores on test rows: every row scored unseen."""
    return pr[oof].where(pr["set"] == "train", pr[held_out]).to_numpy()


def segments_section(run: Run) -> Segments | None:
    """Upgrade rate (Wilson interval) and out-of-sample ROC AUC (DeLong interval) per category."""
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
        auc = auc_interval(y[mask], p[mask])
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
            a = auc_interval(y[mask], p_nl[mask])
            row.update(auc_no_leak=a[0], auc_no_leak_low=a[1], auc_no_leak_high=a[2])
        rows.append(row)
    return Segments(col, pd.DataFrame(rows), overall, int(len(counts)), TOP_SEGMENTS)
