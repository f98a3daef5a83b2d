"""Reading a whole table into pandas, for training: CSV or Parquet, codes such as "NA" kept as values,
and only columns a model can learn from (numbers, text, flags)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa

from .. import config
from ..errors import InputError
from .columns import UNUSABLE, arrow_kind, check_unique_names, unusable_column
from .formats import GZIP_ERRORS, check_file, csv_header, is_gzip, is_parquet, parquet_schema, sniff_delimiter
from .messages import error_line, excerpt, shown_name


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
