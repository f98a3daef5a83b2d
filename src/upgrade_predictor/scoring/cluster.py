"""Scoring a partitioned data set on a Dask cluster: the client's side (what runs on a worker is in
partition.py). Dask is imported only here, in parallel.py and in the reader's Dask function.

Three passes, all on the workers; only per-partition counts reach the client. 1) Every input partition
is scored by Scorer.score_frame (the single-machine function) and written to a staging folder (valid
rows: partition, row in partition, probability, decision, id; rejects with their column and reason).
2) Dask sorts the staged rows by probability (ties: input order) into ranked partitions; with a top N,
each partition keeps only its best N and a tree of merges on the workers keeps the best N overall
instead. 3) Each ranked partition gets its global rank and global row number. Every file is written
under a fixed name (temp file, then rename), so a task rerun after a lost worker rewrites the same file
instead of adding rows, and the whole folder appears only when the run succeeded.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..files import publish_folder, temp_folder, write_json_atomic
from ..parallel import connect
from ..sources.dask import read_dask
from ..sources.formats import GZIP_ERRORS
from ..sources.inputs import Inputs, input_files
from ..sources.messages import error_line
from .batch import BatchResult, ranked_schema, reject_schema
from .partition import (
    LOCAL,
    PART,
    P,
    finalize_partition,
    finalize_rejects,
    merge_tops,
    part_name,
    score_partition,
    write_parquet,
)
from .scorer import Columns, Scorer, selected_count

SCORED_DIR = "scored"
REJECTS_DIR = "rejects"
SUMMARY_FILE = "summary.json"
CSV_BLOCKSIZE = "64MiB"  # CSV bytes per partition (~3M rows of this data); a gzipped file is one
PARQUET_BLOCKSIZE = "256MiB"  # in-memory bytes per Parquet partition (row groups are never split)
TOP_BY_MERGE = 2_000_000  # a --top/--budget list up to this size merges per-partition tops; longer: sort
MERGE_FAN_IN = 8  # per-partition tops merged per task (a tree, so no single task holds them all)


@dataclass
class DaskScoreResult(BatchResult):
    """What a cluster scoring run wrote: the single-machine counts, plus partitions and time."""

    partitions: int = 0
    seconds: float = 0.0


@dataclass
class _Job:
    """One scoring run: what every pass needs."""

    inputs: Inputs
    cols: Columns
    blob: bytes  # the bundle's bytes
    digest: str
    tmp: Path  # the output folder being built
    keep: int | None  # --top/--budget rows
    blocksize: str | int | None

    @property
    def stage(self) -> Path:
        return self.tmp / "_stage"

    @property
    def rejects_stage(self) -> Path:
        return self.tmp / "_rejects"

    @property
    def ids_stage(self) -> Path:
        return self.tmp / "_ids"


def score_dataset(
    model: str | Path,
    data: str | Path,
    out_dir: str | Path,
    address: str | None = "local",
    *,
    client: Any = None,
    top: int | None = None,
    budget: float | None = None,
    offer_cost: float | None = None,
    blocksize: str | int | None = None,
    id_column: str | None = None,
    carry: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
    verify_key: Path | None = None,
) -> DaskScoreResult:
    """Score a CSV/Parquet file, folder or glob on a Dask cluster into out_dir (partitioned Parquet).

    out_dir/scored/part-NNNNN.parquet holds row, [id], probability, decision and a global rank, best
    first (read the folder in name order for the ranked list); out_dir/rejects/ holds the rejected rows
    with their cells, column and reason; out_dir/summary.json the counts. With top or budget only the
    best N rows are written. Pass a connected `client`, or an `address` ("local" starts a 2-worker
    cluster). The input rule, the id and carried columns and the row numbers are those of score_file.
    """
    t0 = time.perf_counter()
    model, out_dir = Path(model), Path(out_dir)
    scorer = Scorer.load(model, verify_key=verify_key)  # a bad bundle fails here, before any cluster work
    offer_cost = scorer.offer_cost if offer_cost is None else offer_cost
    keep = None
    if top is not None or budget is not None:
        keep = selected_count(sys.maxsize, top, budget, offer_cost)
    inputs = input_files(data)
    _check_out_dir(out_dir, inputs.files)
    cols = scorer.columns_for(inputs, id_column, carry)
    inputs.require(cols.read)
    blob = model.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if scorer.bundle.file_sha256 not in (None, digest):  # the workers must get the bytes checked above
        raise InputError(f"{model}: the file changed while it was being loaded; score again")

    tmp = temp_folder(out_dir)
    try:
        job = _Job(inputs, cols, blob, digest, tmp, keep, blocksize)
        with connect(None if client is not None else (address or "local")) as own:
            result = _run(client if client is not None else own, job, progress)
        result.out, result.rejects = out_dir / SCORED_DIR, out_dir / REJECTS_DIR
        result.seconds = time.perf_counter() - t0
        write_json_atomic(tmp / SUMMARY_FILE, _summary(model, digest, data, job, scorer.threshold, result))
        publish_folder(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _summary(
    model: Path, digest: str, data: str | Path, job: _Job, threshold: float, result: DaskScoreResult
) -> dict[str, Any]:
    """summary.json: what was scored with which bundle, and the counts."""
    return {
        "model": str(model),
        "model_sha256": digest,
        "data": str(data),
        "files": len(job.inputs.files),
        "id_column": job.cols.id,
        "top": job.keep,
        "threshold": threshold,
        "rows": result.rows,
        "accepted": result.accepted,
        "rejected": result.rejected,
        "written": result.written,
        "duplicate_ids": result.duplicate_ids,
        "partitions": result.partitions,
        "reject_reasons": result.reject_reasons,
        "seconds": round(result.seconds, 3),
    }


def _run(client: Any, job: _Job, progress: Callable[[int, int], None] | None) -> DaskScoreResult:
    # The in-process scheduler of a local cluster logs every shuffle at WARNING level; it is routine here.
    logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)
    tmp = job.tmp
    for d in (job.stage, job.rejects_stage, job.ids_stage, tmp / SCORED_DIR, tmp / REJECTS_DIR):
        d.mkdir()
    stats, top = _score_parts(client, job, progress)
    rows = np.array([s["rows"] for s in stats], dtype=np.int64)
    if rows.sum() == 0:
        raise InputError(f"{job.inputs.source}: the input has no data rows")
    result = DaskScoreResult(
        tmp,
        tmp,
        int(rows.sum()),
        sum(s["accepted"] for s in stats),
        sum(s["rejected"] for s in stats),
        id_column=job.cols.id,
        files=len(job.inputs.files),
        partitions=len(stats),
    )
    for s in stats:
        result.add_reasons(s["reasons"])
    if job.cols.id:
        result.duplicate_ids = _duplicate_ids(client, job, sum(s["ids"] for s in stats))
    result.written = _write_parts(
        client, job, stats, top, np.concatenate(([0], np.cumsum(rows)[:-1])), result
    )
    for d in (job.stage, job.rejects_stage, job.ids_stage, tmp / "_ranked"):
        shutil.rmtree(d, ignore_errors=True)
    for d in (tmp / SCORED_DIR, tmp / REJECTS_DIR):  # temp files of writers killed mid-write
        for f in d.iterdir():
            if not f.name.startswith("part-"):
                f.unlink()
    return result


def _score_parts(
    client: Any, job: _Job, progress: Callable[[int, int], None] | None
) -> tuple[list[dict[str, Any]], Any]:
    """Score every input partition on the workers; the counts of each, and the merged top (or None)."""
    import dask
    from distributed import as_completed

    merge = job.keep if job.keep is not None and job.keep <= TOP_BY_MERGE else None
    with _read_errors(job.inputs):
        ddf = read_dask(job.inputs, job.cols.read, job.blocksize or _blocksize(job.inputs))
        bundle_ref = client.scatter(
            job.blob, broadcast=True, hash=True
        )  # the bundle's bytes, once per worker
        parts = ddf.to_delayed(optimize_graph=True)
        score = dask.delayed(score_partition, pure=True)
        paths = (str(job.stage), str(job.rejects_stage), str(job.ids_stage))
        tasks = [score(p, i, bundle_ref, job.digest, paths, job.cols, merge) for i, p in enumerate(parts)]
        counts = [dask.delayed(_counts, pure=True)(t) for t in tasks]  # what the client receives
        futures = client.compute(counts + ([_merge_tree(tasks, merge)] if merge is not None else []))
        top = futures.pop() if merge is not None else None  # stays on the workers
        stats: list[dict[str, Any]] = [{}] * len(futures)
        index = {f.key: i for i, f in enumerate(futures)}
        for done, fut in enumerate(as_completed(futures), 1):
            stats[index[fut.key]] = fut.result()
            if progress:
                progress(done, len(futures))
        del futures, tasks
    return stats, top


def _write_parts(
    client: Any,
    job: _Job,
    stats: list[dict[str, Any]],
    top: Any,
    row_offsets: np.ndarray,
    result: DaskScoreResult,
) -> int:
    """Write the ranked parts and the rejects with global row numbers; the ranked rows written."""
    import dask

    tmp = job.tmp
    final = dask.delayed(finalize_partition, pure=True)
    offsets_ref = client.scatter(row_offsets, broadcast=True, hash=True)  # once, not once per task
    out_tasks = []
    if top is not None:
        # The per-partition tops were merged on the workers; the best `keep` rows are written there too.
        out_tasks.append(final(top, str(tmp / SCORED_DIR / part_name(0)), 1, offsets_ref, job.cols.carried))
    elif result.accepted:
        out_tasks += _ranked_tasks(final, job, stats, offsets_ref)
    reject_parts = [s["part"] for s in stats if s["rejected"]]
    for k, part in enumerate(reject_parts):
        out_tasks.append(
            dask.delayed(finalize_rejects, pure=True)(
                str(job.rejects_stage / part_name(part)), str(tmp / REJECTS_DIR / part_name(k)), offsets_ref
            )
        )
    written_parts = client.compute(out_tasks, sync=True) if out_tasks else []
    written = int(sum(written_parts[: len(written_parts) - len(reject_parts)]))
    if written == 0:
        write_parquet(ranked_schema(job.cols.carried).empty_table(), tmp / SCORED_DIR / part_name(0))
    if not reject_parts:
        empty = reject_schema(job.cols.read, job.cols.id).empty_table()
        write_parquet(empty, tmp / REJECTS_DIR / part_name(0))
    return written


def _ranked_tasks(final: Any, job: _Job, stats: list[dict[str, Any]], offsets_ref: Any) -> list[Any]:
    """Sort the staged rows by probability (ties: input order) and give each ranked part its ranks."""
    import dask.dataframe as dd

    staged = [str(job.stage / part_name(s["part"])) for s in stats if s["accepted"]]
    # One partition per staged file, built with from_map: on a read_parquet input, Dask's sort checks
    # whether the parts are already in order on a merged read of the files and can wrongly conclude so,
    # sorting only within each part.
    parts = dd.from_map(pd.read_parquet, staged)
    ranked = parts.sort_values([P, PART, LOCAL], ascending=[False, True, True])
    ranked_dir = job.tmp / "_ranked"
    ranked.to_parquet(ranked_dir, write_index=False, name_function=part_name, compute=True)
    sizes = [(f, pq.ParquetFile(f).metadata.num_rows) for f in sorted(ranked_dir.glob("part-*.parquet"))]
    tasks: list[Any] = []
    start = 1
    last = job.keep if job.keep is not None else sys.maxsize  # a large top N: the first N ranks of the sort
    for f, n in sizes:
        if n and start <= last:
            dst = str(job.tmp / SCORED_DIR / part_name(len(tasks)))
            tasks.append(final(str(f), dst, start, offsets_ref, job.cols.carried, last))
        start += n
    return tasks


def _duplicate_ids(client: Any, job: _Job, present: int) -> int:
    """Rows whose id an earlier row already had, counted on the workers from the staged ids."""
    import dask.dataframe as dd

    files = sorted(str(f) for f in job.ids_stage.glob("part-*.parquet"))
    if not files or not job.cols.id:
        return 0
    distinct = client.compute(dd.read_parquet(files)[job.cols.id].nunique(), sync=True)
    return int(present - distinct)


def _counts(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if k != "top"}


def _merge_tree(tasks: list[Any], keep: int) -> Any:
    """A tree of merges of the partitions' top rows, ending in one table of the best `keep`."""
    import dask

    level = tasks
    while True:
        level = [
            dask.delayed(merge_tops, pure=True)(level[i : i + MERGE_FAN_IN], keep)
            for i in range(0, len(level), MERGE_FAN_IN)
        ]
        if len(level) == 1:
            return level[0]


