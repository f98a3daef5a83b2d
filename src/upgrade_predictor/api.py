"""The Python API: the same code paths the command line calls, for notebooks and scripts."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .reporting.report import build_report
from .training.protocol import TrainConfig
from .training.train import run_training

__all__ = ["TrainConfig", "build_report", "train"]


def train(cfg: TrainConfig, console: Console | None = None) -> Path:
    """Train, build the report into the run folder (unless cfg.report is off), and publish it."""
    finish = (lambda folder, name: build_report(folder, console, name=name)) if cfg.report else None
    return run_training(cfg, console, finish)
