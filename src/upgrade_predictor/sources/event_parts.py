"""The event tables cut into partitions by user id, for a cluster's workers (`forecast.cluster`).

Each table is read by Dask (`read_part_table`), its rows numbered by the partition of their user
(`prepare_part`: a hash of the id as staging compares it, so a user's rows of every table meet in one
partition), and each partition is staged as one `EventSource` (`open_part`).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from upgrade_predictor.sources.engine_errors import engine_errors
from upgrade_predictor.sources.event_ids import id_text
from upgrade_predictor.sources.event_mapping import (
    ActivityTable,
    Attribute,
    ConversionTable,
    EventMapping,
    UsersTable,
    where_of,
)
from upgrade_predictor.sources.event_staging import column_types, scan_sql, table_files
from upgrade_predictor.sources.events import EventSource

# A cluster reads each table in blocks of this size, and adds these columns (named apart from a table's).
CSV_BLOCKSIZE = "64MiB"
PART, DIGEST = "__part", "__rest_digest"


def partition_of(ids: pd.Series, partitions: int) -> np.ndarray:
    """The partition (0 .. partitions-1) of each row's user, from a hash of its `id_text`; rows without an
    id (left out by staging) go to partition 0."""
    text = id_text(ids)
    valid = pc.is_valid(text).to_numpy(zero_copy_only=False)
    values = pc.fill_null(text, "").to_numpy(zero_copy_only=False).astype(object)
    hashed = pd.util.hash_array(values, categorize=False) % np.uint64(partitions)
    return np.where(valid, hashed, 0).astype(np.int64)


@dataclass(frozen=True)
class PartTable:
    """One mapped table as a cluster reads it into user partitions."""

    where: str  # the table as messages name it
    files: tuple[str, ...]
    fmt: str
    id: str
    columns: tuple[str, ...]  # the columns the mapping needs
    shared_key: tuple[str, ...]  # a key without the id: to be checked not to be shared by different users


def part_table(folder: Path, t: UsersTable | ConversionTable | ActivityTable) -> PartTable:
    """A mapped table's files and needed columns, checked as the embedded engine checks them."""
    key: tuple[str, ...] = ()
    where = where_of(t)
    if isinstance(t, UsersTable):
        needed = [a.column for a in t.attributes]
    elif isinstance(t, ConversionTable):
        needed, key = list(t.key), t.key
    else:
        key = t.key
        needed = [*t.measures, *t.key, *([t.item] if t.item else [])]
    files, fmt = table_files(folder, t.file, where)
    columns = list(dict.fromkeys([t.id, t.time, *needed]))
    with duckdb.connect(":memory:") as con, engine_errors(where):  # reads the header or footer only
        column_types(con, scan_sql(files, fmt), columns, where, files)
    return PartTable(where, tuple(map(str, files)), fmt, t.id, tuple(columns), () if t.id in key else key)


def read_part_table(t: PartTable) -> Any:
    """Every column of a table as a Dask dataframe: Parquet in its own types, CSV cells as text."""
    import dask.dataframe as dd

    if t.fmt == "parquet":
        return dd.read_parquet(list(t.files), dtype_backend="pyarrow", index=False)
    gz = any(f.lower().endswith(".gz") for f in t.files)  # a gzipped file cannot be split
    return dd.read_csv(
        list(t.files),
        dtype=str,
        keep_default_na=False,
        blocksize=None if gz else CSV_BLOCKSIZE,
        compression="gzip" if gz else None,
    )


def prepare_part(df: pd.DataFrame, t: PartTable, rest: tuple[str, ...], partitions: int) -> pd.DataFrame:
    """The needed columns, a digest of the `rest` (exact duplicates compare every column, so the digest
    stands for the columns left behind) and the partition number (PART) of each row's user."""
    out = df[list(t.columns)]
    if t.fmt == "csv":
        out = out.mask(out == "")  # staging reads an empty CSV cell as missing
    out = out.copy()
    if rest:
        out[DIGEST] = pd.util.hash_pandas_object(df[list(rest)], index=False).to_numpy()
    out[PART] = partition_of(df[t.id], partitions)
    return out


def key_owners(df: pd.DataFrame, t: PartTable) -> pd.DataFrame:
    """Rows with an id: a hash of their shared_key and of their user (a key of two users has two owners)."""
    key = df[list(t.shared_key)]
    if t.fmt == "csv":
        key = key.mask(key == "")
    ids = id_text(df[t.id])
    owner = pd.util.hash_array(pc.fill_null(ids, "").to_numpy(zero_copy_only=False).astype(object))
    valid = pc.is_valid(ids).to_numpy(zero_copy_only=False)
    keys = pd.util.hash_pandas_object(key, index=False).to_numpy()
    return pd.DataFrame({"key": keys[valid], "owner": owner[valid]})


def part_mapping(m: EventMapping, kinds: tuple[str, ...] | None = None) -> EventMapping:
    """The mapping of one partition's files (t0.parquet: users, t1: conversions, then the activities), with
    the attributes' `kinds` declared when given (as the whole users table infers them)."""
    attrs = m.users.attributes if kinds is None else tuple(Attribute(a.column, k) for a, k in
                                                              zip(m.users.attributes, kinds))  # fmt: skip
    users = replace(m.users, file="t0.parquet", attributes=attrs)
    acts = tuple(replace(a, file=f"t{i + 2}.parquet") for i, a in enumerate(m.activities))
    return EventMapping(users, replace(m.conversions, file="t1.parquet"), acts)


@contextlib.contextmanager
def open_part(
    frames: tuple[pd.DataFrame, ...],
    schemas: tuple[pa.Schema, ...],
    mapping: EventMapping,
    data_end: date | None,
) -> Iterator[EventSource]:
    """One partition of an extract (its rows of every table, in mapping order; `mapping` a `part_mapping`)
    as an EventSource: written as Parquet into a temp folder of this machine, staged, the folder removed."""
    with tempfile.TemporaryDirectory(prefix="upgrade_predictor_part_") as tmp:
        for i, (frame, schema) in enumerate(zip(frames, schemas)):
            table = pa.Table.from_pandas(frame.reset_index(drop=True), schema=schema, preserve_index=False)
            pq.write_table(table, Path(tmp) / f"t{i}.parquet")
        with EventSource(Path(tmp), mapping, data_end=data_end, part=True) as source:
            yield source
