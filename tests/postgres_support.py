"""A throw-away PostgreSQL server for the database tests: initdb into a temp folder, pg_ctl start on a
free port (TCP on 127.0.0.1 with passwords, the unix socket in the temp folder for the loader), the 365
tables loaded with \\copy under their own names, a read-only role, and the server stopped at the end."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

ADMIN, READER, READER_PASSWORD, DATABASE = "admin", "reader", "reader-secret-8x", "events"
# DuckDB's reading of each CSV column, as the PostgreSQL type a platform's database would hold.
_PG_TYPES = {"BIGINT": "bigint", "DOUBLE": "double precision", "DATE": "date", "VARCHAR": "text"}


@dataclass(frozen=True)
class Server:
    bin: Path
    socket_dir: Path
    port: int

    def url(self, user: str = READER, database: str = DATABASE) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = DATABASE) -> str:
        """Run SQL as the superuser over the socket; the output, unaligned."""
        cmd = [str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h",
               str(self.socket_dir), "-p", str(self.port), "-U", ADMIN, "-d", database, "-c", sql]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout


def pg_bin() -> Path | None:
    """The folder of initdb: on PATH, else Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(dirs[-1]).parent if dirs else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root: run them as the postgres user then.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def load_tables(server: Server, folder: Path, database: str) -> list[str]:
    """Every CSV of the folder as a table named by its stem, typed as DuckDB reads the columns."""
    con = duckdb.connect()
    names = []
    for path in sorted(folder.glob("*.csv")):
        cols = con.execute(f"DESCRIBE SELECT * FROM read_csv('{path}')").fetchall()
        defs = ", ".join(f'"{c[0]}" {_PG_TYPES.get(str(c[1]), "text")}' for c in cols)
        server.psql(f'CREATE TABLE "{path.stem}" ({defs})', database)
        server.psql(f"\\copy \"{path.stem}\" FROM '{path}' WITH (FORMAT csv, HEADER true)", database)
        names.append(path.stem)
    return names


def load_database(server: Server, name: str, folder: Path) -> None:
    """A database of the folder's CSV tables that the read-only role may connect to and read, and
    nothing else (no temp tables, no objects of its own)."""
    server.psql(f"CREATE DATABASE {name}", database="postgres")
    load_tables(server, folder, name)
    server.psql(f"REVOKE ALL ON DATABASE {name} FROM PUBLIC", name)
    server.psql(f"GRANT CONNECT ON DATABASE {name} TO {READER}", name)
    server.psql(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT USAGE ON SCHEMA public TO {READER}", name)
    server.psql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}", name)


@pytest.fixture(scope="session")
def postgres(real_events: Path) -> Iterator[Server]:
    """The server with the 365 tables; a skip when PostgreSQL is not installed, outside CI only."""
    binary = pg_bin()
    if binary is None:
        msg = "PostgreSQL's initdb is not installed (make test installs Debian's postgresql)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    tmp = Path(tempfile.mkdtemp(prefix="upgrade_predictor_pg_"))
    data, sock = tmp / "data", tmp / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
        shutil.chown(sock, "postgres")
    server = Server(binary, sock, _free_port())
    ctl = _as_server_user([str(binary / "pg_ctl"), "-D", str(data), "-s", "-m", "immediate", "stop"])
    try:
        subprocess.run(_as_server_user([str(binary / "initdb"), "-D", str(data), "-U", ADMIN, "-E", "UTF8",
                                        "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256"]),
                       check=True, capture_output=True)  # fmt: skip
        options = f"-p {server.port} -k {sock} -c listen_addresses=127.0.0.1"
        subprocess.run(_as_server_user([str(binary / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                                        str(tmp / "server.log"), "-w", "-s", "start"]),
                       check=True, capture_output=True)  # fmt: skip
        server.psql(f"CREATE ROLE {READER} LOGIN PASSWORD '{READER_PASSWORD}'", database="postgres")
        load_database(server, DATABASE, real_events)
        yield server
    finally:
        subprocess.run(ctl, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
