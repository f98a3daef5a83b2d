"""What runs on a Dask worker when scoring a partitioned data set: each input partition scored by the
single-machine functions, per-partition tops merged, ranked parts finished with global ranks and row
numbers. The client side is cluster.py."""

from __future__ import annotations

import hashlib
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import InputError
from ..files import write_atomic
from ..schema import batch_to_frame
from .batch import carried_columns, ranked_schema, reject_table
from .scorer import Columns, Scorer, rank_order

# Staged columns, named apart from any input column.
PART, LOCAL, P, D = "__part", "__local", "__p", "__d"

_SCORERS: dict[str, Scorer] = {}  # per worker process: bundle sha256 -> Scorer, loaded once per worker
_SCORERS_LOCK = threading.Lock()


def score_partition(
    frame: pd.DataFrame,
    part: int,
    bundle_bytes: bytes,
    digest: str,
    paths: tuple[str, str, str],
    cols: Columns,
    keep: int | None,
) -> dict[str, Any]:
    """Score one input partition on a worker with the single-machine functions (batch_to_frame,
    Scorer.score_frame); write its scored rows (unless only the top N is kept), its rejects and ids."""
    stage, rejects_stage, ids_stage = (Path(p) for p in paths)
    scorer = _worker_scorer(bundle_bytes, digest)
    batch = pa.Table.from_pandas(frame, preserve_index=False)  # batch_to_frame takes tables too
    del frame
    scored = scorer.score_frame(batch_to_frame(batch, scorer.schema))
    n = batch.num_rows
    local = np.arange(n, dtype=np.int64)
    valid = scored.valid
    staged = {
        PART: pa.array(np.full(int(valid.sum()), part, dtype=np.int32)),
        LOCAL: pa.array(local[valid]),
        P: pa.array(scored.probability, pa.float64()),
        D: pa.array(scored.decision, pa.int8()),
        **carried_columns(batch, valid, cols.carried),
    }
    ids_present = 0
    if cols.id:  # every row's id, for the count of repeated ids
        ids = pc.cast(batch.column(cols.id), pa.string())
        ids_present = len(ids) - ids.null_count
        if n:
            write_parquet(pa.table({cols.id: ids}), ids_stage / part_name(part))
    table = pa.table(staged)
    top = None
    if keep is not None:
        top = table.take(pa.array(rank_order(scored.probability)[:keep]))
    elif table.num_rows:
        write_parquet(table, stage / part_name(part))
    bad = ~valid
    if bad.any():
        keys = {
            PART: pa.array(np.full(int(bad.sum()), part, dtype=np.int32)),
            LOCAL: pa.array(local[bad]),
        }
        write_parquet(reject_table(batch, bad, scored.rows, keys, cols.id), rejects_stage / part_name(part))
    return {
        "part": part,
        "rows": n,
        "accepted": int(valid.sum()),
        "rejected": int(bad.sum()),
        "reasons": scored.rows.counts(),
        "ids": ids_present,
        "top": top,
    }


def merge_tops(items: list[Any], keep: int) -> pa.Table:
    """The best `keep` rows of several partitions' top rows (given in partition order)."""
    tables = [i["top"] if isinstance(i, dict) else i for i in items]
    merged = pa.concat_tables(tables)  # each in rank order, partitions in input order: ties keep it
    return merged.take(pa.array(rank_order(merged.column(P).to_numpy())[:keep]))


def finalize_partition(
    src: str | pa.Table,
    dst: str,
    first_rank: int,
    row_offsets: np.ndarray,
    carried: list[str],
    last_rank: int = sys.maxsize,
) -> int:
    """A ranked partition (a file, or a table) as the single-machine list: row, [id], probability,
    decision, rank."""
    t = src if isinstance(src, pa.Table) else pq.read_table(src)
    t = t.slice(0, max(0, min(t.num_rows, last_rank - first_rank + 1)))
    row = row_offsets[t.column(PART).to_numpy()] + t.column(LOCAL).to_numpy()
    cols = {"row": pa.array(row, pa.int64())}
    for name in carried:
        cols[name] = t.column(name)
    cols["probability"] = t.column(P)
    cols["decision"] = t.column(D)
    cols["rank"] = pa.array(np.arange(first_rank, first_rank + t.num_rows, dtype=np.int64))
    write_parquet(pa.table(cols, schema=ranked_schema(carried)), Path(dst))
    return t.num_rows


def finalize_rejects(src: str, dst: str, row_offsets: np.ndarray) -> int:
    """Rejected rows as the single-machine rejects file: row, [id], the cells as text, column, reason."""
    t = pq.read_table(src)
    row = row_offsets[t.column(PART).to_numpy()] + t.column(LOCAL).to_numpy()
    t = t.drop_columns([PART, LOCAL])
    write_parquet(t.add_column(0, "row", pa.array(row, pa.int64())), Path(dst))
    return t.num_rows


def _worker_scorer(bundle_bytes: bytes, digest: str) -> Scorer:
    """The worker's Scorer for this bundle, loaded from its skops bytes once per worker process."""
    with _SCORERS_LOCK:
        scorer = _SCORERS.get(digest)
        if scorer is None:
            if hashlib.sha256(bundle_bytes).hexdigest() != digest:
                raise InputError("the model bundle changed on its way to a worker")
            with tempfile.TemporaryDirectory() as d:
                path = Path(d) / "model.zip"
                path.write_bytes(bundle_bytes)
                try:
                    scorer = Scorer.load(path)
                except InputError as e:  # e.g. a worker with other library versions than the client
                    raise InputError(f"on a Dask worker ({socket.gethostname()}): {e}") from None
            _SCORERS.clear()  # one bundle at a time per worker
            _SCORERS[digest] = scorer
        return scorer


def part_name(i: int) -> str:
    return f"part-{i:05d}.parquet"  # zero-padded: name order is partition order


def write_parquet(table: pa.Table, path: Path) -> None:
    write_atomic(path, lambda f: pq.write_table(table, f))
