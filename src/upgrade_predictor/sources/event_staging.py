"""One event table read into DuckDB and staged: its files and format, its columns and types, every cell
cast as the reading rules say (see `events`; dates by `event_dates`, ids by `event_ids`), and why each
source row is kept or left out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from upgrade_predictor.errors import InputError
from upgrade_predictor.sources.event_dates import (
    INTEGER_PREFIXES,
    NUMBER_PREFIXES,
    check_time_type,
    day_sql,
    plausible_sql,
)
from upgrade_predictor.sources.event_ids import id_sql
from upgrade_predictor.sources.event_mapping import (
    ActivityTable,
    ConversionTable,
    UsersTable,
    resolve_mapping,
)
from upgrade_predictor.sources.messages import shown_name

# Why a source row is kept or left out (column __reason of the staged tables).
KEPT, MISSING_ID, UNPARSEABLE_DATE, DUPLICATE_KEY, UNKNOWN_ID, EARLY_DATE, LATE_DATE = range(7)
INTEGER_TYPES = INTEGER_PREFIXES
NUMERIC_TYPES = NUMBER_PREFIXES
# A header that is one column holding one of these was written with another delimiter.
_DELIMITERS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def ident(name: str) -> str:
    """A quoted SQL identifier: user text never reaches SQL unquoted."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted SQL string literal (DuckDB strings have no backslash escapes)."""
    return "'" + text.replace("'", "''") + "'"


