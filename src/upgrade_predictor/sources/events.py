"""Dated event tables (users, conversions, activity) read into DuckDB, cleaned and audited.

The tables are named by a mapping (`event_mapping`); each is staged by `event_staging` and its cleaning
counted by `event_audit`. On a cluster (`forecast.cluster`) the tables are split into partitions of users
by `event_parts`, and each partition is one `EventSource` (`event_parts.open_part`).

Reading: CSV cells are read as text and cast with TRY_CAST so a bad cell is counted, not fatal; only an
empty cell is missing (the country code "NA" is Namibia). Dates follow the one date policy
(`event_dates`: ISO dates and timestamps, a timestamp with an offset on its UTC day, plausible days only)
and ids the one id policy (`event_ids`: 258798, 258798.0 and "258798" are one user). Every DuckDB call
that reads a file runs under the one guard (`engine_errors`): a defect on any line is one sentence.

Cleaning, every case counted in `EventAudit` and never dropped silently; each source row is counted
under the first rule that applies:

* exact duplicate rows (all columns equal): one copy kept;
* empty id: left out;
* empty or unparseable date, a date before 1900 or after the data's plausible end: left out (for the
  users table, the user is left out); a time column whose dates mostly fail is refused;
* rows sharing a declared key (or a users-table id): the earliest-dated row kept;
* ids not in the users table (events of nobody): left out; a table where nearly none match is refused;
* events dated before the user's registration: KEPT with their own date. They are real activity known
  before any later cutoff; moving them to the registration day would invent a date.
* measure cells that are not numbers: the row is kept, the cell is missing (counted as `bad_values`).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import duckdb
import pandas as pd

from upgrade_predictor.errors import InputError
from upgrade_predictor.sources.engine_errors import engine_errors
from upgrade_predictor.sources.event_audit import (
    HANDLING,
    EventAudit,
    TableAudit,
    check_table,
    event_audit,
    table_audit,
)
from upgrade_predictor.sources.event_database import DatabaseReader, parse_database
from upgrade_predictor.sources.event_dates import agreed_end, tomorrow
from upgrade_predictor.sources.event_mapping import (
    ActivityTable,
    Attribute,
    ConversionTable,
    EventMapping,
    UsersTable,
    database_mapping,
    resolve_mapping,
    where_of,
)
from upgrade_predictor.sources.event_staging import (
    KEPT,
    NUMERIC_TYPES,
    Span,
    Value,
    column_types,
    ident,
    is_numeric,
    literal,
    number_sql,
    one_row,
    scan_sql,
    stage,
    table_files,
    text_sql,
)

if TYPE_CHECKING:
    from typing_extensions import Self


def _load(
    con: duckdb.DuckDBPyConnection, reader: TableReader, m: EventMapping, part: bool
) -> tuple[tuple[Attribute, ...], EventAudit]:
    """Create the tables and views (see `EventSource`); return the resolved attributes and the audit.

    Dates after tomorrow are left out on the first pass. When one table's last rows then run past the day
    the tables agree on (`event_dates.agreed_end`), the tables are read once more with that bound, so the
    outliers are counted and left out instead of moving the data's end: a rare, second pass. A partition
    of a cluster has only its own tables' last days to go by, so it keeps the first pass."""
    span = Span(tomorrow())
    attrs, audits = _load_all(con, reader, m, part, span)
    end = None if part else agreed_end([t.last_date for t in audits])
    if end is not None and end < span.last and any(t.last_date and t.last_date > end for t in audits):
        _drop_all(con)
        attrs, audits = _load_all(con, reader, m, part, Span(end))
    with engine_errors("the event tables"):
        return attrs, event_audit(con, reader.folder, m, audits, part)


def _load_all(
    con: duckdb.DuckDBPyConnection, reader: TableReader, m: EventMapping, part: bool, span: Span
) -> tuple[tuple[Attribute, ...], list[TableAudit]]:
    attrs, integer_ids, users = _load_users(con, reader, m.users, part, span)
    first = one_row(con, "SELECT min(registered) FROM _users")[0]
    span = Span(span.last, first)
    audits = [users, _load_conversions(con, reader, m.conversions, integer_ids, span)]
    audits += [_load_activity(con, reader, a, integer_ids, span) for a in m.activities]
    return attrs, audits


