"""The one guard around DuckDB: any engine error of any scan (describe, stage, aggregate) becomes one
sentence naming the file, the line when DuckDB reports it, and the cause; never the engine's dump.

DuckDB's messages run to kilobytes (the offending row, the reader's options, "possible fixes" that name
options this tool does not expose), so only what the user can act on is kept. A signal that arrives
during a query (Ctrl-C, SIGTERM) surfaces from DuckDB as an InterruptException: it is an interruption,
re-raised as KeyboardInterrupt so the command exits 130 or 143, never as bad input.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb

from upgrade_predictor.errors import InputError
from upgrade_predictor.sources.messages import error_line

_LINE = re.compile(r"CSV Error on Line: (\d+)")
_FILE = re.compile(r"^\s*file = (.+?)\s*$", re.MULTILINE)
_SNIFFED = re.compile(r'sniffing file "([^"]+)"')
_COLUMNS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")
_PREFIX = re.compile(r"^[A-Za-z ]*Error: ")

# What DuckDB says (a fragment of its message, lower case) and the sentence the user gets instead.
_CAUSES = (
    ("unterminated quote", "a quoted value is never closed (a stray \" or a file cut short)"),
    ("invalid unicode", "it is not UTF-8 text; save the file as UTF-8"),
    ("not utf-8", "it is not UTF-8 text; save the file as UTF-8"),
    ("maximum line size", "a line is longer than a CSV row can be; check that the file is a CSV table"),
    ("no magic bytes", "it is not a complete Parquet file (damaged or cut short)"),
    ("not a parquet file", "it is not a Parquet file"),
    ("parquet", "it is not a readable Parquet file (damaged or cut short)"),
    ("out of memory", "the tables need more memory than is available; free memory or use --dask"),
    ("could not set lock", "it is in use by another program"),
    ("permission denied", "permission denied"),
    ("no such file", "the file vanished while it was read"),
    ("sniffing", "the rows do not form one comma-separated table (ragged rows, an unclosed quote or a "
                 "file cut short)"),
)  # fmt: skip


MAX_LINE_BYTES = 2_000_000  # DuckDB's longest CSV line (its max_line_size, about 2 MB)
LOCATE_MAX_BYTES = 256_000_000  # a file the reader gave up on is searched for its defect up to this size


def _columns_cause(expected: int | str, found: int | str) -> str:
    return f"a row has {found} fields where the header has {expected} (a ragged row or a cut-off line)"


def engine_cause(text: str) -> str:
    """The cause of an engine error, as one clause the user can act on."""
    columns = _COLUMNS.search(text)
    if columns:
        return _columns_cause(*columns.groups())
    # DuckDB's own words only: its "possible fixes" name every option whatever the cause.
    low = text.split("Possible fix")[0].lower()
    for fragment, cause in _CAUSES:
        if fragment in low:
            return cause
    return _PREFIX.sub("", error_line(Exception(text)))


def locate_csv_defect(path: Path) -> tuple[int, str] | None:
    """The first line of a CSV file that breaks the table, and why: DuckDB's sniffer gives up on a bad
    row in its sample without naming it, so the line is found here. None when none is found."""
    try:
        if path.stat().st_size > LOCATE_MAX_BYTES:
            return None
        data = path.read_bytes()
        data = gzip.decompress(data) if path.name.lower().endswith(".gz") else data
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return data.count(b"\n", 0, e.start) + 1, "it is not UTF-8 text; save the file as UTF-8"
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:
            return start, 'a quoted value is never closed (a stray " or a file cut short)'
        if reader.line_num - start == 0 and len(",".join(row)) > MAX_LINE_BYTES:
            return start, "a line is longer than a CSV row can be; check that the file is a CSV table"
        if header is None:
            header = row
        elif row and len(row) != len(header):
            return start, _columns_cause(len(header), len(row))
    return None


def engine_message(where: str, exc: BaseException) -> str:
    """One sentence for an engine error while reading `where` (a table as messages name it)."""
    text = str(exc)
    line = _LINE.search(text)
    named = _FILE.search(text) or _SNIFFED.search(text)
    file = f" ({named.group(1)})" if named else ""
    at = f" at line {int(line.group(1)):,}" if line else ""
    cause = engine_cause(text)
    found = locate_csv_defect(Path(named.group(1))) if named and not line and _SNIFFED.search(text) else None
    if found is not None:
        at, cause = f" at line {found[0]:,}", found[1]
    return f"{where}: cannot be read{at}{file}: {cause}"


@contextlib.contextmanager
def engine_errors(where: str) -> Iterator[None]:
    """Run DuckDB statements about `where`; an engine error is an InputError of one sentence."""
    try:
        yield
    except duckdb.InterruptException:
        raise KeyboardInterrupt from None
    except duckdb.Error as exc:
        raise InputError(engine_message(where, exc)) from None
