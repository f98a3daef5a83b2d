"""What a run of any kind gives its tracking record: parameters, metrics, chosen model and times.

Each kind reads its own folder into a `Tracked`; the tracking module turns any of them into one
MLflow run, so the metric names below are shared by every kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, Protocol

from ..evaluation import Scores

_SCORE_NAMES = [f.name for f in fields(Scores) if f.name != "threshold"]


class ChosenModel(Protocol):
    """The chosen model as a run's metrics name it."""

    @property
    def key(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def strategy(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def params(self) -> dict[str, Any]: ...


@dataclass
class Tracked:
    """One run as a tracking record sees it (values unformatted; None or [] means not set)."""

    kind: str
    params: dict[str, Any]
    metrics: dict[str, float]
    chosen: ChosenModel
    calibrated: str  # "true"/"false" for a table run, the recalibration of an events run
    test_pr_auc: float
    started: str | None  # run.json's start time (local time, ISO)
    seconds: float | None  # how long the run took, when known


def scores(prefix: str, s: Scores) -> dict[str, float]:
    """Each score as `<prefix><metric>`."""
    return {f"{prefix}{name}": float(getattr(s, name)) for name in _SCORE_NAMES}


def prefixed(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in values.items()}


def slug(name: str) -> str:
    """A baseline's name as part of a metric name: 'aggregated-table model' -> aggregated_table_model."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
