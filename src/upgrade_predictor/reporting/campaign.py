"""Targeting: whom to send an offer, with gains, profit and three budgets judged on held-out users."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import config, targeting
from ..training.runs import Run

N_BOOT = 1000
# The page embeds every score the targeting section uses (about 20 bytes each) so its economics
# panel can recompute in the browser; above this many rows that panel is left out.
ECONOMICS_MAX_ROWS = 100_000


@dataclass(frozen=True)
class Scores:
    """The scores behind the policies: cut-offs are chosen on the out-of-fold scores of the training
    rows (fit) and judged on the held-out test rows (eval)."""

    y_fit: np.ndarray
    p_fit: np.ndarray
    y_eval: np.ndarray
    p_eval: np.ndarray

    def embeddable(self) -> bool:
        """Small enough for the page, and finite (the browser sorts them as Python does)."""
        n = len(self.p_fit) + len(self.p_eval)
        return n <= ECONOMICS_MAX_ROWS and bool(
            np.isfinite(self.p_fit).all() and np.isfinite(self.p_eval).all()
        )


@dataclass(frozen=True)
class Targeting:
    model: str  # "no_leak" (fit to score today's users) or "chosen"
    gains: dict[str, pd.DataFrame]  # one cumulative gains curve per scoring model
    deciles: pd.DataFrame
    profit: pd.DataFrame  # the profit curve on the test rows
    # One row per policy (recommended, half/double the offers): outcomes with bootstrap intervals,
    # and the same per 1,000 users scored ("<field>[_low|_high]_per_1000").
    policies: pd.DataFrame
    offer_cost: float
    upgrade_value: float
    n_test: int
    base_rate: float
    n_boot: int = N_BOOT
    default_offer_cost: float = config.OFFER_COST
    default_upgrade_value: float = config.UPGRADE_VALUE
    break_even_cost: float = float("nan")  # targeting.break_even_cost of the test rows
    break_even_min_offers: int = targeting.BREAK_EVEN_MIN_OFFERS
    scores: Scores | None = None

    @property
    def economics_max_rows(self) -> int:
        return ECONOMICS_MAX_ROWS

    def economics_data(self) -> dict[str, Any] | None:
        """What the page's economics panel recomputes from (None: the page leaves the panel out).

        Scores go as Python floats, whose JSON form reads back in the browser as the same doubles, so
        the page computes on exactly the numbers targeting.what_if computes on."""
        s = self.scores
        if s is None or not s.embeddable():
            return None

        def part(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
            return {"y": "".join("1" if v else "0" for v in y), "p": [float(v) for v in p]}

        return {
            "offerCost": self.offer_cost,
            "upgradeValue": self.upgrade_value,
            "minOffers": targeting.BREAK_EVEN_MIN_OFFERS,
            "fit": part(s.y_fit, s.p_fit),
            "eval": part(s.y_eval, s.p_eval),
        }


def targeting_section(run: Run) -> Targeting:
    """Curves and policies for the model fit to score today's users (the no-leak one when it exists)."""
    pr = run.predictions
    use_nl = run.no_leak is not None and "p_no_leak" in pr
    pcol, ocol = ("p_no_leak", "oof_no_leak") if use_nl else ("p", "oof")
    tr, te = pr[pr["set"] == "train"], pr[pr["set"] == "test"]
    y_te, p_te = te["y"].to_numpy(int), te[pcol].to_numpy()
    curves = {"model fit to score today" if use_nl else "chosen model": p_te}
    if use_nl:
        curves["chosen model (with " + ", ".join(run.leaky) + ")"] = te["p"].to_numpy()
    if "p_reference" in te and te["p_reference"].notna().all():
        curves["course reference"] = te["p_reference"].to_numpy()
    cost, value = run.info.offer_cost, run.info.upgrade_value
    scores = Scores(tr["y"].to_numpy(int), tr[ocol].to_numpy("float64"), y_te, p_te)
    policies = targeting.recommend_policies(
        scores.y_fit, scores.p_fit, y_te, p_te, cost, value, n_boot=N_BOOT, seed=run.info.seed
    )
    policies = targeting.per_1000(policies, len(y_te))
    return Targeting(
        model="no_leak" if use_nl else "chosen",
        gains={k: targeting.gains_curve(y_te, v) for k, v in curves.items()},
        deciles=targeting.gains_table(y_te, p_te, bins=10),
        profit=targeting.profit_curve(y_te, p_te, cost, value),
        policies=policies,
        offer_cost=cost,
        upgrade_value=value,
        n_test=int(len(y_te)),
        base_rate=float(y_te.mean()),
        break_even_cost=targeting.break_even_cost(y_te, p_te, value),
        scores=scores,
    )
