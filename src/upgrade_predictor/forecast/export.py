"""The feature table of today's free users, for analysts who model it themselves."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import InputError


def parse_day(text: str | None, flag: str = "--as-of") -> date | None:
    """A YYYY-MM-DD date, or None; anything else is an InputError naming the option."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{flag} {text!r}: give a date as YYYY-MM-DD") from None


def default_as_of(data_end: date) -> date:
    """Scoring day by default: the day after the last event, when every event so far is known."""
    return data_end + timedelta(days=1)


def write_chunks(
    chunks: Iterable[pd.DataFrame], path: Path, drop: tuple[str, ...] = (), csv: bool = False
) -> int:
    """Write frames of one layout as they come to one Parquet (or CSV) file; the rows written.

    The file is written in place: callers write into a temporary folder or through `write_atomic`."""
    rows, writer = 0, None
    try:
        for chunk in chunks:
            table = pa.Table.from_pandas(chunk.drop(columns=list(drop)), preserve_index=False)
            if writer is None:
                writer = pacsv.CSVWriter(path, table.schema) if csv else pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows
