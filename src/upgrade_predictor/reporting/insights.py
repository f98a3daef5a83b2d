"""What a training run says, computed from its saved folder: data, models, drivers, segments,
targeting, caveats and recommendations. Every number the report shows comes from here.

Each section has its own module, builder and typed result; a new section adds a field here, a step
in `build_insights`, an entry in report.SECTIONS and a block in the template."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..training.runs import Run
from .campaign import Targeting, targeting_section
from .comparison import (
    ChosenSection,
    Comparison,
    Imbalance,
    chosen_section,
    comparison_section,
    imbalance_section,
)
from .data_section import DataSection, data_section
from .drivers import Drivers, Step, drivers_section
from .recommend import Caveats, Recommendation, caveats_section, recommendations
from .segments import Segments, segments_section

T = TypeVar("T")


@dataclass(frozen=True)
class Insights:
    data: DataSection
    comparison: Comparison
    imbalance: Imbalance
    chosen: ChosenSection
    drivers: Drivers
    segments: Segments | None  # None: the data has no categorical column
    targeting: Targeting
    caveats: Caveats | None  # None: the audit flagged no leak
    recommendations: list[Recommendation]


# The steps build_insights announces, in order (the drivers announce theirs: drivers.DRIVER_STEPS).
STEPS = ["data", "model comparison", "imbalance strategies", "chosen model", "segments", "targeting"]


def build_insights(run: Run, step: Step | None = None) -> Insights:
    """Compute every section; `step(name)` is told as each starts; timings (seconds) land in run.timings."""
    announce = step or (lambda name: None)

    def timed(name: str, label: str, build: Callable[[Run], T]) -> T:
        announce(label)
        t0 = time.perf_counter()
        out = build(run)
        run.timings[name] = time.perf_counter() - t0
        return out

    data = timed("data", "data", data_section)
    comparison = timed("comparison", "model comparison", comparison_section)
    imbalance = timed("imbalance", "imbalance strategies", imbalance_section)
    chosen = timed("chosen", "chosen model", chosen_section)
    t0 = time.perf_counter()
    drivers = drivers_section(run, announce)
    run.timings["drivers"] = time.perf_counter() - t0
    segments = timed("segments", "segments", segments_section)
    targeting = timed("targeting", "targeting", targeting_section)
    caveats = caveats_section(run, drivers)
    recs = recommendations(run, targeting, drivers, segments, imbalance, caveats)
    return Insights(data, comparison, imbalance, chosen, drivers, segments, targeting, caveats, recs)
