"""The Python API: the same code paths the command line calls, for notebooks and scripts."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .forecast.runs import is_forecast_run
from .forecast.train import run_forecast
from .reporting.forecast import build_forecast_report
from .reporting.report import build_report
from .training.protocol import TrainConfig
from .training.train import run_training

__all__ = ["TrainConfig", "report", "train"]


def train(cfg: TrainConfig, console: Console | None = None) -> Path:
    """Train (on a table, or on event tables with cfg.events), write the report into the run folder
    (unless cfg.report is off), and publish the folder whole; returns its path."""
    finish = (lambda folder, name: report(folder, console, name=name)) if cfg.report else None
    if cfg.events is not None:
        return run_forecast(cfg, console, finish)
    return run_training(cfg, console, finish)


def report(run_dir: Path, console: Console | None = None, name: str | None = None) -> Path:
    """(Re)build run_dir/report.html for a table run or an events run."""
    if is_forecast_run(Path(run_dir)):
        return build_forecast_report(Path(run_dir), console, name=name)
    return build_report(Path(run_dir), console, name=name)
