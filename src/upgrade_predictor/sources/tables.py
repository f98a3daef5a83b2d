"""The one reader of tables: CSV (delimiter sniffed, plain or gzipped) or Parquet, whole, as Arrow record
batches, or as a Dask dataframe.

Training, batch scoring, drift checks and the Dask path all read through here, so every reader shares
one input rule (a file, a folder of parts or a glob, parts in name order), one missing-value rule (only
an empty cell is missing: the country code "NA" is Namibia), one missing-column message, one refusal of
duplicated column names and of binary or otherwise compressed content, and one rule for Parquet types
(`arrow_kind`): numbers and text are data; lists, records and raw bytes are refused by column name; true/false
flags and dates are not numbers. Text from a file reaches a message only as a short escaped `excerpt`.
"""

from __future__ import annotations

import csv
import glob
import gzip
import hashlib
import unicodedata
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .. import config
from ..errors import InputError

if TYPE_CHECKING:  # schema.py imports require_columns from here
    from ..schema import Schema

BLOCK_BYTES = 8 << 20  # CSV bytes per Arrow record batch (~0.4M rows of this data)
BATCH_ROWS = 65_536 * 8  # Parquet rows per record batch
SNIFF_BYTES = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_SUFFIXES = (".parquet", ".pq")
DATA_SUFFIXES = (*PARQUET_SUFFIXES, ".csv", ".tsv", ".csv.gz", ".tsv.gz")  # what a folder's parts end in
GLOB_CHARS = set("*?[")
GZIP_ERRORS = (gzip.BadGzipFile, zlib.error, EOFError)
# Other compressed or archive formats, known by their first bytes: named, never read as text.
OTHER_MAGIC = {
    b"BZh": "bzip2-compressed",
    b"\xfd7zXZ\x00": "xz-compressed",
    b"PK\x03\x04": "a zip archive",
    b"\x28\xb5\x2f\xfd": "zstd-compressed",
    b"7z\xbc\xaf\x27\x1c": "a 7z archive",
}
BINARY_SHARE = 0.01  # undecodable or control characters in the head beyond this share: not text
EXCERPT_CHARS = 40  # file text quoted in a message is cut here


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """A cell or name from a file, quoted and escaped for a message: control and undecodable characters
    as escapes (Python's repr), cut after `limit` characters."""
    text = str(value)
    shown = repr(text[:limit])
    return shown if len(text) <= limit else f"{shown[:-1]}...{shown[-1]}"


def shown_name(name: object) -> str:
    """A column name for a message: as it is when short and printable, else an excerpt."""
    text = str(name)
    return text if len(text) <= EXCERPT_CHARS and text.isprintable() and text.strip() else excerpt(text)


def check_unique_names(where: str | Path, names: Iterable[str]) -> None:
    """Refuse duplicated column names: a reader would rename or pick one copy silently."""
    counts = Counter(names)
    dups = [n for n, k in counts.items() if k > 1]
    if dups:
        listed = ", ".join(f"{shown_name(n)} ({counts[n]} times)" for n in dups[:5])
        raise InputError(
            f"{where}: duplicated column name(s) {listed}; give every column its own name "
            "(rename or drop the copies)"
        )


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


def _magic(path: Path, n: int = 4) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES or _magic(path) == b"PAR1"


def is_gzip(path: Path) -> bool:
    """Whether the file is gzip-compressed (by its first bytes, whatever its name)."""
    return _magic(path)[:2] == GZIP_MAGIC


def _head_text(path: Path) -> str:
    """The first characters of a CSV file's text (decompressed), refusing binary content."""
    head_bytes = _magic(path, 8)
    other = next((what for magic, what in OTHER_MAGIC.items() if head_bytes.startswith(magic)), None)
    if other:
        raise InputError(
            f"{path}: is {other}, not CSV text; decompress it, or give a CSV, .csv.gz or Parquet file"
        )
    try:
        if is_gzip(path):
            with gzip.open(path, "rt", newline="", encoding="utf-8", errors="replace") as f:
                head = f.read(SNIFF_BYTES)
        else:
            with open(path, newline="", encoding="utf-8", errors="replace") as f:
                head = f.read(SNIFF_BYTES)
    except GZIP_ERRORS as e:
        raise InputError(f"{path}: cannot be read as gzip-compressed CSV ({e})") from None
    if "\x00" in head or _noise(head) > BINARY_SHARE * len(head):  # its header would be noise
        raise InputError(f"{path}: holds binary data, not CSV text; give a CSV, .csv.gz or Parquet file")
    return head


