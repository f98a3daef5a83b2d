"""The options of a table run: the data file, its columns, how the hold-out is split, and the
offer's stated effect that prices its policies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import config
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
        config.check_number("--test-size", self.test_size)
        if not 0.05 <= self.test_size <= 0.5:
            raise InputError(f"--test-size {self.test_size}: choose a share between 0.05 and 0.5")
        super().check_kind()
