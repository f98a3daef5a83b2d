"""Batch scoring of a file, folder or glob into a ranked target list and a rejects file, streamed in
Arrow batches."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .. import config
from ..errors import InputError
from ..files import write_atomic
from ..schema import ValidatedRows, batch_to_frame
from ..sources.inputs import Inputs, input_files
from .scorer import Columns, Scorer, TopReasons, rank_order, selected_count

T = TypeVar("T")


@dataclass
class BatchResult:
    """What a scoring run wrote and counted."""

    out: Path
    rejects: Path
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    written: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    id_column: str | None = None  # carried to the outputs; None: rows are known by their number
    files: int = 1  # the input's parts; row numbers run across them in name order
    duplicate_ids: int = 0  # rows whose id an earlier row already had (all are kept)

    @property
    def reject_share(self) -> float:
        return self.rejected / self.rows if self.rows else 0.0

    def add_reasons(self, counts: dict[str, int]) -> None:
        for text, count in counts.items():
            self.reject_reasons[text] = self.reject_reasons.get(text, 0) + count


def _prefetch(it: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Run an iterator in a thread: Arrow parses the next batch while this one is scored."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def run() -> None:
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # re-raised in the consumer
            q.put(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def score_file(
    scorer: Scorer,
    data: str | Path,
    out: str | Path,
    *,
    rejects: str | Path | None = None,
    top: int | None = None,
    budget: float | None = None,
    offer_cost: float | None = None,
    explain: bool = False,
    id_column: str | None = None,
    carry: Sequence[str] = (),
    workers: int = config.SCORE_WORKERS,
    progress: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Score a CSV/Parquet file, folder of parts or glob into a ranked list (CSV or Parquet by --out's
    suffix) and a rejects file. Rows are numbered from 0 across the parts in name order; the id column
    and the `carry` columns are written beside them, as text.

    Both files appear only when the whole run succeeded (temp file, then rename)."""
    inputs = input_files(data)
    out = Path(out)
    rejects = Path(rejects) if rejects else default_rejects_path(out)
    if out.exists() and out.is_dir():
        raise InputError(f"{out}: is a folder; give a file name ending in .csv or .parquet")
    inputs_resolved = {f.resolve() for f in inputs.files}
    if out.resolve() in inputs_resolved or rejects.resolve() in inputs_resolved:
        raise InputError(f"{out}: the output would overwrite the input file")
    if explain:
        scorer.require_explain()
    offer_cost = scorer.offer_cost if offer_cost is None else offer_cost
    selected_count(1, top, budget, offer_cost)  # argument errors before any work
    cols = scorer.columns_for(inputs, id_column, carry)
    inputs.require(cols.read)
    result = BatchResult(out, rejects, id_column=cols.id, files=len(inputs.files))

    def run(rejects_file: IO[bytes], out_file: IO[bytes]) -> None:
        ranked = _scan(scorer, inputs, cols, explain, workers, progress, result, rejects_file)
        keep = rank_order(ranked.p)[: selected_count(len(ranked.p), top, budget, offer_cost)]
        result.written = _write_ranked(out_file, out, keep, ranked)

    write_atomic(rejects, lambda rf: write_atomic(out, lambda of: run(rf, of)))
    return result


def default_rejects_path(out: Path) -> Path:
    return out.with_name(out.stem + ".rejects.csv")


@dataclass
class _Ranked:
    """The accepted rows of every batch, in input order."""

    p: np.ndarray
    decision: np.ndarray
    row: np.ndarray
    carried: dict[str, pa.ChunkedArray]
    top: TopReasons | None


@dataclass
class _Part:
    """One batch scored, reduced to what the outputs need (its frames are freed at once)."""

    rows: int
    p: np.ndarray
    decision: np.ndarray
    row: np.ndarray  # input row numbers of the accepted rows
    carried: dict[str, pa.Array]  # the carried columns of the accepted rows, as text
    top: TopReasons | None
    rejects: pa.Table | None
    reasons: dict[str, int]


def _score_batch(scorer: Scorer, batch: pa.RecordBatch, start: int, cols: Columns, explain: bool) -> _Part:
    """Score one batch with Scorer.score_frame; its accepted rows and its rejects table."""
    scored = scorer.score_frame(batch_to_frame(batch, scorer.schema), explain=explain)
    idx = np.arange(start, start + batch.num_rows, dtype=np.int64)
    valid = scored.valid
    bad = ~valid
    rejects = None
    if bad.any():
        rejects = reject_table(batch, bad, scored.rows, {"row": pa.array(idx[bad])}, cols.id)
    return _Part(
        batch.num_rows,
        scored.probability,
        scored.decision,
        idx[valid],
        carried_columns(batch, valid, cols.carried),
        scored.top,
        rejects,
        scored.rows.counts(),
    )


