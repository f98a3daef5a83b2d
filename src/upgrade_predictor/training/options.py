"""The options of a table run: the data file, its columns, how the hold-out is split, and the
offer's stated effect that prices its policies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import config
from ..economics import Economics, Lift
from ..errors import InputError
from ..runs.options import RunOptions


@dataclass
class TableOptions(RunOptions):
    data: Path | None = None
    target: str = config.TARGET
    id_column: str | None = None
    positive: str | None = None
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    test_size: float = config.TEST_SIZE
    group_duplicates: bool = False
    group_column: str | None = None  # rows sharing its value stay on one side of every split
    # The offer's assumed effect ('20%' of each user's probability, or '1.5pp'): None prices no policy.
    assumed_lift: str | None = None
    discount: float = 0.0  # revenue given up when an upgrader redeems the offer

    def lift(self) -> Lift | None:
        return None if self.assumed_lift is None else Lift.parse(self.assumed_lift)

    def economics(self) -> Economics:
        return Economics(float(self.offer_cost), float(self.upgrade_value), float(self.discount))

    def check_threshold_rule(self) -> None:
        """--threshold profit needs a lift: refused before any work (a table run's own check; an
        events run prices its policy apart from --threshold)."""
        if self.threshold == "profit" and self.lift() is None:
            raise InputError(
                "--threshold profit prices each offer by what it causes, which needs the offer's effect: "
                "give --assumed-lift (e.g. 20% or 1.5pp), or use --threshold f1"
            )

    def check_kind(self) -> None:
        if self.group_column and self.group_duplicates:
            raise InputError(
                f"--group {self.group_column} and --group-duplicates: choose one way to keep rows together"
            )
        self.lift()  # refused here, before any work, when it does not parse
        config.check_number("--discount", self.discount, 0)
        config.check_number("--test-size", self.test_size)
        if not 0.05 <= self.test_size <= 0.5:
            raise InputError(f"--test-size {self.test_size}: choose a share between 0.05 and 0.5")
        super().check_kind()

    def check(self) -> config.Budget:
        budget = super().check()
        self.economics()  # after the costs' own checks: a discount of at least the upgrade value is refused
        return budget