def one_row(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    """The single row of a query, read to the end (a half-read result blocks the connection)."""
    return con.execute(sql).fetchall()[0]


def table_format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    return None


def table_files(folder: Path, spec: str, where: str) -> tuple[list[Path], str]:
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
    formats = {table_format(p) for p in files}
    if None in formats or len(formats) > 1:
        raise InputError(f"{where}: {spec} must be CSV (.csv, .csv.gz) or Parquet files, all of one format")
    return files, str(formats.pop())


def mapped_inputs(folder: Path, tables: list[UsersTable | ConversionTable | ActivityTable]) -> list[str]:
    """Every file the tables name, for the output checks: each existing file (of a folder of parts or a
    glob too) and, for a glob, the pattern itself, so that no output becomes a part of a table later."""
    out: list[str] = []
    for t in tables:
        path = folder / t.file
        if any(ch in t.file for ch in "*?["):
            out.append(str(path.absolute()))
            out += [str(p) for p in folder.glob(t.file) if p.is_file()]
        elif path.is_dir():
            out += [str(path), *(str(p) for p in path.iterdir() if p.is_file())]
        else:
            out.append(str(path))
    return out


def event_inputs(folder: Path, mapping: Path | None) -> list[str]:
    """Every file the mapping of an event folder names (see `mapped_inputs`): inputs no output may be.
    A database names no file (a URL with a password is refused here, before any work)."""
    from upgrade_predictor.sources.event_database import parse_database

    if parse_database(folder) is not None:
        return []
    return mapped_inputs(Path(folder), resolve_mapping(Path(folder), mapping).tables())


def scan_sql(files: list[Path], fmt: str) -> str:
    paths = "[" + ", ".join(literal(str(p)) for p in files) + "]"
    if fmt == "parquet":
        return f"read_parquet({paths}, union_by_name = true)"
    # Every cell as text so bad cells are counted, not fatal; only an empty cell is NULL ("NA" is Namibia).
    # The dialect is stated, not sniffed: a sniffer that meets a bad row in its sample gives up without
    # naming the line, while the reader names it.
    options = ("all_varchar = true, header = true, delim = ',', quote = '\"', escape = '\"', "
               "union_by_name = true, auto_detect = false")  # fmt: skip
    return f"read_csv({paths}, {options})"


def _no_columns(files: list[Path], types: dict[str, str], where: str) -> None:
    """Refuse a file that is empty or written with another delimiter, before naming a missing column."""
    if all(p.stat().st_size == 0 for p in files if p.is_file()):
        raise InputError(f"{where}: the file is empty (0 bytes); export the table again")
    if len(types) == 1:
        header = next(iter(types))
        for mark, name in _DELIMITERS.items():
            if mark.replace("\\t", "\t") in header:
                raise InputError(
                    f"{where}: the columns are separated by {name}, not commas (header "
                    f"{shown_name(header)}); save the table as comma-separated CSV"
                )


def column_types(
    con: duckdb.DuckDBPyConnection, scan: str, needed: list[str], where: str, files: list[Path] | None = None
) -> dict[str, str]:
    """The types of a table's columns; the needed ones (id, time, ...) checked, the time column's type too."""
    types = {r[0]: str(r[1]).upper() for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
    if any(col not in types for col in needed) and files:
        _no_columns(files, types, where)
    if needed[1] not in types:  # needed = [id, time, ...]
        raise InputError(
            f"{where}: no time column `{needed[1]}`; a table that cannot be placed in time would mix events "
            "from after any cutoff into the features; name its date column or leave the table out"
        )
    for col in needed:
        if col not in types:
            shown = ", ".join(shown_name(c) for c in list(types)[:12]) + (", ..." if len(types) > 12 else "")
            raise InputError(f"{where}: no column `{col}` (columns: {shown}); fix the mapping")
    check_time_type(needed[1], types[needed[1]], where)
    return types


def number_sql(col: str, typ: str) -> str:
    """A column as a finite DOUBLE; text that is not a number (or inf, nan) becomes NULL."""
    if typ.startswith(INTEGER_TYPES):
        return f"CAST({ident(col)} AS DOUBLE)"
    raw = ident(col) if typ.startswith(NUMERIC_TYPES) else f"trim(CAST({ident(col)} AS VARCHAR))"
    value = f"TRY_CAST({raw} AS DOUBLE)"
    return f"(CASE WHEN isfinite({value}) THEN {value} END)"


def text_sql(col: str) -> str:
    return f"NULLIF(CAST({ident(col)} AS VARCHAR), '')"


@dataclass(frozen=True)
class Value:
    alias: str  # column name in the stage table (internal, never user text)
    expr: str
    source: str | None  # a numeric source column: a non-empty cell that is not a number is a bad value


def user_id_sql(col: str, typ: str, as_number: bool) -> str:
    """The id as a number (`as_number`) or as its canonical text (`event_ids`); NULL when none."""
    return id_sql(col, typ, as_number)


def has_repeats(con: duckdb.DuckDBPyConnection, scan: str, key: tuple[str, ...]) -> bool:
    """Whether any key value occurs twice; a table whose key is unique has no exact duplicates either."""
    # For a key of several columns, grouping one 64-bit hash is cheaper; a hash collision only sends the
    # table down the full de-duplication path, which is exact.
    cols = ", ".join(ident(k) for k in key)
    group = f"hash({cols})" if len(key) > 1 else cols
    return bool(
        one_row(con, f"SELECT count(*) FROM (SELECT 1 FROM {scan} GROUP BY {group} HAVING count(*) > 1)")[0]
    )


@dataclass(frozen=True)
class Span:
    """The plausible days of this read (see `event_dates`) and the first registration (for activity)."""

    last: date
    first_registration: date | None = None


def stage(
    con: duckdb.DuckDBPyConnection,
    target: str,
    scan: str,
    types: dict[str, str],
    table: UsersTable | ConversionTable | ActivityTable,
    key: tuple[str, ...],
    values: list[Value],
    integer_ids: bool,
    span: Span,
) -> None:
    """One pass over a table into `target`: uid, day, values, and why each row is kept or left out.

    Besides the reason: __copies (exact copies merged), __bad (cells that are not numbers), __early (dated
    before the user's registration), __first (before the first registration of all), __empty (no date
    cell), and, on left-out rows only, the cell that made the date or the id fail (for messages)."""
    users = isinstance(table, UsersTable)
    native = integer_ids and types[table.id].startswith(NUMERIC_TYPES)  # join on numbers when both are
    user = user_id_sql(table.id, types[table.id], native)
    vals = "".join(f", {v.expr} AS {v.alias}" for v in values)
    outs = "".join(f", {v.alias}" for v in values)
    bad = " + ".join(f"CAST({ident(v.source)} IS NOT NULL AND {v.alias} IS NULL AS INTEGER)"
                     for v in values if v.source) or "0"  # fmt: skip
    repeats = not key or has_repeats(con, scan, key)
    source = (
        f"SELECT *, count(*) AS __copies FROM {scan} GROUP BY ALL"
        if repeats
        else f"SELECT *, 1 AS __copies FROM {scan}"
    )
    rank = "1"
    if key and repeats:  # the earliest plausible row of a key is kept
        order = ", ".join(
            ["__key IS NULL", "__dr <> 0", "__d NULLS LAST", "__key", *(v.alias for v in values)]
        )
        rank = f"row_number() OVER (PARTITION BY {', '.join(ident(k) for k in key)} ORDER BY {order})"
    time = ident(table.time)
    date_reason = (
        f"CASE WHEN __d IS NULL THEN {UNPARSEABLE_DATE} WHEN __d < DATE '1900-01-01' THEN "
        f"{EARLY_DATE} WHEN NOT {plausible_sql('__d', span.last)} THEN {LATE_DATE} ELSE {KEPT} END"
    )
    first = f"DATE '{span.first_registration.isoformat()}'" if span.first_registration else "NULL::DATE"
    if users:
        uid, join, unknown, early = "NULL::INTEGER AS uid, t.__key", "", "", "false"
        id_cell = "NULL::VARCHAR"
    else:
        uid, unknown, early = "u.uid", f"WHEN u.uid IS NULL THEN {UNKNOWN_ID}", "t.day < u.registered"
        join = f"LEFT JOIN _users u ON u.{'_key' if native else 'user_id'} = t.__key"
        id_cell = "CASE WHEN t.__key IS NOT NULL AND u.uid IS NULL THEN CAST(t.__key AS VARCHAR) END"
    con.execute(f"""
        CREATE OR REPLACE TABLE {target} AS
        WITH g AS ({source}),
        t0 AS (SELECT *, {user} AS __key, {day_sql(table.time, types[table.time])} AS __d{vals} FROM g),
        t1 AS (SELECT *, {date_reason} AS __dr FROM t0),
        t AS (SELECT __key, CASE WHEN __dr = {KEPT} THEN __d END AS day{outs}, __copies, {bad} AS __bad,
                     __dr, {time} IS NULL OR trim(CAST({time} AS VARCHAR)) = '' AS __empty,
                     CASE WHEN __dr <> {KEPT} THEN CAST({time} AS VARCHAR) END AS __date_cell,
                     {rank} AS __rank FROM t1)
        SELECT {uid}, t.day{outs}, __copies, __bad,
               CAST(CASE WHEN t.__key IS NULL THEN {MISSING_ID} WHEN __dr <> {KEPT} THEN __dr
                    WHEN __rank > 1 THEN {DUPLICATE_KEY} {unknown} ELSE {KEPT} END AS UTINYINT) AS __reason,
               {early} AS __early, t.day < {first} AS __first, __empty,
               CASE WHEN t.__key IS NOT NULL THEN __date_cell END AS __date_cell, {id_cell} AS __id_cell
        FROM t {join}
    """)


def is_numeric(con: duckdb.DuckDBPyConnection, scan: str, col: str, typ: str) -> bool:
    if typ.startswith(NUMERIC_TYPES):
        return True
    r = one_row(
        con,
        f"SELECT count({ident(col)}), count(*) FILTER ({ident(col)} IS NOT NULL AND "
        f"TRY_CAST(trim(CAST({ident(col)} AS VARCHAR)) AS DOUBLE) IS NULL) FROM {scan}",
    )
    return bool(r[0] > 0 and r[1] == 0)
