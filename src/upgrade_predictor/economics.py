"""What an offer is worth: the one place a decision is priced by what it causes.

An offer sent to a user whose baseline upgrade probability is p and whom the offer moves by an
incremental probability tau is worth, in expectation,

    upgrade_value * tau - offer_cost - discount * (p + tau)

The user who would have upgraded anyway (p) is not won by the offer: at best they redeem it, and the
discount is revenue given up. Before any experiment tau is unknown: a decision is priced only under an
explicit `Lift` assumption (relative to p, or absolute), or under an effect a randomized holdout
measured, and every output that prices a decision names which.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .errors import InputError

_LIFT = re.compile(r"^\s*\+?(?P<value>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>%|pp)\s*$")


@dataclass(frozen=True)
class Lift:
    """An incremental upgrade probability: `relative` to each user's baseline p (tau = value * p) or
    absolute (tau = value, a probability: 0.01 is one percentage point)."""

    value: float
    relative: bool
    source: str = "assumed"  # "assumed" (an option the user gave) or "measured" (a readout's effect)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.value) and self.value >= 0):
            raise InputError(f"a lift must be a non-negative number (got {self.value})")
        if not self.relative and self.value > 1:
            raise InputError(f"an absolute lift is a probability, at most 100pp (got {self.value * 100:g}pp)")

    @classmethod
    def parse(cls, text: str, option: str = "--assumed-lift") -> Lift:
        """'20%' (each user's probability raised by a fifth) or '1.5pp' (by 1.5 percentage points)."""
        m = _LIFT.match(str(text))
        if m is None:
            raise InputError(
                f"{option}: {text!r} is not a lift; give it relative to each user's upgrade probability "
                "('20%': raised by a fifth) or absolute in percentage points ('1.5pp')"
            )
        value = float(m["value"]) / 100
        return cls(value, relative=m["unit"] == "%")

    def tau(self, p: np.ndarray | float) -> np.ndarray:
        """The incremental probability of users with baseline probabilities `p`, capped so that
        p + tau never exceeds 1."""
        p = np.asarray(p, dtype="float64")
        raw = self.value * p if self.relative else np.full_like(p, self.value)
        return np.minimum(raw, 1.0 - p)

    def describe(self) -> str:
        """'an assumed lift of +20% of each user's upgrade probability', and the like."""
        what = (
            f"+{self.value * 100:g}% of each user's upgrade probability"
            if self.relative
            else f"+{self.value * 100:g} percentage points"
        )
        return f"an {self.source} lift of {what}"

    def as_dict(self) -> dict[str, object]:
        return {"value": self.value, "relative": self.relative, "source": self.source}


@dataclass(frozen=True)
class Economics:
    """The price list of an offer: its cost, the value of an upgrade, and the discount an upgrader
    who redeems it is given (revenue given up; 0 when the offer is not a price cut)."""

    offer_cost: float
    upgrade_value: float
    discount: float = 0.0

    def __post_init__(self) -> None:
        for name, v in (
            ("--offer-cost", self.offer_cost),
            ("--upgrade-value", self.upgrade_value),
            ("--discount", self.discount),
        ):
            if not (math.isfinite(v) and v >= 0):
                raise InputError(f"{name} must be a non-negative number (got {v})")
        if self.discount >= self.upgrade_value > 0:
            raise InputError(
                f"--discount ({self.discount:g}) is at least the upgrade value ({self.upgrade_value:g}): "
                "no offer could pay; give a smaller discount"
            )

    def profit(self, p: np.ndarray | float, tau: np.ndarray | float) -> np.ndarray:
        """Expected incremental profit of offering to users with baseline p and incremental tau."""
        p = np.asarray(p, dtype="float64")
        tau = np.asarray(tau, dtype="float64")
        return self.upgrade_value * tau - self.offer_cost - self.discount * (p + tau)

    def break_even_tau(self, p: np.ndarray | float) -> np.ndarray:
        """The incremental probability at which an offer to a user of baseline p pays for itself."""
        p = np.asarray(p, dtype="float64")
        margin = self.upgrade_value - self.discount
        if margin <= 0:
            return np.full_like(p, np.inf)
        return (self.offer_cost + self.discount * p) / margin

    def break_even_lift(self, p: np.ndarray | float, relative: bool) -> float:
        """The lift, of the given kind, at which offering to every user of baseline probabilities `p`
        breaks even as a group (absolute: a probability; relative: a share of p)."""
        p = np.asarray(p, dtype="float64")
        if p.size == 0:
            return float("nan")
        margin = self.upgrade_value - self.discount
        if margin <= 0:
            return float("inf")
        tau = (self.offer_cost + self.discount * float(p.mean())) / margin
        if not relative:
            return float(tau)
        return float(tau / p.mean()) if p.mean() > 0 else float("inf")

    def as_dict(self) -> dict[str, float]:
        return {"offer_cost": self.offer_cost, "upgrade_value": self.upgrade_value, "discount": self.discount}
