"""What a campaign can detect: the minimum detectable effect of its two arms, against its break-even.

The test is the two-proportion z-test (5% two-sided, 80% power) on Cohen's arcsine effect size h,
solved with statsmodels' `NormalIndPower` for the arm sizes as assigned and turned back into an absolute
difference of upgrade rates above the baseline (the target group's mean forecast probability)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..economics import Economics

ALPHA = 0.05
POWER = 0.8
METHOD = "statsmodels NormalIndPower on Cohen's h (arcsine), two-sided"
CANNOT_TELL = "this campaign cannot tell whether it pays"


@dataclass(frozen=True)
class Power:
    """The smallest absolute lift the campaign detects, and the lift at which the offer breaks even."""

    baseline: float  # mean forecast probability of the target group
    mde: float  # absolute difference of upgrade rates
    break_even: float  # absolute lift (Economics.break_even_lift, relative=False)
    alpha: float = ALPHA
    power: float = POWER
    method: str = METHOD

    @property
    def can_tell(self) -> bool:
        return self.mde <= self.break_even

    @property
    def warning(self) -> str | None:
        if self.can_tell:
            return None
        return (
            f"{CANNOT_TELL}: it detects a lift of {self.mde * 100:.2f}pp at best, above the "
            f"{self.break_even * 100:.2f}pp at which the offer breaks even; target more users or hold out more"
        )


def minimum_detectable_effect(
    n_offer: int, n_holdout: int, baseline: float, alpha: float = ALPHA, power: float = POWER
) -> float:
    """The absolute rise of the upgrade rate above `baseline` that the arms detect with `power`."""
    from statsmodels.stats.power import NormalIndPower

    if n_offer < 1 or n_holdout < 1:
        return math.inf
    p0 = min(max(baseline, 1e-9), 1 - 1e-9)
    h = NormalIndPower().solve_power(
        effect_size=None, nobs1=n_offer, alpha=alpha, power=power, ratio=n_holdout / n_offer
    )
    angle = math.asin(math.sqrt(p0)) + float(h) / 2
    if angle >= math.pi / 2:
        return 1 - p0  # no rise short of everyone upgrading is detectable
    return math.sin(angle) ** 2 - p0


def campaign_power(p: np.ndarray, n_offer: int, n_holdout: int, economics: Economics) -> Power:
    """The power of a campaign over the target group of forecast probabilities `p`."""
    baseline = float(np.mean(p)) if len(p) else 0.0
    return Power(
        baseline=baseline,
        mde=minimum_detectable_effect(n_offer, n_holdout, baseline),
        break_even=economics.break_even_lift(p, relative=False),
    )
