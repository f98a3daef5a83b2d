"""Dated event tables (users, conversions, activity) read into DuckDB, cleaned and audited.

The tables are named by a mapping (`event_mapping.py`).

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

import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from upgrade_predictor.errors import InputError
from upgrade_predictor.sources.event_mapping import (
    ActivityTable,
    Attribute,
    ConversionTable,
    EventMapping,
    UsersTable,
    resolve_mapping,
)

if TYPE_CHECKING:
    from typing_extensions import Self

# Why a source row is kept or left out (column __reason of the staged tables).
KEPT, MISSING_ID, UNPARSEABLE_DATE, DUPLICATE_KEY, UNKNOWN_ID = range(5)
INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT")  # fmt: skip
NUMERIC_TYPES = (*INTEGER_TYPES, "FLOAT", "DOUBLE", "DECIMAL")


@dataclass
class TableAudit:
    """What happened to one table's rows; rows = the sum of the left-out counts + kept."""

    name: str
    file: str
    rows: int
    kept: int
    first_date: date | None
    last_date: date | None
    duplicate_rows: int
    missing_ids: int
    unparseable_dates: int
    duplicate_keys: int
    unknown_ids: int
    before_registration: int
    bad_values: int
    handling: str


@dataclass
class EventAudit:
    tables: list[TableAudit]
    data_start: date
    data_end: date
    users: int
    converted_users: int
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- reading


def ident(name: str) -> str:
    """A quoted SQL identifier: user text never reaches SQL unquoted."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted SQL string literal (DuckDB strings have no backslash escapes)."""
    return "'" + text.replace("'", "''") + "'"


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    """The single row of a query, read to the end (a half-read result blocks the connection)."""
    return con.execute(sql).fetchall()[0]


def _format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    return None


def _files(folder: Path, spec: str, where: str) -> tuple[list[Path], str]:
    """The files of one table (a file, a folder of parts, or a glob) and their one format."""
    path = folder / spec
    if any(ch in spec for ch in "*?["):
        files = sorted(p for p in folder.glob(spec) if p.is_file())
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    else:
        files = [path] if path.is_file() else []
    if not files:
        raise InputError(f"{where}: no such file {path}; check `file` in the mapping")
    formats = {_format(p) for p in files}
    if None in formats or len(formats) > 1:
        raise InputError(f"{where}: {spec} must be CSV (.csv, .csv.gz) or Parquet files, all of one format")
    return files, str(formats.pop())


def _scan(files: list[Path], fmt: str) -> str:
    paths = "[" + ", ".join(literal(str(p)) for p in files) + "]"
    if fmt == "parquet":
        return f"read_parquet({paths}, union_by_name = true)"
    # Every cell as text so bad cells are counted, not fatal; only an empty cell is NULL ("NA" is Namibia).
    options = "all_varchar = true, header = true, delim = ',', quote = '\"', union_by_name = true"
    return f"read_csv({paths}, {options})"


