"""The feature table of today's free users, for analysts who model it themselves."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import InputError
from ..files import write_atomic
from ..sources.events import EventSource
from .features import features_as_of


def parse_day(text: str | None, flag: str = "--as-of") -> date | None:
    """A YYYY-MM-DD date, or None; anything else is an InputError naming the option."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{flag} {text!r}: give a date as YYYY-MM-DD") from None


def default_as_of(source: EventSource) -> date:
    """Scoring day by default: the day after the last event, when every event so far is known."""
    return source.data_end + timedelta(days=1)


def write_features(events: Path, out: Path, as_of: str | None, mapping: Path | None, force: bool) -> Path:
    """Features on `as_of` of every user registered by then and still free, as CSV or Parquet."""
    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise InputError(f"{out}: give a file name ending in .csv or .parquet")
    if out.exists() and (out.is_dir() or not force):
        raise InputError(f"{out} already exists; choose another --out or pass --force to replace it")
    day = parse_day(as_of)
    with EventSource(events, mapping) as source:
        table = pa.Table.from_pandas(
            features_as_of(source, day or default_as_of(source)), preserve_index=False
        )
    if out.suffix.lower() == ".csv":
        write_atomic(out, lambda f: pacsv.write_csv(table, f))
    else:
        write_atomic(out, lambda f: pq.write_table(table, f))
    return out
