"""Ranked-list arithmetic: gains, lift, cut-offs, and policies priced along the ranking.

No well-kept library computes these for a ranked list, so they are written here, once, and tested
against hand-computed examples. The price of one offer is economics.py's (`Economics.profit(p, tau)`:
only what the offer causes is won); this module sums it over the users a cut-off offers to. Without a
stated lift nothing is priced.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import DegenerateDataWarning, bootstrap
from sklearn.metrics import precision_recall_curve

from .economics import Economics, Lift
from .errors import InputError

NO_OFFER = math.nextafter(1.0, 2.0)  # a threshold no probability reaches: the policy that sends nothing


def ranked(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores sorted by descending score; within a tie non-upgraders come first, so the
    result does not depend on input order and a tie never flatters the model."""
    order = np.lexsort((np.asarray(y), -np.asarray(p, dtype="float64")))
    return np.asarray(y)[order], np.asarray(p, dtype="float64")[order]


def cutoffs(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Offers, upgraders reached and expected upgraders (the sum of the scores) of offering to every user
    scoring at or above each distinct threshold: one row per distinct score (ties are offered
    together), plus a first row for sending no offer at all."""
    order = np.lexsort((np.asarray(y), -np.asarray(p, dtype="float64")))
    ys, ps = np.asarray(y)[order], np.asarray(p, dtype="float64")[order]
    last = _tie_ends(ps)
    n = np.arange(1, len(ys) + 1)
    curve = pd.DataFrame(
        {
            "threshold": np.r_[np.inf, ps[last]],
            "offers": np.r_[0, n[last]],
            "upgraders_reached": np.r_[0, np.cumsum(ys)[last]],
            "expected_upgraders": np.r_[0.0, np.cumsum(ps)[last]],
        }
    )
    curve["share_offered"] = curve["offers"] / max(len(ys), 1)
    return curve


def _tie_ends(ps: np.ndarray) -> np.ndarray:
    """The last position of each run of tied (sorted) scores: a threshold cannot split a tie."""
    return np.r_[ps[1:] != ps[:-1], True] if len(ps) else np.zeros(0, dtype=bool)


def profit_curve(
    y: np.ndarray, p: np.ndarray, offer_cost: float = 0.0, upgrade_value: float = 0.0
) -> pd.DataFrame:
    """The counts of `cutoffs`, under the name forecast.policy calls; the costs are not used (an
    offer's price is `priced_curve`'s, which counts only what the offer causes)."""
    del offer_cost, upgrade_value
    return cutoffs(y, p)


def realized_tau(y: np.ndarray, lift: Lift) -> np.ndarray:
    """The incremental upgrades a lift adds to users whose upgrades (without an offer) are `y`: the
    observed upgrade stands in for the baseline probability, as forecast.policy counts it."""
    y = np.asarray(y, dtype="float64")
    return lift.value * y if lift.relative else np.full_like(y, lift.value)


def priced_curve(y: np.ndarray, p: np.ndarray, econ: Economics, lift: Lift) -> pd.DataFrame:
    """`cutoffs` priced by what the offer causes: at each cut-off, the incremental upgrades and the
    expected profit summed over the offered users from their probabilities
    (`Economics.profit(p, lift.tau(p))`), and beside it the realized check, the same with each user's
    observed upgrade in place of p. Sums run in ranked order (np.cumsum), one user at a time."""
    order = np.lexsort((np.asarray(y), -np.asarray(p, dtype="float64")))
    ys, ps = np.asarray(y, dtype="float64")[order], np.asarray(p, dtype="float64")[order]
    last = _tie_ends(ps)
    tau = lift.tau(ps)
    curve = cutoffs(y, p)
    curve["incremental_upgrades"] = np.r_[0.0, np.cumsum(tau)[last]]
    curve["profit"] = np.r_[0.0, np.cumsum(econ.profit(ps, tau))[last]]
    curve["realized_profit"] = np.r_[0.0, np.cumsum(econ.profit(ys, realized_tau(ys, lift)))[last]]
    return curve


def best_policy(curve: pd.DataFrame) -> pd.Series:
    """The most profitable row of a priced curve (the first, i.e. fewest offers, among ties): the
    no-offer row whenever no cut-off makes money, so a loss is never chosen."""
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


POLICY_FIELDS = [
    "offers",
    "upgraders_reached",
    "expected_upgraders",
    "incremental_upgrades",
    "profit",
    "realized_profit",
    "share_offered",
    "share_of_upgraders",
    "precision",
]
PRICED_FIELDS = ("incremental_upgrades", "profit", "realized_profit")  # NaN when no lift is stated
PER_1000_FIELDS = ("offers", "upgraders_reached", "incremental_upgrades", "profit", "realized_profit")
# Without a lift nothing is priced: these audiences (top shares of the fit scores) are shown instead,
# each with the lift at which it would break even.
UNPRICED_SHARES = (0.05, 0.10, 0.20)


def _chosen(y: np.ndarray, p: np.ndarray, threshold: float, max_offers: int | None) -> np.ndarray:
    """Who is offered: every user scoring >= threshold, capped at the `max_offers` best-scored users
    (a tie the cap splits gives non-upgraders first, as `ranked` does)."""
    chosen = p >= threshold
    if max_offers is not None and chosen.sum() > max_offers:
        # Every user at or above the cut-off comes before the others in ranked order.
        chosen = np.zeros(len(p), dtype=bool)
        chosen[np.lexsort((y, -p))[: max(max_offers, 0)]] = True
    return chosen


def policy_outcomes(
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    econ: Economics,
    lift: Lift | None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    max_offers: int | None = None,
) -> dict[str, dict[str, float]]:
    """What offering to every user scoring >= threshold yields on (y, p), with bootstrap intervals:
    POLICY_FIELDS, the priced ones (PRICED_FIELDS) NaN without a lift.

    The cut-off is fixed in advance (chosen on other data), so the interval reflects which users
    happen to turn up: rows are resampled by scipy's bootstrap (percentile method)."""
    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    sel = _chosen(y, p, threshold, max_offers).astype("float64")
    if lift is None:
        inc = gain = real = np.zeros(len(p))
    else:
        tau = lift.tau(p)
        inc, gain, real = tau, econ.profit(p, tau), econ.profit(y, realized_tau(y, lift))

    def stat(y, s, p, inc, gain, real, axis=-1):
        offers = np.sum(s, axis=axis)
        reached = np.sum(y * s, axis=axis)
        n = y.shape[axis]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.stack(
                [
                    offers,
                    reached,
                    np.sum(p * s, axis=axis),
                    np.sum(inc * s, axis=axis),
                    np.sum(gain * s, axis=axis),
                    np.sum(real * s, axis=axis),
                    offers / n,
                    reached / np.sum(y, axis=axis),
                    reached / offers,
                ]
            )

    data = (y, sel, p, inc, gain, real)
    point = stat(*data)
    out = {f: {"value": float(v), "low": float(v), "high": float(v)} for f, v in zip(POLICY_FIELDS, point)}
    if len(y) > 1 and n_boot > 0:
        with warnings.catch_warnings():
            # A statistic that cannot vary (the unpriced zeros, a cut-off no one reaches) is expected here.
            warnings.simplefilter("ignore", DegenerateDataWarning)
            res = bootstrap(
                data,
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
    if lift is None:
        for f in PRICED_FIELDS:
            out[f] = {"value": math.nan, "low": math.nan, "high": math.nan}
    return out


def break_even_lift(
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    econ: Economics,
    relative: bool,
    max_offers: int | None = None,
) -> float:
    """The lift (relative to p, or absolute) at which the offers of a cut-off break even as a group,
    from the offered users' probabilities (economics.Economics.break_even_lift); NaN when none is sent."""
    chosen = _chosen(np.asarray(y), np.asarray(p, dtype="float64"), threshold, max_offers)
    return econ.break_even_lift(np.asarray(p, dtype="float64")[chosen], relative)


def unpriced_name(share: float) -> str:
    return f"top {share:.0%}"


def _candidates(
    p_fit: np.ndarray, curve: pd.DataFrame | None, n_eval: int, max_offers: int | None
) -> list[tuple[str, float, float]]:
    """(policy, cut-off, planned share): under a lift the most profitable cut-off of the fit scores
    and half and double its offers (NO_OFFER alone when none pays); without one, UNPRICED_SHARES."""
    if curve is None:
        shares = [s for s in UNPRICED_SHARES if max_offers is None or s * n_eval <= max_offers]
        return [(unpriced_name(s), threshold_for_share(p_fit, s), s) for s in shares or UNPRICED_SHARES[:1]]
    if max_offers is not None:
        curve = curve[curve["share_offered"] * n_eval <= max_offers]
    best = best_policy(curve)
    share = float(best["share_offered"])
    if share <= 0:
        return [("recommended", NO_OFFER, 0.0)]
    out = [("recommended", float(best["threshold"]), share)]
    double = min(2 * share, 1.0)
    out.append(("half the offers", threshold_for_share(p_fit, share / 2), share / 2))
    if max_offers is None or double * n_eval <= max_offers:
        out.append(("double the offers", threshold_for_share(p_fit, double), double))
    return out


def recommend_policies(
    y_fit: np.ndarray,
    p_fit: np.ndarray,
    y_eval: np.ndarray,
    p_eval: np.ndarray,
    econ: Economics,
    lift: Lift | None,
    n_boot: int = 1000,
    seed: int = 0,
    max_offers: int | None = None,
) -> pd.DataFrame:
    """Under a lift: the cut-off with the most expected incremental profit and two alternative budgets
    (half and double the offers); a single row sending nothing (threshold NO_OFFER) when no cut-off
    pays, so a loss is never recommended. Without a lift nothing is priced: the rows are the top
    UNPRICED_SHARES, each with the lift at which it breaks even ("break_even_lift", relative then).

    Cut-offs are chosen on (y_fit, p_fit), out-of-fold scores, and judged on the held-out
    (y_eval, p_eval) with bootstrap intervals, so the choice is not graded on its own data.
    `max_offers` is a budget for the evaluation users: no policy sends more offers to them."""
    curve = None if lift is None else priced_curve(y_fit, p_fit, econ, lift)
    relative = lift.relative if lift is not None else True
    rows = []
    for name, thr, planned in _candidates(np.asarray(p_fit), curve, len(p_eval), max_offers):
        res = policy_outcomes(y_eval, p_eval, thr, econ, lift, n_boot, seed, max_offers=max_offers)
        row: dict[str, object] = {
            "policy": name,
            "priced": lift is not None,
            "threshold": thr,
            "planned_share": planned,
            "budget": planned * len(p_eval) * econ.offer_cost,
            "break_even_lift": break_even_lift(y_eval, p_eval, thr, econ, relative, max_offers),
        }
        for f, v in res.items():
            row[f], row[f + "_low"], row[f + "_high"] = v["value"], v["low"], v["high"]
        rows.append(row)
    return pd.DataFrame(rows)


def per_1000(policies: pd.DataFrame, n: int) -> pd.DataFrame:
    """recommend_policies' rows with PER_1000_FIELDS (and their bounds) scaled to 1,000 users scored:
    "<field>[_low|_high]_per_1000"."""
    out = policies.copy()
    for f in PER_1000_FIELDS:
        for s in ("", "_low", "_high"):
            out[f"{f}{s}_per_1000"] = out[f + s] * 1000 / max(n, 1)
    return out


def offers_for_budget(budget: float, offer_cost: float) -> int:
    """How many offers a budget pays for, counted as `score --budget` counts them."""
    if not offer_cost > 0:
        raise InputError(f"the offer cost must be positive to spend a budget (got {offer_cost})")
    if not budget >= 0:
        raise InputError(f"the budget must not be negative (got {budget})")
    # The epsilon keeps a budget of exactly k offers from losing one to rounding (0.3 / 0.1 < 3).
    return int(math.floor(budget / offer_cost + 1e-9))


@dataclass(frozen=True)
class WhatIf:
    """The targeting economics for one price list, lift and budget, without intervals."""

    econ: Economics
    lift: Lift | None  # None: nothing priced
    budget: float | None
    max_offers: int | None  # None: no budget
    policies: pd.DataFrame  # recommend_policies' rows and per_1000 (_low/_high equal the value)
    curve: pd.DataFrame  # the priced curve of the evaluation rows (cutoffs alone without a lift)

    @property
    def sends_offers(self) -> bool:
        """False without a lift, when no cut-off made money on the fit scores, or when the budget pays
        for no offer."""
        return self.lift is not None and bool(self.policies["planned_share"].iloc[0] > 0)

    def assumption(self) -> str:
        """The sentence every priced figure rests on."""
        return unpriced_reason() if self.lift is None else self.lift.describe()


def unpriced_reason() -> str:
    return (
        "unpriced: give --assumed-lift (e.g. 20% or 1.5pp), or measure the lift with a campaign; "
        "what an offer causes is unknown"
    )


def what_if(
    y_fit: np.ndarray,
    p_fit: np.ndarray,
    y_eval: np.ndarray,
    p_eval: np.ndarray,
    econ: Economics,
    lift: Lift | None,
    budget: float | None = None,
) -> WhatIf:
    """Policies and the priced curve for one price list and lift: recommend_policies without the
    bootstrap, a budget capping the offers to the evaluation users."""
    cap = None if budget is None else offers_for_budget(budget, econ.offer_cost)
    policies = recommend_policies(y_fit, p_fit, y_eval, p_eval, econ, lift, n_boot=0, max_offers=cap)
    curve = cutoffs(y_eval, p_eval) if lift is None else priced_curve(y_eval, p_eval, econ, lift)
    return WhatIf(econ, lift, budget, cap, per_1000(policies, len(p_eval)), curve)


def f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The score cut-off that maximises F1 on (out-of-fold) predictions."""
    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def choose_threshold(
    y: np.ndarray,
    p: np.ndarray,
    objective: str = "f1",
    econ: Economics | None = None,
    lift: Lift | None = None,
) -> float:
    """Pick the cut-off on out-of-fold predictions: max F1, or max expected incremental profit under a
    stated lift (NO_OFFER when no cut-off pays). "profit" without a lift is refused: nothing prices an
    offer then, and a silent F1 threshold would pass for a priced one."""
    if objective == "f1":
        return f1_threshold(y, p)
    if objective == "profit":
        if econ is None or lift is None:
            raise InputError(
                "--threshold profit prices each offer by what it causes, which needs the offer's effect: "
                "give --assumed-lift (e.g. 20% or 1.5pp), or use --threshold f1"
            )
        best = best_policy(priced_curve(y, p, econ, lift))
        return float(best["threshold"]) if best["offers"] > 0 else NO_OFFER
    raise ValueError(f"unknown threshold objective {objective!r}; use 'f1' or 'profit'")