def _blocksize(inputs: Inputs) -> str:
    return PARQUET_BLOCKSIZE if inputs.parquet else CSV_BLOCKSIZE


@contextlib.contextmanager
def _read_errors(inputs: Inputs) -> Iterator[None]:
    """A file that cannot be parsed (on the client or on a worker) becomes one readable input error."""
    try:
        yield
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        pa.ArrowInvalid,
        UnicodeDecodeError,
        *GZIP_ERRORS,
    ) as e:
        raise InputError(_unreadable(inputs, e)) from None
    except ValueError as e:
        if not str(e).startswith("An error occurred while calling the read_"):  # Dask's reader wrapper
            raise
        raise InputError(_unreadable(inputs, e.__cause__ or e)) from None


def _unreadable(inputs: Inputs, e: BaseException) -> str:
    files = inputs.files
    where = files[0] if len(files) == 1 else f"{files[0]} (or another of {len(files)} files)"
    kind = {"parquet": "Parquet", "csv": "CSV", "csv.gz": "gzip-compressed CSV"}[inputs.format]
    return f"{where}: cannot be read as {kind} ({error_line(e)})"


def _check_out_dir(out_dir: Path, files: list[Path]) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: is a file; --dask writes a folder of Parquet parts")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / SUMMARY_FILE).exists():
        raise InputError(
            f"{out_dir}: the folder exists and is not an earlier scoring output; choose a new folder"
        )
    root = out_dir.resolve()
    if any(f.resolve().is_relative_to(root) for f in files):
        raise InputError(f"{out_dir}: the output folder holds the input; choose another folder")