def _noise(text: str) -> int:
    """Characters of decoded text that no CSV holds: undecodable bytes and control characters (spaces
    such as a no-break space are text)."""
    return sum(
        text.count(c)
        for c in set(text)
        if c == "\ufffd" or (unicodedata.category(c) == "Cc" and c not in "\t\r\n")
    )


def sniff_delimiter(path: Path) -> str:
    try:
        return csv.Sniffer().sniff(_head_text(path), delimiters=",;\t|").delimiter
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
    """The column names of a CSV file, stripped; duplicated names are refused."""
    names = [c.strip() for c in _header_raw(path, delimiter)]
    check_unique_names(path, names)
    return names


def _header_raw(path: Path, delimiter: str) -> list[str]:
    return next(csv.reader(_head_text(path).splitlines(), delimiter=delimiter), [])


def columns_of(path: Path) -> list[str]:
    """The column names of a CSV or Parquet file, without reading its rows."""
    path = check_file(path)
    if is_parquet(path):
        names = list(parquet_schema(path).names)
        check_unique_names(path, names)
        return names
    return csv_header(path, sniff_delimiter(path))


def parquet_schema(path: Path) -> pa.Schema:
    """The Arrow schema of a Parquet file, or an InputError."""
    try:
        return pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{path}: cannot be read as Parquet ({error_line(e)})") from None


# --- Arrow types per column ---------------------------------------------------------------------------

UNUSABLE = {"nested": "lists or records", "bytes": "raw bytes"}
SCORING_HINT = "write it as one number or code per cell, as in the training data"


def arrow_kind(t: pa.DataType) -> str:
    """What a column of this Arrow type holds, for the input rules: "number", "text", "flag" (true/false),
    "time" (dates, times, durations), "empty" (only nulls), "bytes" or "nested" (lists, records, maps,
    anything else, which no cell of a CSV can hold)."""
    if pa.types.is_dictionary(t):
        return arrow_kind(t.value_type)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "text"
    if pa.types.is_boolean(t):
        return "flag"
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_duration(t):
        return "time"
    if pa.types.is_null(t):
        return "empty"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytes"
    return "nested"


def unusable_column(where: str | Path, name: str, t: pa.DataType, hint: str) -> InputError:
    """The error for a column whose cells are not single values."""
    return InputError(
        f"{where}: column {excerpt(name)} holds {UNUSABLE.get(arrow_kind(t), str(t))} (Parquet type "
        f"{shown_name(t)}), not one number or code per cell; {hint}"
    )


def check_arrow_types(where: str | Path, schema: pa.Schema, columns: Iterable[str], hint: str) -> None:
    """Refuse the first of `columns` whose cells are lists, records or raw bytes."""
    for name in columns:
        t = schema.field(name).type
        if arrow_kind(t) in UNUSABLE:
            raise unusable_column(where, name, t, hint)


def require_columns(where: str | Path, available: Iterable[str], needed: list[str]) -> None:
    """The one missing-column check: every reader and the service name the same columns the same way."""
    have = list(available)
    missing = [c for c in needed if c not in set(have)]
    if missing:
        found = ", ".join(shown_name(c) for c in have[:12])
        raise InputError(
            f"{where}: missing column(s) {', '.join(missing)}; the model needs {', '.join(needed)} "
            f"(found {found}{', ...' if len(have) > 12 else ''})"
        )


