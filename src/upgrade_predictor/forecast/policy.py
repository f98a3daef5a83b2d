"""The offer policy of an events run, priced by what an offer causes and judged per campaign.

A campaign is one day's list: every user free on a calendar-grid date of the design (the population
`score --events` scores). A policy (offer to scores >= a cut-off) is chosen on the grid dates of the
most recent labelled rows and judged on the grid dates of the test period, per campaign and per
1,000 users scored, with intervals from resampling whole users (a user free for weeks is in several
campaigns). The daily first-week rows that no scoring day looks like do not price anything.

The data hold no offer, so an upgrader in them is a user who upgraded without one. Under a lift
(economics.Lift) the offer adds `lift x upgraders reached` upgrades (relative) or `lift x offers`
(absolute); the profit is then (V - D) x incremental - C x offers - D x upgraders reached, the
economics module's formula summed over the audience. Without a lift the policy is not priced: it sends
no offer and says which lift would make its audience break even.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import targeting
from ..economics import Economics, Lift
from .design import Design

NO_OFFER = math.nextafter(1.0, 2.0)  # a threshold no probability reaches: the policy that sends nothing
N_BOOT = 200
FALLBACK_SHARE = 0.10  # the audience whose break-even lift is stated when the policy sends nothing
FIELDS = ("offers", "upgraders_reached", "incremental_upgrades", "profit")


@dataclass(frozen=True)
class Policy:
    """The offer policy at the run's economics and stated lift, and what it did on the test campaigns."""

    threshold: float  # NO_OFFER when not priced or no cut-off paid on the recent campaigns
    pays: bool
    offer_cost: float
    upgrade_value: float
    discount: float = 0.0
    lift: dict[str, Any] | None = None  # Lift.as_dict() the profit rests on; None: not priced
    break_even_lift: float = float("nan")  # lift (of `lift`'s kind; relative when none) at which it pays
    break_even_share: float = 0.0  # 0: the policy's own audience; else the top share of each campaign
    campaigns: int = 0  # test-period campaigns (grid dates) judged
    users_per_campaign: float = 0.0  # free users on a campaign's date (the population, not the sample)
    per_campaign: dict[str, dict[str, float]] = field(default_factory=dict)  # FIELDS -> value/low/high
    per_1000: dict[str, dict[str, float]] = field(default_factory=dict)  # per 1,000 users scored
    # The break-even audience per campaign (offers, upgraders_reached): profit against any lift is read off it.
    audience: dict[str, float] = field(default_factory=dict)

    def profit_at(self, lift: np.ndarray, relative: bool) -> np.ndarray:
        """Incremental profit per campaign of the break-even audience at each lift (linear in it)."""
        offers, reached = self.audience.get("offers", 0.0), self.audience.get("upgraders_reached", 0.0)
        margin = self.upgrade_value - self.discount
        base = reached if relative else offers
        return margin * np.asarray(lift) * base - self.offer_cost * offers - self.discount * reached

    @property
    def priced(self) -> bool:
        return self.lift is not None

    def assumption(self) -> str:
        """The sentence every priced figure rests on."""
        if self.lift is None:
            return "not priced: what an offer causes is unknown (no lift was assumed or measured)"
        lift = Lift(float(self.lift["value"]), bool(self.lift["relative"]), str(self.lift["source"]))
        return lift.describe()


def on_grid(design: Design, rows: np.ndarray) -> np.ndarray:
    """Which of `rows` fall on a calendar-grid date, where the design holds every user free that day."""
    plan = design.plan
    cut = design.rows["cutoff"].to_numpy()[rows].astype("datetime64[D]")
    days = (cut - np.datetime64(plan.calendar_anchor, "D")).astype(np.int64)
    return days % plan.calendar_every_days == 0


def _totals(y: np.ndarray, sel: np.ndarray, w: np.ndarray, lift: Lift | None) -> np.ndarray:
    """Weighted offers, upgraders reached and incremental upgrades of an audience (0 without a lift)."""
    offers, reached = float(np.sum(w * sel)), float(np.sum(w * sel * y))
    incremental = 0.0 if lift is None else lift.value * (reached if lift.relative else offers)
    return np.array([offers, reached, incremental])


def _profit(t: np.ndarray, econ: Economics) -> float:
    offers, reached, incremental = t
    return (
        (econ.upgrade_value - econ.discount) * incremental
        - econ.offer_cost * offers
        - econ.discount * reached
    )


