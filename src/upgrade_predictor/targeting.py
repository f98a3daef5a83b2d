"""Gains, lift and profit curves.

No well-kept library computes these for a ranked list with an offer cost and an upgrade value, so
they are written here, once, and tested against hand-computed examples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import bootstrap
from sklearn.metrics import precision_recall_curve

from .errors import InputError

# The break-even offer cost is read where a cut-off sends at least this many offers: the top one or
# two users alone would put it near the upgrade value whenever they happen to be upgraders.
BREAK_EVEN_MIN_OFFERS = 20


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
    max_offers: int | None = None,
) -> dict[str, dict[str, float]]:
    """What offering to every user scoring >= threshold yields on (y, p), with bootstrap intervals.

    The cut-off is fixed in advance (chosen on other data), so the interval reflects which users
    happen to turn up: rows are resampled by scipy's bootstrap (percentile method). `max_offers` caps
    the offers at the best-scored users (a tie it splits gives non-upgraders first, as `ranked` does)."""

    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    chosen = p >= threshold
    if max_offers is not None and chosen.sum() > max_offers:
        # Every user at or above the cut-off comes before the others in ranked order.
        chosen = np.zeros(len(p), dtype=bool)
        chosen[np.lexsort((y, -p))[: max(max_offers, 0)]] = True
    sel = chosen.astype("float64")

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
            batch=100,  # resamples a time: the whole (n_boot x rows) index matrix costs seconds on big tests
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
    max_offers: int | None = None,
) -> pd.DataFrame:
    """The profit-maximising cut-off and two alternative budgets (half and double the offers).

    Cut-offs are chosen on (y_fit, p_fit), out-of-fold scores, and judged on the held-out
    (y_eval, p_eval) with bootstrap intervals, so the choice is not graded on its own data. When no
    cut-off makes money on the fit scores the recommendation is to send none (a single row).

    `max_offers` is a budget for the evaluation users: the recommendation is the best cut-off whose
    share would send at most that many offers to them, "double the offers" is left out when it would
    send more, and no policy sends more than that many offers on the evaluation rows."""
    curve = profit_curve(y_fit, p_fit, offer_cost, upgrade_value)
    n_eval = len(p_eval)
    if max_offers is not None:
        curve = curve[curve["share_offered"] * n_eval <= max_offers]
    best = best_policy(curve)
    share = float(best["share_offered"])
    candidates = [("recommended", float(best["threshold"]), share)]
    if share > 0:
        double = min(2 * share, 1.0)
        candidates.append(("half the offers", threshold_for_share(p_fit, share / 2), share / 2))
        if max_offers is None or double * n_eval <= max_offers:
            candidates.append(("double the offers", threshold_for_share(p_fit, double), double))
    rows = []
    for name, thr, planned in candidates:
        res = policy_outcomes(
            y_eval, p_eval, thr, offer_cost, upgrade_value, n_boot, seed, max_offers=max_offers
        )
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


def per_1000(policies: pd.DataFrame, n: int) -> pd.DataFrame:
    """recommend_policies' rows with offers, upgraders reached and profit (and their bounds) scaled
    to 1,000 users: "<field>[_low|_high]_per_1000"."""
    out = policies.copy()
    for f in ("offers", "upgraders_reached", "profit"):
        for s in ("", "_low", "_high"):
            out[f"{f}{s}_per_1000"] = out[f + s] * 1000 / n
    return out


def offers_for_budget(budget: float, offer_cost: float) -> int:
    """How many offers a budget pays for, counted as `score --budget` counts them."""
    if not offer_cost > 0:
        raise InputError(f"the offer cost must be positive to spend a budget (got {offer_cost})")
    if not budget >= 0:
        raise InputError(f"the budget must not be negative (got {budget})")
    # The epsilon keeps a budget of exactly k offers from losing one to rounding (0.3 / 0.1 < 3).
    return int(math.floor(budget / offer_cost + 1e-9))


def break_even_cost(
    y: np.ndarray, p: np.ndarray, upgrade_value: float, min_offers: int = BREAK_EVEN_MIN_OFFERS
) -> float:
    """The offer cost below which some cut-off pays on (y, p): the best upgrade rate among the
    offers of any cut-off sending at least `min_offers` (every user when there are fewer), times
    the upgrade value."""
    curve = profit_curve(y, p, 0.0, upgrade_value)
    enough = curve[curve["offers"] >= max(min(min_offers, len(np.asarray(y))), 1)]
    reach = (enough["upgraders_reached"] / enough["offers"]).max() if len(enough) else 0.0
    return float(reach * upgrade_value)


@dataclass(frozen=True)
class WhatIf:
    """The targeting economics for one offer cost, upgrade value and budget, without intervals:
    what the report's economics panel recomputes in the browser from the same scores."""

    offer_cost: float
    upgrade_value: float
    budget: float | None
    max_offers: int | None  # None: no budget
    policies: pd.DataFrame  # recommend_policies' rows and per_1000 (_low/_high equal the value)
    curve: pd.DataFrame  # the profit curve of the evaluation rows
    break_even_cost: float  # of the evaluation rows (break_even_cost)

    @property
    def sends_offers(self) -> bool:
        """False when no cut-off made money on the fit scores (or the budget pays for no offer)."""
        return bool(self.policies["planned_share"].iloc[0] > 0)


def what_if(
    y_fit: np.ndarray,
    p_fit: np.ndarray,
    y_eval: np.ndarray,
    p_eval: np.ndarray,
    offer_cost: float,
    upgrade_value: float,
    budget: float | None = None,
) -> WhatIf:
    """Recommended policy, alternatives, profit curve and break-even cost for one set of economics:
    recommend_policies without the bootstrap, a budget capping the offers to the evaluation users."""
    cap = None if budget is None else offers_for_budget(budget, offer_cost)
    policies = recommend_policies(
        y_fit, p_fit, y_eval, p_eval, offer_cost, upgrade_value, n_boot=0, max_offers=cap
    )
    policies = per_1000(policies, len(p_eval))
    return WhatIf(
        offer_cost=offer_cost,
        upgrade_value=upgrade_value,
        budget=budget,
        max_offers=cap,
        policies=policies,
        curve=profit_curve(y_eval, p_eval, offer_cost, upgrade_value),
        break_even_cost=break_even_cost(y_eval, p_eval, upgrade_value),
    )


def f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The score cut-off that maximises F1 on (out-of-fold) predictions."""
    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def choose_threshold(
    y: np.ndarray, p: np.ndarray, objective: str = "f1", offer_cost: float = 0.0, upgrade_value: float = 0.0
) -> float:
    """Pick the cut-off on out-of-fold predictions: max F1, or max expected profit."""
    if objective == "f1":
        return f1_threshold(y, p)
    if objective == "profit":
        curve = profit_curve(y, p, offer_cost, upgrade_value)
        return float(best_policy(curve)["threshold"])
    raise ValueError(f"unknown threshold objective {objective!r}; use 'f1' or 'profit'")