def error_line(e: BaseException, limit: int = 160) -> str:
    """An error's first line, bounded and escaped: a parse error quotes the offending row."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    text = text if text.isprintable() else repr(text)[1:-1]
    return text if len(text) <= limit else text[:limit] + " ..."


def read_table(path: str | Path, unchecked: Iterable[str] = ()) -> pd.DataFrame:
    """Read a whole CSV (delimiter sniffed, plain or gzipped) or Parquet file, keeping codes such as "NA"
    as values. Duplicated column names are refused, and so are Parquet columns of lists, records, raw
    bytes or dates, except those named in `unchecked` (columns the caller leaves out)."""
    path = check_file(path)
    parquet = is_parquet(path)
    if parquet:
        schema = parquet_schema(path)
        check_unique_names(path, [n.strip() for n in schema.names])
        skip = set(unchecked)
        for name in schema.names:
            if name.strip() not in skip:
                _check_training_type(path, name.strip(), schema.field(name).type)
    else:
        delimiter = sniff_delimiter(path)
        csv_header(path, delimiter)  # refuses duplicated names before pandas renames them "name.1"
    try:
        if parquet:
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(
                path,
                sep=delimiter,
                keep_default_na=False,
                na_values=config.NA_VALUES,
                skipinitialspace=True,
                compression="gzip" if is_gzip(path) else None,
            )
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        OSError,
        ValueError,
        *GZIP_ERRORS,
    ) as e:
        raise InputError(f"{path}: cannot be read as CSV or Parquet ({error_line(e)})") from None
    if df.shape[1] == 0 or len(df) == 0:
        raise InputError(f"{path}: the file has no data rows")
    df.columns = [str(c).strip() for c in df.columns]
    check_unique_names(path, df.columns)  # names equal once stripped
    return df


def _check_training_type(path: Path, name: str, t: pa.DataType) -> None:
    """A column a model can learn from holds numbers, text or flags, one per cell."""
    kind = arrow_kind(t)
    if kind in UNUSABLE:
        raise unusable_column(path, name, t, f"leave it out with --exclude {name} or flatten it")
    if kind == "time":
        raise InputError(
            f"{path}: column {excerpt(name)} holds dates or times (Parquet type {shown_name(t)}), which "
            f"a model cannot use as they are; derive a number from it (such as days since) or pass "
            f"--exclude {name}"
        )


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


def _csv_source(path: Path, on_read: Callable[[int], None] | None) -> Any:
    """What Arrow's CSV reader reads: the file, counted for progress (in file bytes), decompressed."""
    if on_read is None:
        raw: Any = pa.OSFile(str(path))
    else:
        raw = pa.PythonFile(_CountingFile(path, on_read), mode="r")
    return pa.CompressedInputStream(raw, "gzip") if is_gzip(path) else raw