def _columns(con: duckdb.DuckDBPyConnection, scan: str, needed: list[str], where: str) -> dict[str, str]:
    try:
        types = {r[0]: str(r[1]).upper() for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
    except duckdb.Error as exc:
        raise InputError(f"{where}: could not read it ({str(exc).splitlines()[0]})") from None
    if needed[1] not in types:  # needed = [id, time, ...]
        raise InputError(
            f"{where}: no time column `{needed[1]}`; a table that cannot be placed in time would mix events "
            "from after any cutoff into the features; name its date column or leave the table out"
        )
    for col in needed:
        if col not in types:
            raise InputError(f"{where}: no column `{col}` (columns: {', '.join(types)}); fix the mapping")
    return types


def _day(col: str, typ: str) -> str:
    """A column as a calendar day: a time of day is truncated; text that is not a date becomes NULL."""
    if typ == "DATE":
        return ident(col)
    if typ.startswith("TIMESTAMP"):
        return f"CAST({ident(col)} AS DATE)"
    return f"TRY_CAST(trim(CAST({ident(col)} AS VARCHAR)) AS DATE)"


def _number(col: str, typ: str) -> str:
    """A column as a finite DOUBLE; text that is not a number (or inf, nan) becomes NULL."""
    if typ.startswith(INTEGER_TYPES):
        return f"CAST({ident(col)} AS DOUBLE)"
    raw = ident(col) if typ.startswith(NUMERIC_TYPES) else f"trim(CAST({ident(col)} AS VARCHAR))"
    value = f"TRY_CAST({raw} AS DOUBLE)"
    return f"(CASE WHEN isfinite({value}) THEN {value} END)"


def _text_value(col: str) -> str:
    return f"NULLIF(CAST({ident(col)} AS VARCHAR), '')"


@dataclass(frozen=True)
class _Value:
    alias: str  # column name in the stage table (internal, never user text)
    expr: str
    source: str | None  # a numeric source column: a non-empty cell that is not a number is a bad value


def _user_id(col: str, typ: str, as_number: bool) -> str:
    """The id as a number (`as_number`) or as trimmed text; NULL when empty."""
    c = ident(col)
    if typ.startswith(("FLOAT", "DOUBLE", "DECIMAL")):
        # pandas writes an integer id column with gaps as floats: 258798.0 is the id 258798.
        c, typ = f"(CASE WHEN {c} = trunc({c}) THEN CAST({c} AS BIGINT) END)", "BIGINT"
    return c if as_number and typ.startswith(INTEGER_TYPES) else f"NULLIF(trim(CAST({c} AS VARCHAR)), '')"


def _has_repeats(con: duckdb.DuckDBPyConnection, scan: str, key: tuple[str, ...]) -> bool:
    """Whether any key value occurs twice; a table whose key is unique has no exact duplicates either."""
    # For a key of several columns, grouping one 64-bit hash is cheaper; a hash collision only sends the
    # table down the full de-duplication path, which is exact.
    cols = ", ".join(ident(k) for k in key)
    group = f"hash({cols})" if len(key) > 1 else cols
    return bool(
        _one(con, f"SELECT count(*) FROM (SELECT 1 FROM {scan} GROUP BY {group} HAVING count(*) > 1)")[0]
    )


def _stage(
    con: duckdb.DuckDBPyConnection,
    target: str,
    scan: str,
    types: dict[str, str],
    table: UsersTable | ConversionTable | ActivityTable,
    key: tuple[str, ...],
    values: list[_Value],
    integer_ids: bool,
) -> None:
    """One pass over a table into `target`: uid, day, values, and why each row is kept or left out."""
    users = isinstance(table, UsersTable)
    native = integer_ids and types[table.id].startswith(NUMERIC_TYPES)  # join on numbers when both are
    user = _user_id(table.id, types[table.id], native)
    vals = "".join(f", {v.expr} AS {v.alias}" for v in values)
    outs = "".join(f", {v.alias}" for v in values)
    bad = " + ".join(f"CAST({ident(v.source)} IS NOT NULL AND {v.alias} IS NULL AS INTEGER)"
                     for v in values if v.source) or "0"  # fmt: skip
    repeats = not key or _has_repeats(con, scan, key)
    source = (
        f"SELECT *, count(*) AS __copies FROM {scan} GROUP BY ALL"
        if repeats
        else f"SELECT *, 1 AS __copies FROM {scan}"
    )
    rank = "1"
    if key and repeats:
        order = ", ".join(["__key IS NULL", "__day NULLS LAST", "__key", *(v.alias for v in values)])
        rank = f"row_number() OVER (PARTITION BY {', '.join(ident(k) for k in key)} ORDER BY {order})"
    if users:
        uid, join, unknown, early = "NULL::INTEGER AS uid, t.__key", "", "", "false"
    else:
        uid, unknown, early = "u.uid", f"WHEN u.uid IS NULL THEN {UNKNOWN_ID}", "t.day < u.registered"
        join = f"LEFT JOIN _users u ON u.{'_key' if native else 'user_id'} = t.__key"
    con.execute(f"""
        CREATE OR REPLACE TABLE {target} AS
        WITH g AS ({source}),
        t0 AS (SELECT *, {user} AS __key, {_day(table.time, types[table.time])} AS __day{vals} FROM g),
        t AS (SELECT __key, __day AS day{outs}, __copies, {bad} AS __bad, {rank} AS __rank FROM t0)
        SELECT {uid}, t.day{outs}, __copies, __bad,
               CAST(CASE WHEN t.__key IS NULL THEN {MISSING_ID} WHEN t.day IS NULL THEN {UNPARSEABLE_DATE}
                    WHEN __rank > 1 THEN {DUPLICATE_KEY} {unknown} ELSE {KEPT} END AS UTINYINT) AS __reason,
               {early} AS __early
        FROM t {join}
    """)


def _audit(con: duckdb.DuckDBPyConnection, target: str, name: str, file: str, handling: str) -> TableAudit:
    r = _one(
        con,
        f"""
        SELECT sum(__copies), count(*) FILTER (__reason = {KEPT}), min(day) FILTER (__reason = {KEPT}),
               max(day) FILTER (__reason = {KEPT}), sum(__copies - 1),
               count(*) FILTER (__reason = {MISSING_ID}), count(*) FILTER (__reason = {UNPARSEABLE_DATE}),
               count(*) FILTER (__reason = {DUPLICATE_KEY}), count(*) FILTER (__reason = {UNKNOWN_ID}),
               count(*) FILTER (__reason = {KEPT} AND __early), sum(__bad) FILTER (__reason = {KEPT})
        FROM {target}
    """,
    )
    n = [int(x or 0) for x in (r[0], r[1], *r[4:])]
    return TableAudit(
        name=name, file=file, rows=n[0], kept=n[1], first_date=r[2], last_date=r[3], duplicate_rows=n[2],
        missing_ids=n[3], unparseable_dates=n[4], duplicate_keys=n[5], unknown_ids=n[6],
        before_registration=n[7], bad_values=n[8], handling=handling,
    )  # fmt: skip


_HANDLING = {
    "users": "exact duplicates and repeated ids removed (earliest registration kept); users without an id "
    "or a registration date left out",
    "conversions": "first conversion per user is the upgrade; rows without an id or a date, repeated keys "
    "and unknown ids left out",
    "activity": "exact duplicates and repeated keys removed; rows without an id or a date and unknown ids "
    "left out; events before registration kept with their own date",
}


def _is_numeric(con: duckdb.DuckDBPyConnection, scan: str, col: str, typ: str) -> bool:
    if typ.startswith(NUMERIC_TYPES):
        return True
    r = _one(
        con,
        f"SELECT count({ident(col)}), count(*) FILTER ({ident(col)} IS NOT NULL AND "
        f"TRY_CAST(trim(CAST({ident(col)} AS VARCHAR)) AS DOUBLE) IS NULL) FROM {scan}",
    )
    return bool(r[0] > 0 and r[1] == 0)


def _load(
    con: duckdb.DuckDBPyConnection, folder: Path, m: EventMapping
) -> tuple[tuple[Attribute, ...], EventAudit]:
    """Create the tables and views (see `EventSource`); return the resolved attributes and the audit."""
    audits: list[TableAudit] = []
    u = m.users
    where = f"users table {u.file}"
    scan = _scan(*_files(folder, u.file, where))
    types = _columns(con, scan, [u.id, u.time, *(a.column for a in u.attributes)], where)
    integer_ids = types[u.id].startswith(NUMERIC_TYPES)  # floats such as 258798.0 are whole ids
    attrs = tuple(
        Attribute(a.column, a.kind or ("numeric" if _is_numeric(con, scan, a.column, types[a.column]) else
                                       "categorical"))
        for a in u.attributes
    )  # fmt: skip
    values = [
        _Value(f"__a{i}", _number(a.column, types[a.column]), a.column)
        if a.kind == "numeric" else _Value(f"__a{i}", _text_value(a.column), None)
        for i, a in enumerate(attrs)
    ]  # fmt: skip
    _stage(con, "_stage", scan, types, u, (u.id,), values, integer_ids)
    audits.append(_audit(con, "_stage", "users", u.file, _HANDLING["users"]))
    if audits[0].kept == 0:
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

    c = m.conversions
    where = f"conversions table {c.file}"
    scan = _scan(*_files(folder, c.file, where))
    types = _columns(con, scan, [c.id, c.time, *c.key], where)
    _stage(con, "_stage", scan, types, c, c.key, [], integer_ids)
    audits.append(_audit(con, "_stage", "conversions", c.file, _HANDLING["conversions"]))
    con.execute("CREATE TABLE _conv AS SELECT uid, min(day) AS converted FROM _stage "
                f"WHERE __reason = {KEPT} GROUP BY uid")  # fmt: skip
    con.execute(
        "CREATE VIEW conversions AS SELECT u.user_id, c.converted FROM _conv c JOIN _users u USING (uid)"
    )
    con.execute("DROP TABLE _stage")

    for a in m.activities:
        where = f"activity '{a.name}' table {a.file}"
        scan = _scan(*_files(folder, a.file, where))
        needed = [a.id, a.time, *a.measures, *a.key, *([a.item] if a.item else [])]
        types = _columns(con, scan, needed, where)
        values = [_Value(f"__m{i}", _number(col, types[col]), col) for i, col in enumerate(a.measures)]
        if a.item:
            # Items are only told apart, never shown: kept in their own type (cheaper than text).
            item = _text_value(a.item) if types[a.item] == "VARCHAR" else ident(a.item)
            values.append(_Value("__item", item, None))
        events = ident("_ev_" + a.name)  # kept and left-out rows alike: one write; readers filter __reason
        _stage(con, events, scan, types, a, a.key, values, integer_ids)
        audits.append(_audit(con, events, a.name, a.file, _HANDLING["activity"]))
        public = "".join(f", e.__m{i} AS {ident(col)}" for i, col in enumerate(a.measures))
        public += ", CAST(e.__item AS VARCHAR) AS item" if a.item else ""
        con.execute(f"CREATE VIEW {ident('act_' + a.name)} AS SELECT u.user_id, e.day{public} "
                    f"FROM {events} e JOIN _users u USING (uid) WHERE e.__reason = {KEPT}")  # fmt: skip
    return attrs, _event_audit(con, folder, m, audits)


def _event_audit(
    con: duckdb.DuckDBPyConnection, folder: Path, m: EventMapping, audits: list[TableAudit]
) -> EventAudit:
    starts = [t.first_date for t in audits if t.first_date is not None]
    ends = [t.last_date for t in audits if t.last_date is not None]
    counts = _one(con, "SELECT (SELECT count(*) FROM _users), (SELECT count(*) FROM _conv)")
    notes = []
    for t in audits:
        left = {"duplicate rows": t.duplicate_rows, "rows without an id": t.missing_ids,
                "rows without a readable date": t.unparseable_dates, "repeated keys": t.duplicate_keys,
                "rows of unknown users": t.unknown_ids, "bad numbers (kept as missing)": t.bad_values,
                "rows dated before registration (kept)": t.before_registration}  # fmt: skip
        found = [f"{n:,} {what}" for what, n in left.items() if n]
        if found:
            notes.append(f"{t.name}: " + ", ".join(found))
    used = {m.users.file, m.conversions.file, *(a.file for a in m.activities)}
    unused = sorted(p.name for p in folder.iterdir() if _format(p) and p.name not in used)
    if unused:
        notes.append("not used (a table needs a mapping entry with a date column): " + ", ".join(unused))
    return EventAudit(audits, min(starts), max(ends), int(counts[0]), int(counts[1]), notes)


# ------------------------------------------------------------------------------------------------ source


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
    """

    def __init__(self, folder: Path, mapping: Path | None = None, *, memory_limit: str = "3GB") -> None:
        self.folder = Path(folder)
        self.mapping = resolve_mapping(self.folder, mapping)
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
            self.attributes, self.audit = _load(self.con, self.folder, self.mapping)
        except BaseException:
            self.close()
            raise
        self.data_end: date = self.audit.data_end

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
