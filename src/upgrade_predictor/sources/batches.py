"""Reading a file as Arrow record batches of the needed columns, a block at a time: CSV cells as text
(cast per batch, so a bad cell rejects one row) and only empty cells missing; Parquet as stored."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .. import config
from ..errors import InputError
from .columns import SCORING_HINT, check_arrow_types, check_unique_names, require_columns
from .formats import check_file, header_raw, is_gzip, is_parquet, sniff_delimiter
from .messages import error_line

BLOCK_BYTES = 8 << 20  # CSV bytes per Arrow record batch (~0.4M rows of this data)
BATCH_ROWS = 65_536 * 8  # Parquet rows per record batch


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
    raw_header = header_raw(path, delim)
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
