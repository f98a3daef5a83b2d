"""Event tables read straight from PostgreSQL: `--events postgresql://USER@HOST:PORT/DB`.

DuckDB's own PostgreSQL extension is published only for the DuckDB version it was built with and is
otherwise downloaded at run time, so the tables are read with the ADBC PostgreSQL driver (libpq, COPY in
binary into Arrow) and each table's needed columns land in a DuckDB temp table. From there the staging
SQL is the one the files go through (`event_staging.stage`): the same casts, audit and point-in-time rules.

The connection is read-only (every transaction READ ONLY; nothing is created in the user's database, not
even a temp table), so a role with CONNECT and SELECT suffices. The password is libpq's business: the
standard PG* variables (PGPASSWORD, PGPASSFILE) or ~/.pgpass; a URL that carries one is refused without
repeating it, and no message quotes the URL beyond user, host, port and database.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import duckdb

from upgrade_predictor.errors import InputError
from upgrade_predictor.sources.event_staging import column_types, ident

_SCHEME = re.compile(r"^(postgres|postgresql):(/+)(.*)$", re.IGNORECASE | re.DOTALL)
CONNECT_TIMEOUT_SECONDS = 10
PASSWORD_HELP = "give the password in PGPASSWORD or a ~/.pgpass line (host:port:database:user:password)"


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database named by a URL without a password; `url` is what messages show."""

    url: str
    user: str
    host: str
    database: str


def parse_database(value: object) -> Database | None:
    """The database an `--events` value names, or None for a folder.

    A path-typed value arrives with the scheme's `//` collapsed (`postgresql:/user@host/db`), which is why
    one slash is read as two; the host is therefore required (a socket folder as %2Fvar%2Frun%2Fpostgresql).
    """
    if value is None:
        return None
    match = _SCHEME.match(str(value))
    if not match:
        return None
    url = "postgresql://" + ("/" if len(match.group(2)) > 2 else "") + match.group(3)
    parts = urllib.parse.urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    query = urllib.parse.parse_qs(parts.query)
    if ":" in userinfo or "password" in {k.lower() for k in query}:
        raise InputError(f"--events: the database URL holds a password; {PASSWORD_HELP}, never in the URL")
    host = urllib.parse.unquote(hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport)
    if not host:
        raise InputError(
            "--events: name the host in the database URL: postgresql://USER@HOST:PORT/DB (a socket folder "
            "percent-encoded, such as %2Fvar%2Frun%2Fpostgresql)"
        )
    user = urllib.parse.unquote(userinfo) or os.environ.get("PGUSER", "")
    return Database(url, user, host, urllib.parse.unquote(parts.path.lstrip("/")) or user)


def is_database(value: object) -> bool:
    return parse_database(value) is not None


def table_sql(spec: str) -> str:
    """A mapped table (`name` or `schema.name`) as a quoted PostgreSQL name: names are taken as written."""
    return ".".join(ident(p) for p in spec.split(".", 1))


def _connect_url(db: Database) -> str:
    parts = urllib.parse.urlsplit(db.url)
    query = urllib.parse.parse_qsl(parts.query)
    if not any(k == "connect_timeout" for k, _ in query):  # an unreachable host fails in seconds
        query.append(("connect_timeout", str(CONNECT_TIMEOUT_SECONDS)))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _scrub(text: str) -> str:
    """libpq never quotes a password; this removes one from any text all the same."""
    secret = os.environ.get("PGPASSWORD")
    return text.replace(secret, "***") if secret else text


def database_message(db: Database, where: str, exc: BaseException) -> str:
    """One sentence for a driver error: the server, the role, the table or the column, and what to do."""
    text = _scrub(str(exc))
    low = text.lower()
    column = re.search(r'column "([^"]+)" does not exist', text)
    missing_db = re.search(r'database "([^"]+)" does not exist', text)
    if "password authentication failed" in low:
        return f"{db.url}: the server refused the password of user {db.user}; {PASSWORD_HELP}"
    if "no password supplied" in low or "fe_sendauth" in low:
        return f"{db.url}: the server asks for a password of user {db.user}; {PASSWORD_HELP}"
    if missing_db:
        return f"{db.url}: the server has no database {missing_db.group(1)}; check the URL"
    if re.search(r'role "[^"]+" does not exist', text):
        return f"{db.url}: the server has no user {db.user}; check the URL"
    if "relation" in low and "does not exist" in low:
        return f"{where}: no such table or view in {db.url}; check `table` in the mapping"
    if column:
        return f"{where}: no column `{column.group(1)}` in {db.url}; fix the mapping"
    if "permission denied" in low:
        return f"{where}: user {db.user} may not read it; GRANT SELECT on the table to that user"
    for fragment in ("connection refused", "could not translate host name", "timeout expired",
                     "no route to host", "network is unreachable", "no such file or directory"):  # fmt: skip
        if fragment in low:
            return f"{db.url}: cannot reach the server ({fragment}); check the host and port"
    first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
    first = re.sub(r"^.*?(FATAL|ERROR):\s*", "", first).strip()
    return f"{where}: cannot be read from {db.url}: {first}"


@dataclass
class DatabaseReader:
    """One read-only ADBC connection; each table's needed columns copied once into a DuckDB temp table
    (kept for a second staging pass, dropped on close)."""

    db: Database
    folder: None = None  # no folder of unused files to note
    _conn: Any = None
    _copied: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)
    _con: duckdb.DuckDBPyConnection | None = None

    def __post_init__(self) -> None:
        from adbc_driver_postgresql import dbapi  # loaded for a database only

        try:
            self._conn = dbapi.connect(_connect_url(self.db), autocommit=True)
            with self._conn.cursor() as cur:
                cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        except dbapi.Error as exc:
            self.close()
            raise InputError(database_message(self.db, self.db.url, exc)) from None

    def scan(
        self, con: duckdb.DuckDBPyConnection, spec: str, needed: list[str], where: str
    ) -> tuple[str, dict[str, str]]:
        """A DuckDB temp table of the needed columns of `spec`, and their types (checked as for a file)."""
        from adbc_driver_postgresql import dbapi

        self._con = con
        cols = list(dict.fromkeys(needed))
        key = (spec, tuple(cols))
        try:
            if key not in self._copied:
                with self._conn.cursor() as cur:
                    # The columns are checked on the table's empty schema before any row is read.
                    cur.execute(f"SELECT * FROM {table_sql(spec)} WHERE false")
                    con.register("_db_schema", cur.fetch_arrow_table())
                    try:
                        column_types(con, "_db_schema", needed, where)
                    finally:
                        con.unregister("_db_schema")
                    cur.execute(f"SELECT {', '.join(ident(c) for c in cols)} FROM {table_sql(spec)}")
                    con.register("_db_rows", cur.fetch_record_batch())
                    name = f"_db_{len(self._copied)}"
                    try:
                        con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM _db_rows")
                    finally:
                        con.unregister("_db_rows")
                self._copied[key] = name
            name = self._copied[key]
            return name, column_types(con, name, needed, where)
        except dbapi.Error as exc:
            raise InputError(database_message(self.db, where, exc)) from None

    def close(self) -> None:
        """Close the connection and drop the copies (the staged tables hold what is kept)."""
        for name in self._copied.values():
            if self._con is not None:
                self._con.execute(f"DROP TABLE IF EXISTS {name}")
        self._copied.clear()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