def break_even(t: np.ndarray, econ: Economics, relative: bool) -> float:
    """The lift at which an audience's offers pay for themselves (inf when nothing can)."""
    offers, reached, _ = t
    margin = econ.upgrade_value - econ.discount
    base = reached if relative else offers
    if margin <= 0 or base <= 0:
        return float("inf")
    return float((econ.offer_cost * offers + econ.discount * reached) / (margin * base))


def choose_threshold(y: np.ndarray, p: np.ndarray, econ: Economics, lift: Lift | None) -> float:
    """The cut-off with the most incremental profit over the recent campaigns' rows; NO_OFFER without a
    lift or when no cut-off pays (the least-bad loss is never picked)."""
    if lift is None or len(y) == 0:
        return NO_OFFER
    curve = targeting.profit_curve(y, p, 0.0, 0.0)
    t = np.stack([curve["offers"], curve["upgraders_reached"]], axis=1).astype("float64")
    incremental = lift.value * (t[:, 1] if lift.relative else t[:, 0])
    margin = econ.upgrade_value - econ.discount
    profit = margin * incremental - econ.offer_cost * t[:, 0] - econ.discount * t[:, 1]
    best = int(np.argmax(profit))
    return float(curve["threshold"].iloc[best]) if profit[best] > 0 else NO_OFFER


def _audience(p: np.ndarray, dates: np.ndarray, threshold: float) -> tuple[np.ndarray, float]:
    """Who the policy offers to on each campaign; the top FALLBACK_SHARE of each campaign when none."""
    sel = p >= threshold
    if sel.any():
        return sel, 0.0
    frame = pd.DataFrame({"d": dates, "p": p})
    rank = frame.groupby("d")["p"].rank(ascending=False, method="first", pct=True).to_numpy()
    return rank <= FALLBACK_SHARE, FALLBACK_SHARE


def judge(
    y: np.ndarray,
    p: np.ndarray,
    users: np.ndarray,
    dates: np.ndarray,
    threshold: float,
    econ: Economics,
    lift: Lift | None,
    scale: float,
    seed: int,
) -> Policy:
    """The policy at `threshold` on the test campaigns (rows of users free on grid `dates`): per campaign
    (scaled by `scale`, population over sampled users) and per 1,000 users scored, with 95% intervals
    over resampled users. Hand-written: rows of one user must move together, which scipy's bootstrap
    does not do."""
    sel = (p >= threshold).astype("float64")
    n_campaigns, n_rows = max(len(np.unique(dates)), 1), max(len(y), 1)
    uniq, inverse = np.unique(users, return_inverse=True)
    rng = np.random.default_rng(seed)
    ones = np.ones(len(y))
    draws = [ones] + [
        np.bincount(rng.integers(0, len(uniq), len(uniq)), minlength=len(uniq))[inverse].astype("float64")
        for _ in range(N_BOOT)
    ]
    stats = []
    for w in draws:
        t = _totals(y, sel, w, lift)
        stats.append(np.r_[t, _profit(t, econ) if lift is not None else np.nan, w.sum()])
    s = np.array(stats)
    per_campaign: dict[str, dict[str, float]] = {}
    per_1000: dict[str, dict[str, float]] = {}
    for k, name in enumerate(FIELDS):
        camp = s[:, k] * scale / n_campaigns
        thousand = s[:, k] * 1000.0 / s[:, -1]
        for out, v in ((per_campaign, camp), (per_1000, thousand)):
            lo, hi = np.nanquantile(v[1:], [0.025, 0.975]) if np.isfinite(v[1:]).any() else (v[0], v[0])
            out[name] = {"value": float(v[0]), "low": float(lo), "high": float(hi)}
    audience, share = _audience(p, dates, threshold)
    t = _totals(y, audience.astype("float64"), ones, lift)
    relative = lift.relative if lift is not None else True
    return Policy(
        threshold=float(threshold),
        pays=bool(threshold < NO_OFFER),
        offer_cost=econ.offer_cost,
        upgrade_value=econ.upgrade_value,
        discount=econ.discount,
        lift=lift.as_dict() if lift is not None else None,
        break_even_lift=break_even(t, econ, relative),
        break_even_share=share,
        campaigns=len(np.unique(dates)),
        users_per_campaign=float(n_rows * scale / n_campaigns),
        per_campaign=per_campaign,
        per_1000=per_1000,
        audience={
            "offers": float(t[0] * scale / n_campaigns),
            "upgraders_reached": float(t[1] * scale / n_campaigns),
        },
    )


def grid_dates(design: Design, rows: np.ndarray) -> np.ndarray:
    """The cutoff date of each of `rows` (as numpy days), for grouping rows into campaigns."""
    return design.rows["cutoff"].to_numpy()[rows].astype("datetime64[D]")
