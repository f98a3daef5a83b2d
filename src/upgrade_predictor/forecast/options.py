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

    def check_kind(self) -> None:
        if not 1 <= self.horizon <= 365:
            raise InputError(f"--horizon {self.horizon}: choose a number of days from 1 to 365")
        super().check_kind()
