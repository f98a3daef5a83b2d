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
from .drivers import Drivers, drivers_section
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


def build_insights(run: Run) -> Insights:
    """Compute every section; timings (seconds) land in run.timings."""

    def timed(name: str, build: Callable[[Run], T]) -> T:
        t0 = time.perf_counter()
        out = build(run)
        run.timings[name] = time.perf_counter() - t0
        return out

    data = timed("data", data_section)
    comparison = timed("comparison", comparison_section)
    imbalance = timed("imbalance", imbalance_section)
    chosen = timed("chosen", chosen_section)
    drivers = timed("drivers", drivers_section)
    segments = timed("segments", segments_section)
    targeting = timed("targeting", targeting_section)
    caveats = caveats_section(run, drivers)
    recs = recommendations(run, targeting, drivers, segments, imbalance, caveats)
    return Insights(data, comparison, imbalance, chosen, drivers, segments, targeting, caveats, recs)
