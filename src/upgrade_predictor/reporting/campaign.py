"""Targeting: whom to send an offer, with gains, profit and three budgets judged on held-out users."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .. import config, targeting
from ..training.runs import Run

N_BOOT = 1000


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
    policies = targeting.recommend_policies(
        tr["y"].to_numpy(int), tr[ocol].to_numpy(), y_te, p_te, cost, value, n_boot=N_BOOT, seed=run.info.seed
    )
    for f in ("offers", "upgraders_reached", "profit"):
        for s in ("", "_low", "_high"):
            policies[f"{f}{s}_per_1000"] = policies[f + s] * 1000 / len(y_te)
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
    )
