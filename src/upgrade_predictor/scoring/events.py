"""Scoring today's free users of an event source with an events bundle, through the one batch path."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

from ..errors import InputError
from ..files import write_json_atomic
from ..forecast.engine import LocalEvents
from ..forecast.export import default_as_of, parse_day, write_chunks
from ..forecast.features import feature_names
from ..sources.event_audit import EventAudit
from ..sources.event_mapping import where_of
from .batch import BatchResult, score_file
from .scorer import Scorer

ID = "user_id"
CARRIED = ("tenure_days",)  # shown beside each user in the ranked list
# Called with the audit as soon as the tables are read (before the features): commands show it there.
OnAudit = Callable[[EventAudit], None]


def write_audit(audit: EventAudit, path: Path | None) -> None:
    """The audit as JSON, written once the command's work has succeeded (nothing is left by a failure)."""
    if path is not None:
        write_json_atomic(path, audit.to_dict())


def check_coverage(scorer: Scorer, engine: LocalEvents, windows: tuple[int, ...]) -> None:
    """Refuse tables that lack what the model reads: an activity or attribute the mapping does not name."""
    have = set(feature_names(engine.source, windows))
    missing = [n for n in scorer.schema.names if n not in have and n not in CARRIED]
    if not missing:
        return
    acts = sorted({n[: -len("_events")] for n in missing if n.endswith("_events") and "_first_day" not in n})
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3:,} more" if len(missing) > 3 else "")
    mapping = f"the mapping of {engine.folder}"
    if acts:
        names = ", ".join(f"'{a}'" for a in acts)
        raise InputError(
            f"{mapping} has no activity {names}, which the model was trained with (features {shown}); "
            f"map an [[activity]] named {names.split(', ')[0]}, or score with a model trained on these tables"
        )
    users = where_of(engine.mapping.users)
    raise InputError(
        f"{users}: the model reads {shown}, which {mapping} does not provide; add the attributes to [users] "
        "or score with a model trained on these tables"
    )


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
    scorer: Scorer,
    events: Path,
    as_of: str | None = None,
    mapping: Path | None = None,
    on_audit: OnAudit | None = None,
    audit: Path | None = None,
) -> Iterator[tuple[Path, date]]:
    """A temporary Parquet file of the features of every user still free on `as_of` (default: the day
    after the last event), from the events dated before it, and that day: scored and checked for drift
    exactly like a table of users. Built a chunk of users at a time, so memory stays bounded. A user who
    registers on `as_of` itself is among them, with tenure 0 and no activity (that day's events are not
    before the cutoff). The audit goes to `on_audit` and, as JSON, to `audit`."""
    windows = event_windows(scorer)
    day = parse_day(as_of)
    with tempfile.TemporaryDirectory(prefix="upgrade_predictor_") as tmp:
        path = Path(tmp) / "features.parquet"
        with LocalEvents(events, mapping) as engine:
            if on_audit is not None:
                on_audit(engine.audit)
            check_coverage(scorer, engine, windows)
            day = day or default_as_of(engine.data_end)
            if write_chunks(engine.features_on_chunks(day, windows), path, drop=("cutoff",)) == 0:
                raise InputError(f"{events}: no user is registered and still free on {day}")
            found = engine.audit
        yield path, day
        write_audit(found, audit)


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
    on_audit: OnAudit | None = None,
    audit: Path | None = None,
) -> tuple[BatchResult, date]:
    """Score every user still free on `as_of`; the ranked list and its rejects are written exactly as for
    a table, with user_id and tenure beside each user."""
    with today_features(scorer, events, as_of, mapping, on_audit, audit) as (path, day):
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


def export_features(
    events: Path,
    out: Path,
    as_of: str | None,
    mapping: Path | None,
    force: bool,
    on_audit: OnAudit | None = None,
    audit: Path | None = None,
) -> Path:
    """The features on `as_of` of every user registered by then and still free, as CSV or Parquet, written
    a chunk of users at a time (memory stays bounded) and published whole; the audit is handed on as soon
    as it is known and written to `audit` once the features are."""
    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise InputError(f"{out}: give a file name ending in .csv or .parquet")
    if out.exists() and (out.is_dir() or not force):
        raise InputError(f"{out} already exists; choose another --out or pass --force to replace it")
    day = parse_day(as_of)
    with LocalEvents(events, mapping) as engine:
        if on_audit is not None:
            on_audit(engine.audit)
        chunks = engine.features_on_chunks(day or default_as_of(engine.data_end))
        with tempfile.TemporaryDirectory(prefix=".upgrade_predictor_", dir=out.parent) as tmp:
            part = Path(tmp) / out.name
            write_chunks(chunks, part, csv=out.suffix.lower() == ".csv")
            os.replace(part, out)
        write_audit(engine.audit, audit)
    return out
