"""The run kinds: each kind's options, run, results, report and tracking record, by name.

A kind lives in its own package (`training` for table runs, `forecast` for events runs); this
registry names, for each, the functions that make up its interface. They are imported on first
use, so the command line loads only the stage a command runs. Adding a kind is adding one entry.
A run folder says its kind in run.json; `kind_of` reads it back.

A new kind is a package that provides: its options (a `runs.options.RunOptions` subclass), its
run.json record (a `runs.info.RunInfo` subclass naming its KIND and LAYOUT), a run function that
writes through `runs.folder.published` (staged, atomic, signed, published whole), a reader of its
results, a report builder, and a `tracked(folder)` giving a `runs.tracked.Tracked`; then one
entry in KINDS. `TrainConfig` is the flat view the `train` command and `up.train` take; a kind
with its own command need not join it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import InputError
from .forecast.info import EventRunInfo
from .forecast.options import EventOptions
from .runs.info import RunInfo, read_kind
from .runs.options import RunOptions
from .training.info import TableRunInfo
from .training.options import TableOptions

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from .runs.tracked import Tracked


class Results(Protocol):
    """What every kind's results reader gives: the typed metrics and the leaderboard."""

    @property
    def metrics(self) -> Any: ...
    @property
    def leaderboard(self) -> pd.DataFrame: ...


@dataclass(frozen=True)
class Kind:
    """One run kind: its name in run.json, its options and run.json records, and its functions, each
    referenced as "module:function":

    - run(options, console, finish) -> Path: make the run and publish its folder;
    - results(folder): its typed run.json and metrics, and its leaderboard (`.metrics`, `.leaderboard`);
    - report(folder, console, name=...) -> Path: (re)build its report.html;
    - tracked(folder) -> Tracked: what its tracking (MLflow) record holds."""

    name: str
    options: type[RunOptions]
    info: type[RunInfo]  # its run.json record
    run_ref: str
    results_ref: str
    report_ref: str
    tracked_ref: str

    def run(
        self, options: RunOptions, console: Console | None, finish: Callable[[Path, str], object] | None
    ) -> Path:
        return _load(self.run_ref)(options, console, finish)

    def results(self, folder: Path) -> Results:
        return _load(self.results_ref)(folder)

    def report(self, folder: Path, console: Console | None = None, name: str | None = None) -> Path:
        return _load(self.report_ref)(folder, console, name=name)

    def tracked(self, folder: Path) -> Tracked:
        return _load(self.tracked_ref)(folder)


def _load(ref: str) -> Any:
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


KINDS: dict[str, Kind] = {
    "table": Kind(
        "table",
        TableOptions,
        TableRunInfo,
        "upgrade_predictor.training.train:run_training",
        "upgrade_predictor.training.runs:read_results",
        "upgrade_predictor.reporting.report:build_report",
        "upgrade_predictor.training.tracked:tracked",
    ),
    "events": Kind(
        "events",
        EventOptions,
        EventRunInfo,
        "upgrade_predictor.forecast.train:run_forecast",
        "upgrade_predictor.forecast.runs:load_forecast_run",
        "upgrade_predictor.reporting.forecast:build_forecast_report",
        "upgrade_predictor.forecast.tracked:tracked",
    ),
}


def kind_of(folder: Path | str) -> Kind:
    """The kind of the run in `folder`, from its run.json (a folder without one reads as a table run)."""
    name = read_kind(Path(folder))
    if name not in KINDS:
        raise InputError(
            f"{Path(folder) / 'run.json'}: a run of kind {name!r}, which this version does not know "
            f"(it knows {', '.join(KINDS)}); upgrade upgrade-predictor to read it"
        )
    return KINDS[name]


@dataclass
class TrainConfig(TableOptions, EventOptions):
    """Every option of every kind, flat, as the command line and `up.train` take them: `events`
    makes an events run, otherwise it is a table run."""

    @property
    def kind(self) -> Kind:
        return KINDS["events" if self.events is not None else "table"]
