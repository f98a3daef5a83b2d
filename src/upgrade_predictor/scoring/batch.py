"""Batch scoring of a file into a ranked target list and a rejects file, streamed in Arrow batches."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .. import config
from ..errors import InputError
from ..files import write_atomic
from ..sources.tables import batch_to_frame, columns_of, iter_batches
from .scorer import EXPLAIN_FAMILIES, Scorer, format_reason, rank_order, selected_count


@dataclass
class BatchResult:
    out: Path
    rejects: Path
    rows: int
    accepted: int
    rejected: int
    written: int
    reject_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def reject_share(self) -> float:
        return self.rejected / self.rows if self.rows else 0.0


def _prefetch(it, depth: int = 1):
    """Run an iterator in a thread: Arrow parses the next batch while this one is scored."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def run():
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
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Score a CSV/Parquet file into a ranked list (CSV or Parquet by --out's suffix) and a rejects file.

    Both files appear only when the whole run succeeded (temp file, then rename)."""
    data, out = Path(data), Path(out)
    rejects = Path(rejects) if rejects else default_rejects_path(out)
    if out.resolve() == data.resolve() or rejects.resolve() == data.resolve():
        raise InputError(f"{out}: the output would overwrite the input file")
    if out.exists() and out.is_dir():
        raise InputError(f"{out}: is a folder; give a file name ending in .csv or .parquet")
    if explain and scorer.family not in (None, *EXPLAIN_FAMILIES):
        raise InputError(f"--explain needs a gradient-boosting model; this bundle is {scorer.family!r}")
    if offer_cost is None:
        offer_cost = float(scorer.bundle.metadata.get("offer_cost", config.OFFER_COST))
    selected_count(1, top, budget, offer_cost)  # argument errors before any work
    schema = scorer.schema
    id_col = schema.id_column
    size = data.stat().st_size if data.exists() else 0
    consumed = [0]

    def on_read(n: int) -> None:
        consumed[0] += n
        if progress:
            progress(min(consumed[0], size), size)

    result = BatchResult(out, rejects, 0, 0, 0, 0)

    def run(rejects_file, out_file):
        probs: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        ids: list[pa.Array] = []
        expl: list[tuple[np.ndarray, np.ndarray]] = []
        names: list[str] = []
        reasons_count: dict[str, int] = {}
        writer = None
        offset = 0
        pool = ThreadPoolExecutor(max(workers, 1))

        def work(batch, start):
            df = batch_to_frame(batch, schema)
            X, why = scorer.validate(df)
            valid = (why == "").to_numpy()
            Xv = X[valid] if not valid.all() else X
            p = scorer.predict(Xv)
            top_c = scorer.top_contributions(Xv) if explain and len(Xv) else None
            return batch, start, valid, why, p, top_c

        cols_in_file = set(columns_of(data))
        with_id = id_col is not None and id_col in cols_in_file
        batches = iter_batches(data, schema.names + ([id_col] if with_id else []), on_read)
        pending = []
        try:
            for batch in _prefetch(batches):
                pending.append(pool.submit(work, batch, offset))
                offset += batch.num_rows
                while len(pending) >= max(workers, 1) or (pending and pending[0].done()):
                    writer = _collect(
                        pending.pop(0).result(),
                        probs,
                        rows,
                        ids,
                        expl,
                        names,
                        reasons_count,
                        rejects_file,
                        writer,
                        with_id,
                        id_col,
                        result,
                    )
            while pending:
                writer = _collect(
                    pending.pop(0).result(),
                    probs,
                    rows,
                    ids,
                    expl,
                    names,
                    reasons_count,
                    rejects_file,
                    writer,
                    with_id,
                    id_col,
                    result,
                )
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
        if result.rows == 0:
            raise InputError(f"{data}: the file has no data rows")
        if writer is None:  # an empty rejects file still says which columns a reject would have
            fields = [pa.field("row", pa.int64())] + [
                pa.field(n, pa.string()) for n in (schema.names + ([id_col] if with_id else []))
            ]
            fields.append(pa.field("reason", pa.string()))
            pacsv.CSVWriter(rejects_file, pa.schema(fields)).close()
        else:
            writer.close()
        result.reject_reasons = reasons_count
        p = np.concatenate(probs) if probs else np.empty(0)
        probs.clear()
        row = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
        rows.clear()
        order = rank_order(p)
        keep = order[: selected_count(len(p), top, budget, offer_cost)]
        id_arr = pa.chunked_array(ids) if with_id and ids else None
        if explain and expl:
            e_idx = np.concatenate([e[0] for e in expl])
            e_val = np.concatenate([e[1] for e in expl])
        else:
            e_idx = e_val = None
        result.written = _write_ranked(
            out_file, out, keep, p, row, id_arr, id_col, scorer.threshold, e_idx, e_val, names
        )

    write_atomic(rejects, lambda rf: write_atomic(out, lambda of: run(rf, of)))
    return result


def default_rejects_path(out: Path) -> Path:
    return out.with_name(out.stem + ".rejects.csv")


def _collect(
    res,
    probs,
    rows,
    ids,
    expl,
    names,
    reasons_count,
    rejects_file,
    writer,
    with_id,
    id_col,
    result: BatchResult,
):
    batch, start, valid, why, p, top_c = res
    n = batch.num_rows
    result.rows += n
    idx = np.arange(start, start + n, dtype=np.int64)
    probs.append(p)
    rows.append(idx[valid])
    if with_id:
        ids.append(pc.cast(batch.column(id_col), pa.string()).filter(pa.array(valid)))
    if top_c is not None:
        expl.append((top_c[0], top_c[1]))
        if not names:
            names.extend(top_c[2])
    result.accepted += int(valid.sum())
    bad = ~valid
    if bad.any():
        result.rejected += int(bad.sum())
        table, counts = reject_table(batch, bad, why, {"row": pa.array(idx[bad])})
        for text, count in counts.items():
            reasons_count[text] = reasons_count.get(text, 0) + count
        if writer is None:
            writer = pacsv.CSVWriter(rejects_file, table.schema)
        writer.write_table(table)
    return writer


def reject_table(batch, bad: np.ndarray, reasons: pd.Series, keys: dict) -> tuple[pa.Table, dict[str, int]]:
    """The rejected rows of a batch: `keys` columns, every cell as text, and the reason; plus a count
    per reason. Shared by the single-machine and the cluster paths."""
    texts = reasons.to_numpy()[bad].astype(str)
    counts = {str(t): int(c) for t, c in zip(*np.unique(texts, return_counts=True))}
    sub = batch.filter(pa.array(bad))
    cols = dict(keys)
    for name in sub.schema.names:
        cols[name] = pc.cast(sub.column(name), pa.string())
    cols["reason"] = pa.array(texts, pa.string())
    return pa.table(cols), counts


def _write_ranked(
    f,
    out: Path,
    keep: np.ndarray,
    p: np.ndarray,
    row: np.ndarray,
    ids,
    id_col,
    threshold: float,
    e_idx,
    e_val,
    names,
) -> int:
    """The ranked list, best first: row, [id], probability, decision, rank, [reason_1..k]."""
    parquet = out.suffix.lower() in {".parquet", ".pq"}
    writer = None
    step = 1 << 20
    for s in range(0, len(keep), step):
        sel = keep[s : s + step]
        cols = {"row": pa.array(row[sel])}
        if ids is not None:
            cols[id_col] = ids.take(pa.array(sel))
        ps = p[sel]
        cols["probability"] = pa.array(ps)
        cols["decision"] = pa.array((ps >= threshold).astype(np.int8))
        cols["rank"] = pa.array(np.arange(s + 1, s + len(sel) + 1, dtype=np.int64))
        if e_idx is not None:
            for k in range(e_idx.shape[1]):
                cols[f"reason_{k + 1}"] = pa.array(
                    [format_reason(names[j], v) for j, v in zip(e_idx[sel, k], e_val[sel, k])], pa.string()
                )
        table = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(f, table.schema) if parquet else pacsv.CSVWriter(f, table.schema)
        writer.write_table(table)
    if writer is None:  # nothing selected: still a valid, empty list with its header
        fields = [pa.field("row", pa.int64())] + ([pa.field(id_col, pa.string())] if ids is not None else [])
        fields += [
            pa.field("probability", pa.float64()),
            pa.field("decision", pa.int8()),
            pa.field("rank", pa.int64()),
        ]
        if e_idx is not None:
            fields += [pa.field(f"reason_{k + 1}", pa.string()) for k in range(e_idx.shape[1])]
        sch = pa.schema(fields)
        writer = pq.ParquetWriter(f, sch) if parquet else pacsv.CSVWriter(f, sch)
    writer.close()
    return int(len(keep))
