"""Gains, lift and profit curves.

No well-kept library computes these for a ranked list with an offer cost and an upgrade value, so
they are written here, once, and tested against hand-computed examples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import bootstrap


def ranked(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores sorted by descending score; within a tie non-upgraders come first, so the
    result does not depend on input order and a tie never flatters the model."""
    order = np.lexsort((np.asarray(y), -np.asarray(p, dtype="float64")))
    return np.asarray(y)[order], np.asarray(p, dtype="float64")[order]


def profit_curve(y: np.ndarray, p: np.ndarray, offer_cost: float, upgrade_value: float) -> pd.DataFrame:
    """Profit of offering to every user scoring at or above each distinct threshold.

    Profit = upgraders reached x upgrade_value - offers sent x offer_cost. One row per distinct
    score (ties are offered together), plus a first row for sending no offer at all.
    """
    ys, ps = ranked(y, p)
    tp = np.cumsum(ys)
    n = np.arange(1, len(ys) + 1)
    # Keep the last position of each run of tied scores: a threshold cannot split a tie.
    last = np.r_[ps[1:] != ps[:-1], True]
    tp, n, thr = tp[last], n[last], ps[last]
    curve = pd.DataFrame(
        {
            "threshold": np.r_[np.inf, thr],
            "offers": np.r_[0, n],
            "upgraders_reached": np.r_[0, tp],
        }
    )
    curve["profit"] = curve["upgraders_reached"] * upgrade_value - curve["offers"] * offer_cost
    curve["share_offered"] = curve["offers"] / max(len(ys), 1)
    return curve


def best_policy(curve: pd.DataFrame) -> pd.Series:
    """The most profitable row of a profit curve (the first, i.e. fewest offers, among ties)."""
    return curve.iloc[int(np.argmax(curve["profit"].to_numpy()))]


def gains_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Cumulative gains and lift by score decile (or any number of equal-size bins)."""
    ys, _ = ranked(y, p)
    n, total = len(ys), max(int(np.sum(ys)), 1)
    rows = []
    for k in range(1, bins + 1):
        cut = int(round(n * k / bins))
        reached = int(ys[:cut].sum())
        rows.append(
            {
                "share_targeted": cut / n,
                "users": cut,
                "upgraders_reached": reached,
                "gain": reached / total,
                "lift": (reached / cut) / (total / n) if cut else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def gains_curve(y: np.ndarray, p: np.ndarray, points: int = 200) -> pd.DataFrame:
    """Cumulative gain and lift after each user in score order, thinned to about `points` rows for charts."""
    ys, _ = ranked(y, p)
    n, total = len(ys), max(int(np.sum(ys)), 1)
    k = np.arange(1, n + 1)
    reached = np.cumsum(ys)
    keep = np.unique(np.r_[np.linspace(0, n - 1, min(points, n)).round().astype(int), n - 1])
    share = k[keep] / n
    gain = reached[keep] / total
    return pd.DataFrame(
        {"share_targeted": np.r_[0.0, share], "gain": np.r_[0.0, gain], "lift": np.r_[np.nan, gain / share]}
    )


def threshold_for_share(p: np.ndarray, share: float) -> float:
    """The score cut-off that offers to the top `share` of users scored like `p` (ties offered together)."""
    ps = np.sort(np.asarray(p, dtype="float64"))[::-1]
    if share <= 0 or len(ps) == 0:
        return float("inf")
    k = min(max(int(round(share * len(ps))), 1), len(ps))
    return float(ps[k - 1])


POLICY_FIELDS = ["offers", "upgraders_reached", "profit", "share_offered", "share_of_upgraders", "precision"]


def policy_outcomes(
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    offer_cost: float,
    upgrade_value: float,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, float]]:
    """What offering to every user scoring >= threshold yields on (y, p), with bootstrap intervals.

    The cut-off is fixed in advance (chosen on other data), so the interval reflects which users
    happen to turn up: rows are resampled by scipy's bootstrap (percentile method)."""

    y = np.asarray(y, dtype="float64")
    sel = (np.asarray(p, dtype="float64") >= threshold).astype("float64")

    def stat(y, s, axis=-1):
        offers = np.sum(s, axis=axis)
        reached = np.sum(y * s, axis=axis)
        n = y.shape[axis]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.stack(
                [
                    offers,
                    reached,
                    reached * upgrade_value - offers * offer_cost,
                    offers / n,
                    reached / np.sum(y, axis=axis),
                    reached / offers,
                ]
            )

    point = stat(y, sel)
    out = {f: {"value": float(v), "low": float(v), "high": float(v)} for f, v in zip(POLICY_FIELDS, point)}
    if len(y) > 1 and n_boot > 0:
        res = bootstrap(
            (y, sel),
            stat,
            paired=True,
            vectorized=True,
            method="percentile",
            n_resamples=n_boot,
            confidence_level=level,
            random_state=seed,
        )
        for f, lo, hi in zip(POLICY_FIELDS, res.confidence_interval.low, res.confidence_interval.high):
            out[f]["low"], out[f]["high"] = float(lo), float(hi)
    return out


def recommend_policies(
    y_fit: np.ndarray,
    p_fit: np.ndarray,
    y_eval: np.ndarray,
    p_eval: np.ndarray,
    offer_cost: float,
    upgrade_value: float,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """The profit-maximising cut-off and two alternative budgets (half and double the offers).

    Cut-offs are chosen on (y_fit, p_fit), out-of-fold scores, and judged on the held-out
    (y_eval, p_eval) with bootstrap intervals, so the choice is not graded on its own data."""
    curve = profit_curve(y_fit, p_fit, offer_cost, upgrade_value)
    best = best_policy(curve)
    share = float(best["share_offered"])
    candidates = [("recommended", float(best["threshold"]), share)]
    if share > 0:
        candidates += [
            ("half the offers", threshold_for_share(p_fit, share / 2), share / 2),
            ("double the offers", threshold_for_share(p_fit, min(2 * share, 1.0)), min(2 * share, 1.0)),
        ]
    rows = []
    for name, thr, planned in candidates:
        res = policy_outcomes(y_eval, p_eval, thr, offer_cost, upgrade_value, n_boot, seed)
        row = {
            "policy": name,
            "threshold": thr,
            "planned_share": planned,
            "budget": planned * len(p_eval) * offer_cost,
        }
        for f, v in res.items():
            row[f], row[f + "_low"], row[f + "_high"] = v["value"], v["low"], v["high"]
        rows.append(row)
    return pd.DataFrame(rows)