class _Collector:
    """Takes scored batches in input order: counts them into the result, writes their rejects, keeps the rest."""

    def __init__(self, result: BatchResult, cols: Columns, rejects_file: IO[bytes]) -> None:
        self.result, self.cols, self.rejects_file = result, cols, rejects_file
        self.kept: list[_Part] = []
        self.rejected_ids: list[pa.ChunkedArray] = []
        self.writer: pacsv.CSVWriter | None = None

    def add(self, part: _Part) -> None:
        self.result.rows += part.rows
        self.result.accepted += len(part.p)
        if part.rejects is not None:
            self.result.rejected += part.rejects.num_rows
            self.result.add_reasons(part.reasons)
            if self.cols.id:
                self.rejected_ids.append(part.rejects.column(self.cols.id))
            if self.writer is None:
                self.writer = pacsv.CSVWriter(self.rejects_file, part.rejects.schema)
            self.writer.write_table(part.rejects)
            part.rejects = None
        self.kept.append(part)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        else:  # an empty rejects file still says which columns a reject would have
            pacsv.CSVWriter(self.rejects_file, reject_schema(self.cols.read, self.cols.id)).close()

    def ranked(self) -> _Ranked:
        kept, cols = self.kept, self.cols
        carried = {c: pa.chunked_array([k.carried[c] for k in kept], pa.string()) for c in cols.carried}
        if cols.id:
            accepted = carried[cols.id].chunks
            self.result.duplicate_ids = duplicate_count(
                [*accepted, *[c for r in self.rejected_ids for c in r.chunks]]
            )
        tops = [k.top for k in kept if k.top is not None]
        return _Ranked(
            np.concatenate([k.p for k in kept]),
            np.concatenate([k.decision for k in kept]),
            np.concatenate([k.row for k in kept]),
            carried,
            TopReasons.concat(tops) if tops else None,
        )


def _scan(
    scorer: Scorer,
    inputs: Inputs,
    cols: Columns,
    explain: bool,
    workers: int,
    progress: Callable[[int, int], None] | None,
    result: BatchResult,
    rejects_file: IO[bytes],
) -> _Ranked:
    """Read and score every batch (a few at once), write the rejects in input order, keep the accepted rows."""
    size, consumed = inputs.size, [0]

    def on_read(n: int) -> None:
        consumed[0] += n
        if progress:
            progress(min(consumed[0], size), size)

    collector = _Collector(result, cols, rejects_file)
    pool = ThreadPoolExecutor(max(workers, 1))
    pending: list[Future[_Part]] = []
    try:
        offset = 0
        for batch in _prefetch(inputs.batches(cols.read, on_read)):
            pending.append(pool.submit(_score_batch, scorer, batch, offset, cols, explain))
            offset += batch.num_rows
            while len(pending) >= max(workers, 1) or (pending and pending[0].done()):
                collector.add(pending.pop(0).result())
        while pending:
            collector.add(pending.pop(0).result())
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    if result.rows == 0:
        raise InputError(f"{inputs.source}: the input has no data rows")
    collector.close()
    return collector.ranked()


def duplicate_count(ids: list[pa.Array]) -> int:
    """How many ids repeat one seen before (missing ids aside)."""
    arr = pa.chunked_array(ids, pa.string())
    present = len(arr) - arr.null_count
    return int(present - pc.count_distinct(arr, mode="only_valid").as_py())


def reject_table(
    batch: pa.RecordBatch | pa.Table,
    bad: np.ndarray,
    rows: ValidatedRows,
    keys: dict[str, pa.Array],
    id_col: str | None,
) -> pa.Table:
    """The rejected rows of a batch: `keys` columns, the id, every cell as text, the offending column and
    the reason. Shared by the single-machine and the cluster paths."""
    sub = batch.filter(pa.array(bad))
    cols = dict(keys)
    names = ([id_col] if id_col else []) + [n for n in sub.schema.names if n != id_col]
    for name in names:
        cols[name] = pc.cast(sub.column(name), pa.string())
    cols["column"] = pa.array(rows.columns(bad).astype(str), pa.string())
    cols["reason"] = pa.array(rows.messages(bad).astype(str), pa.string())
    return pa.table(cols)


def carried_columns(
    batch: pa.RecordBatch | pa.Table, valid: np.ndarray, names: list[str]
) -> dict[str, pa.Array]:
    """The carried columns of a batch's accepted rows, as text."""
    keep = pa.array(valid)
    return {c: pc.cast(batch.column(c), pa.string()).filter(keep) for c in names}


def reject_schema(read: list[str], id_col: str | None) -> pa.Schema:
    """The columns of a rejects file: row, [id], the cells read, column, reason."""
    names = ["row", *([id_col] if id_col else []), *[c for c in read if c != id_col], "column", "reason"]
    return pa.schema([pa.field(n, pa.int64() if n == "row" else pa.string()) for n in names])


def ranked_schema(carried: list[str], reasons: int = 0) -> pa.Schema:
    """The columns of a ranked list: row, [id and carried columns], probability, decision, rank,
    [reason_1..k]."""
    fields = [pa.field("row", pa.int64())] + [pa.field(c, pa.string()) for c in carried]
    fields += [
        pa.field("probability", pa.float64()),
        pa.field("decision", pa.int8()),
        pa.field("rank", pa.int64()),
    ]
    fields += [pa.field(f"reason_{k + 1}", pa.string()) for k in range(reasons)]
    return pa.schema(fields)


def _write_ranked(f: IO[bytes], out: Path, keep: np.ndarray, r: _Ranked) -> int:
    """The ranked list, best first."""
    parquet = out.suffix.lower() in {".parquet", ".pq"}
    sch = ranked_schema(list(r.carried), r.top.k if r.top is not None else 0)
    writer = pq.ParquetWriter(f, sch) if parquet else pacsv.CSVWriter(f, sch)
    step = 1 << 20
    for s in range(0, len(keep), step):
        sel = keep[s : s + step]
        cols: dict[str, Any] = {"row": pa.array(r.row[sel])}
        for name, values in r.carried.items():
            cols[name] = values.take(pa.array(sel))
        cols["probability"] = pa.array(r.p[sel])
        cols["decision"] = pa.array(r.decision[sel])
        cols["rank"] = pa.array(np.arange(s + 1, s + len(sel) + 1, dtype=np.int64))
        if r.top is not None:
            for k in range(r.top.k):
                cols[f"reason_{k + 1}"] = pa.array(r.top.column(k, sel), pa.string())
        writer.write_table(pa.table(cols, schema=sch))
    writer.close()
    return int(len(keep))
