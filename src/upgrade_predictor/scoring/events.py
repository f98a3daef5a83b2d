"""Scoring today's free users of an event source with an events bundle, through the one batch path."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

from ..errors import InputError
from ..forecast.engine import LocalEvents
from ..forecast.export import default_as_of, parse_day, write_chunks
from .batch import BatchResult, score_file
from .scorer import Scorer

ID = "user_id"
CARRIED = ("tenure_days",)  # shown beside each user in the ranked list


def event_windows(scorer: Scorer) -> tuple[int, ...]:
    """The feature windows the bundle was trained with; a bundle of a table run is refused."""
    events = scorer.bundle.metadata.events
    if events is None:
        raise InputError(
            "this bundle was trained on one table, not on event tables; score a table with it "
            "(upgrade-predictor score MODEL DATA), or train with --events"
        )
    return tuple(int(w) for w in events.windows)


@contextlib.contextmanager
def today_features(
    scorer: Scorer, events: Path, as_of: str | None = None, mapping: Path | None = None
) -> Iterator[tuple[Path, date]]:
    """A temporary Parquet file of the features of every user still free on `as_of` (default: the day
    after the last event), from the events dated before it, and that day: scored and checked for drift
    exactly like a table of users. Built a chunk of users at a time, so memory stays bounded."""
    windows = event_windows(scorer)
    day = parse_day(as_of)
    with tempfile.TemporaryDirectory(prefix="upgrade_predictor_") as tmp:
        path = Path(tmp) / "features.parquet"
        with LocalEvents(events, mapping) as engine:
            day = day or default_as_of(engine.data_end)
            if write_chunks(engine.features_on_chunks(day, windows), path, drop=("cutoff",)) == 0:
                raise InputError(f"{events}: no user is registered and still free on {day}")
        yield path, day


def score_events(
    scorer: Scorer,
    events: Path,
    out: Path,
    *,
    as_of: str | None = None,
    mapping: Path | None = None,
    rejects: Path | None = None,
    top: int | None = None,
    budget: float | None = None,
    offer_cost: float | None = None,
    explain: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[BatchResult, date]:
    """Score every user still free on `as_of`; the ranked list and its rejects are written exactly as for
    a table, with user_id and tenure beside each user."""
    with today_features(scorer, events, as_of, mapping) as (path, day):
        result = score_file(
            scorer,
            path,
            out,
            rejects=rejects,
            top=top,
            budget=budget,
            offer_cost=offer_cost,
            explain=explain,
            id_column=ID,
            carry=CARRIED,
            progress=progress,
        )
    return result, day
