"""Dated event tables (users, conversions, activity) read into DuckDB, cleaned and audited.

The tables are named by a mapping (`event_mapping`); each is staged by `event_staging` and its cleaning
counted by `event_audit`. On a cluster (`forecast.cluster`) the tables are split into partitions of users
by the functions at the end of this module, and each partition is one `EventSource` (`open_part`).

Reading: CSV cells are read as text and cast with TRY_CAST so a bad cell is counted, not fatal; only an
empty cell is missing (the country code "NA" is Namibia). Dates must be ISO (YYYY-MM-DD); a timestamp
with a time of day is truncated to its calendar day (`as_dates` convention: every date here is a day;
a timestamp with a time zone is taken on its UTC day). Ids are compared as trimmed text, or as numbers
when both the users table and the other table store them as integers.

Cleaning, every case counted in `EventAudit` and never dropped silently; each source row is counted
under the first rule that applies:

* exact duplicate rows (all columns equal): one copy kept;
* empty id: left out;
* empty or unparseable date: left out (for the users table, the user is left out);
* rows sharing a declared key (or a users-table id): the earliest-dated row kept;
* ids not in the users table (events of nobody): left out;
* events dated before the user's registration: KEPT with their own date. They are real activity known
  before any later cutoff; moving them to the registration day would invent a date.
* measure cells that are not numbers: the row is kept, the cell is missing (counted as `bad_values`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from upgrade_predictor.errors import InputError
from upgrade_predictor.sources.event_audit import HANDLING, EventAudit, TableAudit, event_audit, table_audit
from upgrade_predictor.sources.event_mapping import (
    ActivityTable,
    Attribute,
    ConversionTable,
    EventMapping,
    UsersTable,
    resolve_mapping,
)
from upgrade_predictor.sources.event_staging import (
    KEPT,
    NUMERIC_TYPES,
    Value,
    column_types,
    ident,
    is_numeric,
    literal,
    number_sql,
    scan_sql,
    stage,
    table_files,
    text_sql,
)

if TYPE_CHECKING:
    from typing_extensions import Self


def _load(
    con: duckdb.DuckDBPyConnection, folder: Path, m: EventMapping, part: bool
) -> tuple[tuple[Attribute, ...], EventAudit]:
    """Create the tables and views (see `EventSource`); return the resolved attributes and the audit."""
    attrs, integer_ids, users = _load_users(con, folder, m.users, part)
    audits = [users, _load_conversions(con, folder, m.conversions, integer_ids)]
    audits += [_load_activity(con, folder, a, integer_ids) for a in m.activities]
    return attrs, event_audit(con, folder, m, audits, part)


def _scan(
    con: duckdb.DuckDBPyConnection, folder: Path, file: str, needed: list[str], where: str
) -> tuple[str, dict[str, str]]:
    """The SQL that scans one table's files, and its column types (the needed ones checked)."""
    scan = scan_sql(*table_files(folder, file, where))
    return scan, column_types(con, scan, needed, where)


def _load_users(
    con: duckdb.DuckDBPyConnection, folder: Path, u: UsersTable, part: bool
) -> tuple[tuple[Attribute, ...], bool, TableAudit]:
    """The users table as _users and the view users; its attributes typed, and whether ids are integers."""
    where = f"users table {u.file}"
    scan, types = _scan(con, folder, u.file, [u.id, u.time, *(a.column for a in u.attributes)], where)
    integer_ids = types[u.id].startswith(NUMERIC_TYPES)  # floats such as 258798.0 are whole ids
    attrs = tuple(
        Attribute(a.column, a.kind or ("numeric" if is_numeric(con, scan, a.column, types[a.column]) else
                                       "categorical"))
        for a in u.attributes
    )  # fmt: skip
    values = [
        Value(f"__a{i}", number_sql(a.column, types[a.column]), a.column)
        if a.kind == "numeric" else Value(f"__a{i}", text_sql(a.column), None)
        for i, a in enumerate(attrs)
    ]  # fmt: skip
    stage(con, "_stage", scan, types, u, (u.id,), values, integer_ids)
    audit = table_audit(con, "_stage", "users", u.file, HANDLING["users"])
    if audit.kept == 0 and not part:
        raise InputError(
            f"{where}: no user has both an id and a registration date; check the file and mapping"
        )
    cols = "".join(f", {v.alias} AS {ident(a.column)}" for v, a in zip(values, attrs))
    con.execute(f"""CREATE TABLE _users AS SELECT CAST(row_number() OVER (ORDER BY __key) AS INTEGER) AS uid,
                    __key AS _key, CAST(__key AS VARCHAR) AS user_id, day AS registered{cols}
                    FROM _stage WHERE __reason = {KEPT}""")  # fmt: skip
    public = "".join(f", {ident(a.column)}" for a in attrs)
    con.execute(f"CREATE VIEW users AS SELECT user_id, registered{public} FROM _users")
    con.execute("DROP TABLE _stage")
    return attrs, integer_ids, audit


