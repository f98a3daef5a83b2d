"""One input of several files: a file, a folder of parts or a glob, its parts in name order and all of
one format (and, for CSV, one delimiter)."""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ..errors import InputError
from .batches import iter_batches
from .columns import SCORING_HINT, check_arrow_types, require_columns
from .formats import (
    PARQUET_SUFFIXES,
    check_file,
    columns_of,
    csv_header,
    is_gzip,
    is_parquet,
    parquet_schema,
    sniff_delimiter,
)

DATA_SUFFIXES = (*PARQUET_SUFFIXES, ".csv", ".tsv", ".csv.gz", ".tsv.gz")  # what a folder's parts end in
GLOB_CHARS = set("*?[")


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
