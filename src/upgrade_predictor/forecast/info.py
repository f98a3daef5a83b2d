"""run.json of an events run: the tables it read, the horizon, the data's end, the stage timings."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import config
from ..runs.info import RunInfo

KIND = "events"


@dataclass(frozen=True)
class EventRunInfo(RunInfo):
    """run.json of an events run: the tables it read, the horizon, the data's end, the stage timings."""

    KIND = KIND
    RETRAIN = "upgrade-predictor train --events"
    LAYOUT = (
        "events",
        "mapping",
        "budget",
        "seed",
        "horizon",
        "time_limit",
        "offer_cost",
        "upgrade_value",
        "data_end",
        "started",
        "timings",
        "kind",
    )

    events: str | None = None
    mapping: str | None = None
    horizon: int = config.HORIZON
    data_end: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds, in the order run
