"""The options of an events run: the folder of dated tables, their mapping, and the horizon."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import config
from ..economics import Economics, Lift
from ..errors import InputError
from ..runs.options import RunOptions


@dataclass
class EventOptions(RunOptions):
    events: Path | None = None
    mapping: Path | None = None  # TOML mapping of the tables; the 365 layout is built in
    horizon: int = config.HORIZON
    # Design rows the model trains on (users sampled whole): None = the budget's, 0 = every row.
    design_rows: int | None = None
    # The offer's assumed effect ('20%' of each user's probability, or '1.5pp'): None prices no policy.
    assumed_lift: str | None = None
    discount: float = 0.0  # revenue given up when an upgrader redeems the offer

    def lift(self) -> Lift | None:
        return None if self.assumed_lift is None else Lift.parse(self.assumed_lift)

    def economics(self) -> Economics:
        return Economics(float(self.offer_cost), float(self.upgrade_value), float(self.discount))

    def check_kind(self) -> None:
        if not 1 <= self.horizon <= 365:
            raise InputError(f"--horizon {self.horizon}: choose a number of days from 1 to 365")
        if self.design_rows is not None and (isinstance(self.design_rows, bool) or self.design_rows < 0):
            raise InputError(f"--design-rows {self.design_rows}: give a number of rows, or 'all'")
        self.lift()  # refused here, before any work, when it does not parse
        config.check_number("--discount", self.discount, 0)
        super().check_kind()

    def check(self) -> config.Budget:
        budget = super().check()
        self.economics()  # after the costs' own checks: a discount of at least the upgrade value is refused
        return budget
