"""run.json of a table run: the options it was trained with, the data file's fingerprint, its time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import get_args

from .. import config
from ..runs.info import RunInfo


@dataclass(frozen=True)
class TableRunInfo(RunInfo):
    KIND = "table"
    RETRAIN = "upgrade-predictor train"
    # The order table runs have always written; events, mapping and horizon are unused by a table run.
    LAYOUT = (
        "data",
        "target",
        "budget",
        "seed",
        "id_column",
        "positive",
        "numeric",
        "categorical",
        "exclude",
        "test_size",
        "group_duplicates",
        "group_column",
        "families",
        "strategies",
        "objective",
        "threshold",
        "offer_cost",
        "upgrade_value",
        "jobs",
        "report",
        "dask",
        "events",
        "mapping",
        "horizon",
        "sign_key",
        "time_limit",
        "threshold_objective",
        "assumed_lift",
        "discount",
        "fingerprint",
        "started",
        "duration_s",
    )

    data: str | None = None
    target: str = config.TARGET
    id_column: str | None = None
    positive: str | None = None
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    test_size: float = config.TEST_SIZE
    group_duplicates: bool = False
    group_column: str | None = None
    families: list[str] = field(default_factory=lambda: list(get_args(config.FamilyName)))
    strategies: list[str] = field(default_factory=lambda: list(config.STRATEGIES))
    objective: str = config.OBJECTIVE
    threshold: str = config.THRESHOLD
    jobs: int = config.JOBS
    report: bool = True
    dask: str | None = None
    events: str | None = None
    mapping: str | None = None
    horizon: int = config.HORIZON
    sign_key: str | None = None
    threshold_objective: str = "f1"
    assumed_lift: str | None = None  # the offer's stated effect ('20%', '1.5pp'); None: nothing priced
    discount: float = 0.0
    fingerprint: str | None = None
    duration_s: float | None = None