def _load_conversions(
    con: duckdb.DuckDBPyConnection, folder: Path, c: ConversionTable, integer_ids: bool
) -> TableAudit:
    """The conversions table as _conv (the first conversion per user) and the view conversions."""
    scan, types = _scan(con, folder, c.file, [c.id, c.time, *c.key], f"conversions table {c.file}")
    stage(con, "_stage", scan, types, c, c.key, [], integer_ids)
    audit = table_audit(con, "_stage", "conversions", c.file, HANDLING["conversions"])
    con.execute("CREATE TABLE _conv AS SELECT uid, min(day) AS converted FROM _stage "
                f"WHERE __reason = {KEPT} GROUP BY uid")  # fmt: skip
    con.execute(
        "CREATE VIEW conversions AS SELECT u.user_id, c.converted FROM _conv c JOIN _users u USING (uid)"
    )
    con.execute("DROP TABLE _stage")
    return audit


def _load_activity(
    con: duckdb.DuckDBPyConnection, folder: Path, a: ActivityTable, integer_ids: bool
) -> TableAudit:
    """One activity table as _ev_<name> (kept and left-out rows) and the view act_<name> (kept rows)."""
    needed = [a.id, a.time, *a.measures, *a.key, *([a.item] if a.item else [])]
    scan, types = _scan(con, folder, a.file, needed, f"activity '{a.name}' table {a.file}")
    values = [Value(f"__m{i}", number_sql(col, types[col]), col) for i, col in enumerate(a.measures)]
    if a.item:
        # Items are only told apart, never shown: kept in their own type (cheaper than text).
        item = text_sql(a.item) if types[a.item] == "VARCHAR" else ident(a.item)
        values.append(Value("__item", item, None))
    events = ident("_ev_" + a.name)  # kept and left-out rows alike: one write; readers filter __reason
    stage(con, events, scan, types, a, a.key, values, integer_ids)
    audit = table_audit(con, events, a.name, a.file, HANDLING["activity"])
    public = "".join(f", e.__m{i} AS {ident(col)}" for i, col in enumerate(a.measures))
    public += ", CAST(e.__item AS VARCHAR) AS item" if a.item else ""
    con.execute(f"CREATE VIEW {ident('act_' + a.name)} AS SELECT u.user_id, e.day{public} "
                f"FROM {events} e JOIN _users u USING (uid) WHERE e.__reason = {KEPT}")  # fmt: skip
    return audit


def _dispose(con: duckdb.DuckDBPyConnection, folder: str) -> None:
    con.close()
    shutil.rmtree(folder, ignore_errors=True)


