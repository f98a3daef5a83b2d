"""The options of an events run: the folder of dated tables, their mapping, and the horizon."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import config
from ..errors import InputError
from ..runs.options import RunOptions


@dataclass
class EventOptions(RunOptions):
    events: Path | None = None
    mapping: Path | None = None  # TOML mapping of the tables; the 365 layout is built in
    horizon: int = config.HORIZON
    # Design rows the model trains on (users sampled whole): None = the budget's, 0 = every row.
    design_rows: int | None = None

    def check_kind(self) -> None:
        if not 1 <= self.horizon <= 365:
            raise InputError(f"--horizon {self.horizon}: choose a number of days from 1 to 365")
        if self.design_rows is not None and (isinstance(self.design_rows, bool) or self.design_rows < 0):
            raise InputError(f"--design-rows {self.design_rows}: give a number of rows, or 'all'")
        super().check_kind()
