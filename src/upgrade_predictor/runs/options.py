"""The options every run kind shares: budget, seed, economics, output, signing, time limit, cluster."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from .. import config
from ..economics import Economics, Lift
from ..errors import InputError


@dataclass
class RunOptions:
    """How a run compares, tunes and decides, and where it goes; each kind adds what it reads."""

    out: Path | None = None
    budget: str = config.BUDGET
    seed: int = config.SEED
    families: list[str] = field(default_factory=lambda: list(get_args(config.FamilyName)))
    strategies: list[str] = field(default_factory=lambda: list(config.STRATEGIES))
    objective: str = config.OBJECTIVE
    threshold: str = config.THRESHOLD
    offer_cost: float = config.OFFER_COST
    upgrade_value: float = config.UPGRADE_VALUE
    jobs: int = config.JOBS
    report: bool = True
    force: bool = False
    dask: str | None = None  # a scheduler address, or "local"
    sign_key: Path | None = None  # a private key: model.zip is signed (model.zip.sig beside it)
    time_limit: float | None = None  # seconds for the whole run; None: the budget's trial counts only
    # The offer's assumed effect ('20%' of each user's probability, or '1.5pp'): None prices no policy.
    assumed_lift: str | None = None
    discount: float = 0.0  # revenue given up when an upgrader redeems the offer

    def lift(self) -> Lift | None:
        return None if self.assumed_lift is None else Lift.parse(self.assumed_lift)

    def economics(self) -> Economics:
        return Economics(float(self.offer_cost), float(self.upgrade_value), float(self.discount))

    def check(self) -> config.Budget:
        """Refuse a bad option before any work; the budget the run keeps to."""
        from .. import evaluation  # the model stack loads only when a run starts, not for --help
        from ..models import FAMILIES

        if self.budget not in config.BUDGETS:
            raise InputError(f"--budget {self.budget!r}: choose quick, standard or thorough")
        bad = [f for f in self.families if f not in FAMILIES]
        if bad:
            raise InputError(f"--families: unknown {', '.join(bad)}; choose from {', '.join(FAMILIES)}")
        bad = [s for s in self.strategies if s not in config.STRATEGIES]
        if bad:
            raise InputError(
                f"--strategies: unknown {', '.join(bad)}; choose from {', '.join(config.STRATEGIES)}"
            )
        if self.objective not in evaluation.METRICS or self.objective in evaluation.LOWER_IS_BETTER:
            ok = [m for m in evaluation.METRICS if m not in evaluation.LOWER_IS_BETTER]
            raise InputError(f"--objective {self.objective!r}: choose one of {', '.join(ok)}")
        if self.threshold not in ("f1", "profit"):
            raise InputError(f"--threshold {self.threshold!r}: choose f1 or profit")
        self.check_kind()
        if self.sign_key is not None:  # a bad key must fail now, not after an hour of training
            from ..bundle import check_signing_key

            check_signing_key(self.sign_key)
        config.check_number("--seed", self.seed, 0, config.MAX_SEED)
        config.check_number("--offer-cost", self.offer_cost, 0, above=True)
        config.check_number("--upgrade-value", self.upgrade_value, 0, above=True)
        self.economics()  # after the costs' own checks: a discount of at least the upgrade value is refused
        config.check_number("--jobs", self.jobs, 1, 1024)
        if self.time_limit is not None and not (math.isfinite(self.time_limit) and self.time_limit > 0):
            raise InputError(
                f"--time-limit {self.time_limit}: give the whole run's wall-clock limit as a positive "
                "number of seconds (e.g. 600), or leave it out"
            )
        return config.BUDGETS[self.budget]

    def check_kind(self) -> None:
        """The checks of the options a kind adds (each kind calls the next in line), and of the offer's
        assumed effect, which every kind prices its offers by."""
        self.lift()  # refused here, before any work, when it does not parse
        config.check_number("--discount", self.discount, 0)