def _drop_all(con: duckdb.DuckDBPyConnection) -> None:
    """Drop every table and view of a first pass."""
    views = con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary"
    ).fetchall()
    for (name,) in views:
        con.execute(f"DROP VIEW {ident(name)}")
    for (name,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall():
        con.execute(f"DROP TABLE {ident(name)}")


class TableReader(Protocol):
    """Where the tables are read from: a folder of files, or a database (`event_database`). `scan` gives
    the SQL that scans one mapped table in DuckDB and its column types (the needed ones checked), so the
    staging is the same SQL for both; `folder` is the folder of unused files to note, if any."""

    @property
    def folder(self) -> Path | None: ...

    def scan(
        self, con: duckdb.DuckDBPyConnection, spec: str, needed: list[str], where: str
    ) -> tuple[str, dict[str, str]]: ...

    def close(self) -> None: ...


@dataclass
class FolderReader:
    """The tables as files of a folder (CSV or Parquet), scanned in place."""

    folder: Path

    def scan(
        self, con: duckdb.DuckDBPyConnection, spec: str, needed: list[str], where: str
    ) -> tuple[str, dict[str, str]]:
        files, fmt = table_files(self.folder, spec, where)
        scan = scan_sql(files, fmt)
        return scan, column_types(con, scan, needed, where, files)

    def close(self) -> None:
        pass


def _load_users(
    con: duckdb.DuckDBPyConnection, reader: TableReader, u: UsersTable, part: bool, span: Span
) -> tuple[tuple[Attribute, ...], bool, TableAudit]:
    """The users table as _users and the view users; its attributes typed, and whether ids are integers."""
    where = where_of(u)
    with engine_errors(where):
        scan, types = reader.scan(con, u.file, [u.id, u.time, *(a.column for a in u.attributes)], where)
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
        stage(con, "_stage", scan, types, u, (u.id,), values, integer_ids, span)
        audit = table_audit(con, "_stage", "users", u.file, HANDLING["users"])
        if audit.kept == 0 and not part:
            check_table(audit, u, "")  # a date column that fails is the reason, when it is
            raise InputError(_no_users(where, audit))
        cols = "".join(f", {v.alias} AS {ident(a.column)}" for v, a in zip(values, attrs))
        con.execute(f"""CREATE TABLE _users AS SELECT CAST(row_number() OVER (ORDER BY __key) AS INTEGER) AS uid,
                        __key AS _key, CAST(__key AS VARCHAR) AS user_id, day AS registered{cols}
                        FROM _stage WHERE __reason = {KEPT}""")  # fmt: skip
        public = "".join(f", {ident(a.column)}" for a in attrs)
        con.execute(f"CREATE VIEW users AS SELECT user_id, registered{public} FROM _users")
        con.execute("DROP TABLE _stage")
    return attrs, integer_ids, audit


def _no_users(where: str, audit: TableAudit) -> str:
    """Why a users table yields no user: no rows at all, or why each row was left out."""
    if audit.rows == 0:
        return f"{where}: the table has a header but no rows; export it again with its users"
    return f"{where}: no user has both an id and a registration date; check the file and mapping"


def _load_conversions(
    con: duckdb.DuckDBPyConnection, reader: TableReader, c: ConversionTable, integer_ids: bool, span: Span
) -> TableAudit:
    """The conversions table as _conv (the first conversion per user) and the view conversions."""
    where = where_of(c)
    with engine_errors(where):
        scan, types = reader.scan(con, c.file, [c.id, c.time, *c.key], where)
        stage(con, "_cstage", scan, types, c, c.key, [], integer_ids, span)
        audit = table_audit(con, "_cstage", "conversions", c.file, HANDLING["conversions"])
        con.execute("CREATE TABLE _conv AS SELECT uid, min(day) AS converted FROM _cstage "
                    f"WHERE __reason = {KEPT} GROUP BY uid")  # fmt: skip
        con.execute(
            "CREATE VIEW conversions AS SELECT u.user_id, c.converted FROM _conv c JOIN _users u USING (uid)"
        )
        con.execute("DROP TABLE _cstage")
    return audit


def _load_activity(
    con: duckdb.DuckDBPyConnection, reader: TableReader, a: ActivityTable, integer_ids: bool, span: Span
) -> TableAudit:
    """One activity table as _ev_<name> (kept and left-out rows) and the view act_<name> (kept rows)."""
    where = where_of(a)
    needed = [a.id, a.time, *a.measures, *a.key, *([a.item] if a.item else [])]
    with engine_errors(where):
        scan, types = reader.scan(con, a.file, needed, where)
        values = [Value(f"__m{i}", number_sql(col, types[col]), col) for i, col in enumerate(a.measures)]
        if a.item:
            # Items are only told apart, never shown: kept in their own type (cheaper than text).
            item = text_sql(a.item) if types[a.item] == "VARCHAR" else ident(a.item)
            values.append(Value("__item", item, None))
        events = ident("_ev_" + a.name)  # kept and left-out rows alike: one write; readers filter __reason
        stage(con, events, scan, types, a, a.key, values, integer_ids, span)
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
        folder: Path | str,
        mapping: Path | EventMapping | None = None,
        *,
        memory_limit: str = "3GB",
        data_end: date | None = None,
        part: bool = False,
    ) -> None:
        self.folder = Path(folder)
        database = parse_database(folder)
        if isinstance(mapping, EventMapping):
            self.mapping = mapping
        else:
            self.mapping = database_mapping(mapping) if database else resolve_mapping(self.folder, mapping)
        reader: TableReader = DatabaseReader(database) if database else FolderReader(self.folder)
        self._tmp = tempfile.mkdtemp(prefix="upgrade_predictor_duckdb_")
        self.con = duckdb.connect(":memory:")  # spills to the temp folder beyond memory_limit
        # Runs on close(), or when the source is garbage-collected or the interpreter exits unclosed.
        self._finalizer = weakref.finalize(self, _dispose, self.con, self._tmp)
        try:
            try:
                self.con.execute("PRAGMA threads=2")
                self.con.execute("SET preserve_insertion_order = false")  # row order is never relied on
                self.con.execute("SET TimeZone = 'UTC'")  # a timestamp with a zone falls on its UTC day
                self.con.execute(f"SET memory_limit = {literal(memory_limit)}")
                self.con.execute(f"SET temp_directory = {literal(self._tmp)}")
                self.attributes, self.audit = _load(self.con, reader, self.mapping, part)
            finally:
                reader.close()  # before DuckDB closes: it drops its copies there
        except BaseException:
            self.close()
            raise
        self.data_end: date = data_end or self.audit.data_end
        self._part = part

    def users_frame(self) -> pd.DataFrame:
        """user_id, registered, first_upgrade (NaT if none), then the attributes; one row per user: the
        users a forecast learns from. Refused (a whole extract, not a partition) when nobody upgraded or
        every user upgraded on the registration day: no design of (user, cutoff) rows has two classes."""
        if not self._part:
            self._check_learnable()
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

    def _check_learnable(self) -> None:
        conv = where_of(self.mapping.conversions)
        if self.audit.converted_users == 0:
            raise InputError(
                f"{conv}: no user upgraded (of {self.audit.users:,} users); a forecast learns from upgrades, "
                "so train on tables that hold some"
            )
        free = one_row(self.con, "SELECT count(*) FROM _users u LEFT JOIN _conv c USING (uid) "
                                 "WHERE c.converted IS NULL OR c.converted > u.registered")[0]  # fmt: skip
        if free == 0:
            raise InputError(
                f"{conv}: every one of the {self.audit.users:,} users upgraded on the day they registered, "
                "so no user is free after day 0 and there is nothing to forecast"
            )

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
