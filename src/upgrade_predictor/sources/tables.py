"""The one reader of tables: CSV (delimiter sniffed) or Parquet, whole or as Arrow record batches.

Training, batch scoring, drift checks and the Dask path all read through here, so every reader shares
one missing-value rule (only an empty cell is missing: the country code "NA" is Namibia) and one
missing-column message.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .. import config
from ..errors import InputError
from ..schema import Schema

BLOCK_BYTES = 8 << 20  # CSV bytes per Arrow record batch (~0.4M rows of this data)
BATCH_ROWS = 65_536 * 8  # Parquet rows per record batch


def check_file(path: str | Path) -> Path:
    """The path of a readable, non-empty data file, or an InputError saying what is wrong."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a data file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    return path


def is_parquet(path: Path) -> bool:
    if path.suffix.lower() in {".parquet", ".pq"}:
        return True
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


def sniff_delimiter(path: Path) -> str:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        head = f.read(64 * 1024)
    try:
        return csv.Sniffer().sniff(head, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def file_fingerprint(path: Path) -> str:
    """sha256 of the file's bytes: a run names exactly the data it was trained on."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def csv_header(path: Path, delimiter: str) -> list[str]:
    """The column names of a CSV file, stripped."""
    return [c.strip() for c in _header_raw(path, delimiter)]


def _header_raw(path: Path, delimiter: str) -> list[str]:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return next(csv.reader(f, delimiter=delimiter), [])


def columns_of(path: Path) -> list[str]:
    """The column names of a CSV or Parquet file, without reading its rows."""
    path = check_file(path)
    if is_parquet(path):
        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"{path}: cannot be read as Parquet ({e})") from None
    return csv_header(path, sniff_delimiter(path))


def require_columns(where: str | Path, available: Iterable[str], needed: list[str]) -> None:
    """The one missing-column check: every reader and the service name the same columns the same way."""
    have = list(available)
    missing = [c for c in needed if c not in set(have)]
    if missing:
        raise InputError(
            f"{where}: missing column(s) {', '.join(missing)}; the model needs {', '.join(needed)} "
            f"(found {', '.join(have[:12])}{', ...' if len(have) > 12 else ''})"
        )


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a whole CSV (delimiter sniffed) or Parquet file, keeping codes such as "NA" as values."""
    path = check_file(path)
    try:
        if is_parquet(path):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(
                path,
                sep=sniff_delimiter(path),
                keep_default_na=False,
                na_values=config.NA_VALUES,
                skipinitialspace=True,
            )
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        OSError,
        ValueError,
    ) as e:
        raise InputError(f"{path}: cannot be read as CSV or Parquet ({str(e).splitlines()[0]})") from None
    if df.shape[1] == 0 or len(df) == 0:
        raise InputError(f"{path}: the file has no data rows")
    df.columns = [str(c).strip() for c in df.columns]
    return df


class _CountingFile:
    """A read-only file wrapper that counts bytes read, for a progress bar over Arrow's reader."""

    def __init__(self, path: Path, on_read: Callable[[int], None]):
        self._f = open(path, "rb")
        self._on_read = on_read
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        b = self._f.read(n)
        self._on_read(len(b))
        return b

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._f.close()
        self.closed = True


def iter_batches(
    path: str | Path, columns: list[str], on_read: Callable[[int], None] | None = None
) -> Iterator[pa.RecordBatch]:
    """Arrow record batches of the needed columns; CSV cells are read as text (cast per batch, so a
    bad cell rejects one row instead of failing the whole read) and only empty cells are missing."""
    path = check_file(path)
    if is_parquet(path):
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"{path}: cannot be read as Parquet ({e})") from None
        require_columns(path, pf.schema_arrow.names, columns)
        total = max(pf.metadata.num_rows, 1)
        for b in pf.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            if on_read:
                on_read(int(path.stat().st_size * b.num_rows / total))
            yield b
        return
    delim = sniff_delimiter(path)
    require_columns(path, csv_header(path, delim), columns)
    raw_names = {c.strip(): c for c in _header_raw(path, delim)}
    source = _CountingFile(path, on_read) if on_read else str(path)
    try:
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(delimiter=delim),
            convert_options=pacsv.ConvertOptions(
                include_columns=[raw_names[c] for c in columns],
                column_types={raw_names[c]: pa.string() for c in columns},
                null_values=config.NA_VALUES,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        while True:
            try:
                b = reader.read_next_batch()
            except StopIteration:
                break
            yield b.rename_columns(columns)  # include_columns keeps this order; names unstripped
    except pa.ArrowInvalid as e:
        raise InputError(f"{path}: cannot be read as CSV ({str(e).splitlines()[0]})") from None


def batch_to_frame(batch: pa.RecordBatch | pa.Table, schema: Schema) -> pd.DataFrame:
    """Arrow text columns to the frame validate_rows expects: numbers cast in Arrow when they all parse."""
    cols = {}
    for col in schema.columns:
        arr = batch.column(col.name)
        if col.kind == "numeric" and pa.types.is_string(arr.type):
            try:
                arr = pc.cast(arr, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass  # validate_rows names the bad cells of this batch
        cols[col.name] = arr
    table = pa.table(cols)
    return table.to_pandas(split_blocks=True, self_destruct=True)


GLOB_CHARS = set("*?[")


def input_files(data: str | Path) -> tuple[list[str], bool]:
    """The input's files (a file, a folder of part files, or a glob) in name order, and whether they
    are Parquet; a folder with no data file or with mixed formats is refused."""
    data = str(data)
    if GLOB_CHARS & set(data):
        files = sorted(glob.glob(data))
        if not files:
            raise InputError(f"{data}: no file matches")
    elif Path(data).is_dir():
        files = sorted(
            str(p) for p in Path(data).iterdir() if p.is_file() and not p.name.startswith((".", "_"))
        )
        if not files:
            raise InputError(f"{data}: the folder holds no data files")
    elif Path(data).exists():
        files = [data]
    else:
        raise InputError(f"{data}: no such file")
    empty = [f for f in files if os.path.getsize(f) == 0]
    if empty:
        raise InputError(f"{empty[0]}: the file is empty")
    kinds = {is_parquet(Path(f)) for f in files}
    if len(kinds) > 1:
        raise InputError(f"{data}: mixes Parquet and CSV files; score them separately")
    return files, kinds.pop()
