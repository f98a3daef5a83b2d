"""What a data file is, read from its first bytes: CSV (delimiter sniffed, plain or gzipped) or Parquet,
refusing binary or otherwise compressed content; its header, its columns and its fingerprint."""

from __future__ import annotations

import csv
import gzip
import hashlib
import unicodedata
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from .columns import check_unique_names
from .messages import error_line

SNIFF_BYTES = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_SUFFIXES = (".parquet", ".pq")
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
    names = [c.strip() for c in header_raw(path, delimiter)]
    check_unique_names(path, names)
    return names


def header_raw(path: Path, delimiter: str) -> list[str]:
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
