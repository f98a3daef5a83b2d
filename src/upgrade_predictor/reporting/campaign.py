"""Targeting: whom to send an offer, with gains and policies priced by what an offer causes, judged on
held-out users. Nothing is priced without a stated lift; the break-even lift is stated either way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import config, targeting
from ..economics import Economics, Lift
from ..training.runs import Run
from .format import num

N_BOOT = 1000
# The page embeds every score the targeting section uses (about 20 bytes each) so its economics
# panel can recompute in the browser; above this many rows that panel is left out.
ECONOMICS_MAX_ROWS = 100_000
LIFT_POINTS = 60  # points of the profit-against-lift line


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
    curve: pd.DataFrame  # targeting.priced_curve of the test rows (targeting.cutoffs when unpriced)
    # One row per policy (under a lift: recommended, half/double the offers; without: top shares):
    # outcomes with bootstrap intervals, and per 1,000 users scored ("<field>[_low|_high]_per_1000").
    policies: pd.DataFrame
    econ: Economics
    lift: Lift | None  # the stated lift every priced figure rests on; None: nothing priced
    n_test: int
    base_rate: float
    # Expected profit on the test users of the first policy's audience against the lift ("lift",
    # "profit"), of `lift`'s kind (relative when none): where it crosses zero is the break-even lift.
    lift_curve: pd.DataFrame
    n_boot: int = N_BOOT
    default_offer_cost: float = config.OFFER_COST
    default_upgrade_value: float = config.UPGRADE_VALUE
    scores: Scores | None = None

    @property
    def offer_cost(self) -> float:
        return self.econ.offer_cost

    @property
    def upgrade_value(self) -> float:
        return self.econ.upgrade_value

    @property
    def priced(self) -> bool:
        return self.lift is not None

    @property
    def relative(self) -> bool:
        return self.lift is None or self.lift.relative

    @property
    def first(self) -> pd.Series:
        """The recommended policy, or without a lift the top UNPRICED_SHARES[1] (10%) audience."""
        return first_policy(self.policies)

    @property
    def break_even_lift(self) -> float:
        return float(self.first["break_even_lift"])

    @property
    def sends_offers(self) -> bool:
        return self.priced and bool(self.first["offers"] > 0)

    @property
    def economics_max_rows(self) -> int:
        return ECONOMICS_MAX_ROWS

    def economics_data(self) -> dict[str, Any] | None:
        """What the page's economics panel recomputes from (None: the page leaves the panel out).

        Scores go as Python floats, whose JSON form reads back in the browser as the same doubles."""
        s = self.scores
        if s is None or not s.embeddable():
            return None

        def part(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
            return {"y": "".join("1" if v else "0" for v in y), "p": [float(v) for v in p]}

        return {
            "offerCost": self.offer_cost,
            "upgradeValue": self.upgrade_value,
            "discount": self.econ.discount,
            "lift": None if self.lift is None else lift_option(self.lift),
            "unpriced": [[targeting.unpriced_name(v), v] for v in targeting.UNPRICED_SHARES],
            "fit": part(s.y_fit, s.p_fit),
            "eval": part(s.y_eval, s.p_eval),
        }

    def lift_text(self, value: float) -> str:
        """A lift of this section's kind as the report writes it: '+7.5%' or '+1.2pp'."""
        if not np.isfinite(value):
            return "no lift (nothing it could add pays)"
        return f"+{num(value * 100, 1)}{'%' if self.relative else 'pp'}"

    def assumption(self) -> str:
        """The sentence every priced figure rests on, or why nothing is priced."""
        return targeting.unpriced_reason() if self.lift is None else self.lift.describe()


def lift_option(lift: Lift) -> str:
    """A lift as --assumed-lift spells it ('20%', '1.5pp')."""
    return f"{lift.value * 100:g}{'%' if lift.relative else 'pp'}"


def first_policy(policies: pd.DataFrame) -> pd.Series:
    """The row a summary quotes: the recommended policy, or without a lift the top-10% audience."""
    mid = policies[policies["planned_share"] == targeting.UNPRICED_SHARES[1]]
    return mid.iloc[0] if not bool(policies["priced"].iloc[0]) and len(mid) else policies.iloc[0]


def lift_curve(p: np.ndarray, econ: Economics, relative: bool, marks: list[float]) -> pd.DataFrame:
    """Expected profit of offering to users of probabilities `p` at lifts from 0 to 2.5 times the
    largest finite mark (an absolute lift stops at 100pp)."""
    finite = [m for m in marks if np.isfinite(m) and m > 0]
    top = 2.5 * max(finite) if finite else (1.0 if relative else 0.05)
    grid = np.linspace(0.0, top if relative else min(top, 1.0), LIFT_POINTS)
    profit = [float(np.cumsum(econ.profit(p, Lift(v, relative).tau(p)))[-1]) if len(p) else 0.0 for v in grid]
    return pd.DataFrame({"lift": grid, "profit": profit})


def targeting_section(run: Run) -> Targeting:
    """Curves and policies for the model fit to score today's users (the no-leak one when it exists),
    priced under the run's stated lift (run.json's assumed_lift) or left unpriced."""
    pr = run.predictions
    use_nl = run.no_leak is not None and "p_no_leak" in pr
    pcol, ocol = ("p_no_leak", "oof_no_leak") if use_nl else ("p", "oof")
    tr, te = pr[pr["set"] == "train"], pr[pr["set"] == "test"]
    y_te, p_te = te["y"].to_numpy(int), te[pcol].to_numpy("float64")
    curves = {"model fit to score today" if use_nl else "chosen model": p_te}
    if use_nl:
        curves["chosen model (with " + ", ".join(run.leaky) + ")"] = te["p"].to_numpy()
    if "p_reference" in te and te["p_reference"].notna().all():
        curves["course reference"] = te["p_reference"].to_numpy()
    info = run.info
    econ = Economics(float(info.offer_cost), float(info.upgrade_value), float(info.discount))
    lift = None if info.assumed_lift is None else Lift.parse(info.assumed_lift)
    scores = Scores(tr["y"].to_numpy(int), tr[ocol].to_numpy("float64"), y_te, p_te)
    policies = targeting.recommend_policies(
        scores.y_fit, scores.p_fit, y_te, p_te, econ, lift, n_boot=N_BOOT, seed=info.seed
    )
    policies = targeting.per_1000(policies, len(y_te))
    first = first_policy(policies)
    relative = lift is None or lift.relative
    # The audience whose profit is drawn against the lift: the recommended one, or when it sends
    # nothing the top UNPRICED_SHARES[1] of the test users, as an unpriced run shows.
    if first["offers"] > 0:
        audience = p_te[p_te >= first["threshold"]]
    else:
        audience = p_te[p_te >= targeting.threshold_for_share(p_te, targeting.UNPRICED_SHARES[1])]
    marks = [econ.break_even_lift(audience, relative), *([lift.value] if lift is not None else [])]
    return Targeting(
        model="no_leak" if use_nl else "chosen",
        gains={k: targeting.gains_curve(y_te, v) for k, v in curves.items()},
        deciles=targeting.gains_table(y_te, p_te, bins=10),
        curve=targeting.cutoffs(y_te, p_te)
        if lift is None
        else targeting.priced_curve(y_te, p_te, econ, lift),
        policies=policies,
        econ=econ,
        lift=lift,
        n_test=int(len(y_te)),
        base_rate=float(y_te.mean()),
        lift_curve=lift_curve(audience, econ, relative, marks),
        scores=scores,
    )