def iter_batches(
    path: str | Path,
    columns: list[str],
    on_read: Callable[[int], None] | None = None,
    delimiter: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """Arrow record batches of the needed columns; CSV cells are read as text (cast per batch, so a
    bad cell rejects one row instead of failing the whole read) and only empty cells are missing."""
    path = check_file(path)
    if is_parquet(path):
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"{path}: cannot be read as Parquet ({error_line(e)})") from None
        check_unique_names(path, pf.schema_arrow.names)
        require_columns(path, pf.schema_arrow.names, columns)
        check_arrow_types(path, pf.schema_arrow, columns, SCORING_HINT)
        total = max(pf.metadata.num_rows, 1)
        for b in pf.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            if on_read:
                on_read(int(path.stat().st_size * b.num_rows / total))
            yield b
        return
    delim = delimiter or sniff_delimiter(path)
    raw_header = _header_raw(path, delim)
    check_unique_names(path, [c.strip() for c in raw_header])
    require_columns(path, [c.strip() for c in raw_header], columns)
    raw_names = {c.strip(): c for c in raw_header}
    kind = "gzip-compressed CSV" if is_gzip(path) else "CSV"
    try:
        reader = pacsv.open_csv(
            _csv_source(path, on_read),
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
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{path}: cannot be read as {kind} ({error_line(e)})") from None


def batch_to_frame(batch: pa.RecordBatch | pa.Table, schema: Schema) -> pd.DataFrame:
    """The frame validate_rows expects, checked per column by Arrow type (vectorised, once per batch).

    Numeric columns: numbers pass; text is cast in Arrow when every cell parses as a finite-or-infinite
    number (a "NaN" text is not a missing cell: such batches stay text, so validate_rows names the cell);
    true/false flags and dates become text, so validate_rows rejects their rows as not numbers, as it
    does text in a number column (and the service does). Categorical columns: text, numbers and flags
    are codes; dates are refused (training never learns codes from them). Lists, records and raw bytes
    are refused by column name."""
    cols = {}
    for col in schema.columns:
        arr = batch.column(col.name)
        if pa.types.is_dictionary(arr.type):
            arr = pc.cast(arr, arr.type.value_type)
        kind = arrow_kind(arr.type)
        if kind in UNUSABLE:
            raise unusable_column("the input", col.name, arr.type, SCORING_HINT)
        if col.kind == "numeric":
            arr = _numeric_cells(arr, kind)
        elif kind == "time":
            raise InputError(
                f"the input: column {excerpt(col.name)} holds dates or times (type {shown_name(arr.type)}), "
                "but the model reads it as codes; write it as text, as in the training data"
            )
        cols[col.name] = arr
    table = pa.table(cols)
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _numeric_cells(arr: Any, kind: str) -> Any:
    """One numeric column of a batch as float64 when it holds numbers, else as text for validate_rows."""
    if kind == "number":
        return (
            arr
            if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)
            else pc.cast(arr, pa.float64())
        )
    if kind == "empty":
        return pa.nulls(len(arr), pa.float64())
    if kind != "text":  # flags and dates: text, which validate_rows names as not a number
        return pc.cast(arr, pa.string())
    try:
        cast = pc.cast(arr, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return arr  # validate_rows names the bad cells of this batch
    return arr if pc.any(pc.is_nan(cast)).as_py() else cast


# --- inputs of several files -----------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """The files of one input (a file, a folder of parts or a glob) in name order, all of one format."""

    source: str  # as the user gave it
    files: list[Path]
    format: str  # "parquet", "csv" or "csv.gz"
    delimiter: str | None  # CSV only: the same in every file

    @property
    def parquet(self) -> bool:
        return self.format == "parquet"

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.files)

    def columns(self) -> list[str]:
        """The first file's columns (every file must hold the needed ones: `require`)."""
        return self.header(self.files[0])

    def header(self, path: Path) -> list[str]:
        if self.parquet:
            return columns_of(path)
        return csv_header(path, self.delimiter or ",")

    def require(self, needed: list[str]) -> None:
        """Every file holds the needed columns under names of their own, and (Parquet) none of them holds
        lists, records or raw bytes: a part that fails fails here, before any work."""
        for f in self.files:
            require_columns(f, self.header(f), needed)
            if self.parquet:
                check_arrow_types(f, parquet_schema(f), needed, SCORING_HINT)

    def batches(
        self, columns: list[str], on_read: Callable[[int], None] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of every file in name order."""
        for f in self.files:
            yield from iter_batches(f, columns, on_read, self.delimiter)


def _format(path: Path) -> str:
    if is_parquet(path):
        return "parquet"
    return "csv.gz" if is_gzip(path) else "csv"


def _visible(paths: Iterable[Path]) -> list[Path]:
    """Files whose names do not mark them as hidden or as bookkeeping (_SUCCESS, _metadata)."""
    return sorted(p for p in paths if p.is_file() and not p.name.startswith((".", "_")))


def input_files(data: str | Path) -> Inputs:
    """The input's files (a file, a folder of part files, or a glob) in name order, of one format; a
    folder with no data file or with mixed formats is refused, as are empty files."""
    data = str(data)
    if GLOB_CHARS & set(data):
        files = _visible(Path(p) for p in glob.glob(data))
        if not files:
            raise InputError(f"{data}: no file matches")
    elif Path(data).is_dir():
        files = [p for p in _visible(Path(data).iterdir()) if p.name.lower().endswith(DATA_SUFFIXES)]
        if not files:
            raise InputError(
                f"{data}: the folder holds no data file ({', '.join(DATA_SUFFIXES)}); "
                "give a folder of CSV or Parquet parts"
            )
    else:
        files = [check_file(data)]
    for f in files:
        check_file(f)
    kinds = {f: _format(f) for f in files}
    formats = sorted(set(kinds.values()))
    if len(formats) > 1:
        first = {k: next(f for f in files if kinds[f] == k) for k in formats}
        raise InputError(
            f"{data}: mixes formats ({'; '.join(f'{first[k].name} is {k}' for k in formats)}); "
            "score one format at a time"
        )
    delimiter = None
    if formats[0] != "parquet":
        delims = {f: sniff_delimiter(f) for f in files}
        delimiter = delims[files[0]]
        other = next((f for f in files if delims[f] != delimiter), None)
        if other is not None:
            raise InputError(
                f"{other}: separates cells with {delims[other]!r} but {files[0].name} with "
                f"{delimiter!r}; give parts written alike"
            )
    return Inputs(data, files, formats[0], delimiter)


def read_dask(inputs: Inputs, columns: list[str], blocksize: str | int | None) -> Any:
    """The input as a Dask dataframe of the needed columns, read with the rules of iter_batches: CSV
    cells as text, only empty cells missing ("NA" is Namibia). Gzipped CSV cannot be split: one
    partition per file."""
    import dask.dataframe as dd

    files = [str(f) for f in inputs.files]
    if inputs.parquet:
        return dd.read_parquet(files, columns=columns, blocksize=blocksize, split_row_groups="infer")
    wanted = set(columns)
    ddf = dd.read_csv(
        files,
        sep=inputs.delimiter or ",",
        dtype=str,
        keep_default_na=False,
        na_values=config.NA_VALUES,
        blocksize=None if inputs.format == "csv.gz" else blocksize,
        compression="gzip" if inputs.format == "csv.gz" else None,
        usecols=lambda c: str(c).strip() in wanted,
    )
    return ddf.rename(columns=lambda c: str(c).strip())[columns]
