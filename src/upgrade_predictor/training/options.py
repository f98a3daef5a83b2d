"""The options of a table run: the data file, its columns, and how the hold-out is split."""

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

    def check_kind(self) -> None:
        if self.group_column and self.group_duplicates:
            raise InputError(
                f"--group {self.group_column} and --group-duplicates: choose one way to keep rows together"
            )
        config.check_number("--test-size", self.test_size)
        if not 0.05 <= self.test_size <= 0.5:
            raise InputError(f"--test-size {self.test_size}: choose a share between 0.05 and 0.5")
        super().check_kind()
