"""One event table read into DuckDB and staged: its files and format, its columns and types, every cell
cast as the reading rules say (see `events`), and why each source row is kept or left out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from upgrade_predictor.errors import InputError
from upgrade_predictor.sources.event_mapping import ActivityTable, ConversionTable, UsersTable

# Why a source row is kept or left out (column __reason of the staged tables).
KEPT, MISSING_ID, UNPARSEABLE_DATE, DUPLICATE_KEY, UNKNOWN_ID = range(5)
INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT")  # fmt: skip
NUMERIC_TYPES = (*INTEGER_TYPES, "FLOAT", "DOUBLE", "DECIMAL")


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


def scan_sql(files: list[Path], fmt: str) -> str:
    paths = "[" + ", ".join(literal(str(p)) for p in files) + "]"
    if fmt == "parquet":
        return f"read_parquet({paths}, union_by_name = true)"
    # Every cell as text so bad cells are counted, not fatal; only an empty cell is NULL ("NA" is Namibia).
    options = "all_varchar = true, header = true, delim = ',', quote = '\"', union_by_name = true"
    return f"read_csv({paths}, {options})"


def column_types(con: duckdb.DuckDBPyConnection, scan: str, needed: list[str], where: str) -> dict[str, str]:
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


def day_sql(col: str, typ: str) -> str:
    """A column as a calendar day: a time of day is truncated; text that is not a date becomes NULL."""
    if typ == "DATE":
        return ident(col)
    if typ.startswith("TIMESTAMP"):
        return f"CAST({ident(col)} AS DATE)"
    return f"TRY_CAST(trim(CAST({ident(col)} AS VARCHAR)) AS DATE)"


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
    """The id as a number (`as_number`) or as trimmed text; NULL when empty."""
    c = ident(col)
    if typ.startswith(("FLOAT", "DOUBLE", "DECIMAL")):
        # pandas writes an integer id column with gaps as floats: 258798.0 is the id 258798.
        c, typ = f"(CASE WHEN {c} = trunc({c}) THEN CAST({c} AS BIGINT) END)", "BIGINT"
    return c if as_number and typ.startswith(INTEGER_TYPES) else f"NULLIF(trim(CAST({c} AS VARCHAR)), '')"


def has_repeats(con: duckdb.DuckDBPyConnection, scan: str, key: tuple[str, ...]) -> bool:
    """Whether any key value occurs twice; a table whose key is unique has no exact duplicates either."""
    # For a key of several columns, grouping one 64-bit hash is cheaper; a hash collision only sends the
    # table down the full de-duplication path, which is exact.
    cols = ", ".join(ident(k) for k in key)
    group = f"hash({cols})" if len(key) > 1 else cols
    return bool(
        one_row(con, f"SELECT count(*) FROM (SELECT 1 FROM {scan} GROUP BY {group} HAVING count(*) > 1)")[0]
    )


def stage(
    con: duckdb.DuckDBPyConnection,
    target: str,
    scan: str,
    types: dict[str, str],
    table: UsersTable | ConversionTable | ActivityTable,
    key: tuple[str, ...],
    values: list[Value],
    integer_ids: bool,
) -> None:
    """One pass over a table into `target`: uid, day, values, and why each row is kept or left out."""
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
        t0 AS (SELECT *, {user} AS __key, {day_sql(table.time, types[table.time])} AS __day{vals} FROM g),
        t AS (SELECT __key, __day AS day{outs}, __copies, {bad} AS __bad, {rank} AS __rank FROM t0)
        SELECT {uid}, t.day{outs}, __copies, __bad,
               CAST(CASE WHEN t.__key IS NULL THEN {MISSING_ID} WHEN t.day IS NULL THEN {UNPARSEABLE_DATE}
                    WHEN __rank > 1 THEN {DUPLICATE_KEY} {unknown} ELSE {KEPT} END AS UTINYINT) AS __reason,
               {early} AS __early
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
