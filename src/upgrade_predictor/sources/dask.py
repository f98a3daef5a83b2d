"""An input read as a Dask dataframe, with the rules of the batch reader."""

from __future__ import annotations

from typing import Any

from .. import config
from .inputs import Inputs


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
