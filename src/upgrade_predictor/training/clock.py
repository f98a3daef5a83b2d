"""The wall clock of a run: seconds per stage, and the shares of a --time-limit left to each stage."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import config


@dataclass
class RunClock:
    """The wall clock of one run: the seconds each stage took and, under a time limit, what is left.

    `listen`, when given, hears each stage's name as it starts (a benchmark attributes memory by it)."""

    limit: float | None = None  # seconds for the whole run
    listen: Callable[[str], None] | None = None
    started: float = field(default_factory=time.perf_counter)
    stages: dict[str, float] = field(default_factory=dict)  # stage -> seconds, in the order run
    stage: str | None = None
    since: float = 0.0

    def mark(self, stage: str | None) -> None:
        """End the current stage and start `stage` (None: just end it); a stage run twice adds up."""
        now = time.perf_counter()
        if self.stage is not None:
            self.stages[self.stage] = self.stages.get(self.stage, 0.0) + now - self.since
        self.stage, self.since = stage, now
        if stage is not None and self.listen is not None:
            self.listen(stage)

    def deadline(self, stage: str) -> float | None:
        """When `stage` ("comparison" or "tuning") should end under the time limit (None without one)."""
        if self.limit is None:
            return None
        return self.started + config.TIME_SHARES[stage] * self.limit

    def left(self, stage: str) -> float | None:
        """Seconds until `stage`'s deadline (negative once passed; None without a limit)."""
        end = self.deadline(stage)
        return None if end is None else end - time.perf_counter()