class EventSource:
    """The cleaned tables in an embedded in-memory DuckDB (spilling to a private temp folder beyond
    memory_limit; the folder is removed on close).

    Views: users(user_id VARCHAR, registered DATE, <attributes>), conversions(user_id, converted DATE: the
    first conversion, one row per converted user), act_<name>(user_id, day DATE, <measures DOUBLE>, item
    VARCHAR when the table names one). Internal tables keyed by an integer uid, for fast joins:
    _users(uid, _key, user_id, registered, <attributes>), _conv(uid, converted) and _ev_<name>(uid, day,
    __m0.. (measures in mapping order), __item, __reason: KEPT (0) or why the row is left out).

    `data_end` replaces the last day of these tables when they are one partition of a larger extract
    (features check their cutoffs against it); `part` marks such a partition: it may hold no user, and its
    audit has no notes (see event_audit). `mapping` may be a mapping already read (a partition's).
    """

    def __init__(
        self,
        folder: Path,
        mapping: Path | EventMapping | None = None,
        *,
        memory_limit: str = "3GB",
        data_end: date | None = None,
        part: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self.mapping = mapping if isinstance(mapping, EventMapping) else resolve_mapping(self.folder, mapping)
        self._tmp = tempfile.mkdtemp(prefix="upgrade_predictor_duckdb_")
        self.con = duckdb.connect(":memory:")  # spills to the temp folder beyond memory_limit
        # Runs on close(), or when the source is garbage-collected or the interpreter exits unclosed.
        self._finalizer = weakref.finalize(self, _dispose, self.con, self._tmp)
        try:
            self.con.execute("PRAGMA threads=2")
            self.con.execute("SET preserve_insertion_order = false")  # row order is never relied on
            self.con.execute("SET TimeZone = 'UTC'")  # a timestamp with a zone falls on its UTC day
            self.con.execute(f"SET memory_limit = {literal(memory_limit)}")
            self.con.execute(f"SET temp_directory = {literal(self._tmp)}")
            self.attributes, self.audit = _load(self.con, self.folder, self.mapping, part)
        except BaseException:
            self.close()
            raise
        self.data_end: date = data_end or self.audit.data_end

    def users_frame(self) -> pd.DataFrame:
        """user_id, registered, first_upgrade (NaT if none), then the attributes; one row per user."""
        attrs = "".join(f", u.{ident(a.column)}" for a in self.attributes)
        table = self.con.sql(
            "SELECT u.user_id, u.registered, c.converted AS first_upgrade" + attrs
            + " FROM _users u LEFT JOIN _conv c USING (uid) ORDER BY u.registered, u.uid"
        ).to_arrow_table()  # fmt: skip
        assert table is not None
        df = table.to_pandas(date_as_object=False)
        for col in ("registered", "first_upgrade"):
            df[col] = pd.to_datetime(df[col]).astype("datetime64[ns]")
        return df

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------- partitions

# A cluster reads each table in blocks of this size, and adds these columns (named apart from a table's).
CSV_BLOCKSIZE = "64MiB"
PART, DIGEST = "__part", "__rest_digest"
# What DuckDB's trim() removes (the Unicode space separators): staging compares ids trimmed of these.
SPACES = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"


def id_text(ids: pd.Series) -> pa.Array:
    """Ids as the text staging compares them as (null when empty): whole numbers without a decimal part
    (258798.0 is 258798), text trimmed, so one user's id reads the same in every table."""
    arr = pa.Array.from_pandas(ids)  # NaN of a float column is null, as pandas writes a gap
    if pa.types.is_decimal(arr.type):
        arr = pc.cast(arr, pa.float64())
    if pa.types.is_floating(arr.type):
        whole = pc.and_(pc.is_finite(arr), pc.equal(arr, pc.trunc(arr)))
        arr = pc.if_else(whole, pc.cast(pc.if_else(whole, arr, 0.0), pa.int64()), None)
    text = pc.cast(arr, pa.string())
    if not pa.types.is_integer(arr.type):
        text = pc.utf8_trim(text, SPACES)
        text = pc.if_else(pc.equal(text, ""), None, text)
    return text


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
    if isinstance(t, UsersTable):
        where, needed = f"users table {t.file}", [a.column for a in t.attributes]
    elif isinstance(t, ConversionTable):
        where, needed, key = f"conversions table {t.file}", list(t.key), t.key
    else:
        where, key = f"activity '{t.name}' table {t.file}", t.key
        needed = [*t.measures, *t.key, *([t.item] if t.item else [])]
    files, fmt = table_files(folder, t.file, where)
    columns = list(dict.fromkeys([t.id, t.time, *needed]))
    with duckdb.connect(":memory:") as con:  # reads the header or footer only
        column_types(con, scan_sql(files, fmt), columns, where)
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
