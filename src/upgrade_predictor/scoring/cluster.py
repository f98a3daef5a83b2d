"""Scoring a partitioned data set on a Dask cluster. Dask is imported only here and in parallel.py."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import config
from ..errors import InputError
from ..files import publish_folder, temp_folder, write_atomic, write_json_atomic
from ..parallel import connect
from ..sources.tables import batch_to_frame, columns_of, input_files, require_columns, sniff_delimiter
from .batch import BatchResult, reject_table
from .scorer import Scorer, rank_order, selected_count

# the same file instead of adding rows, and the whole folder appears only when the run succeeded.

SCORED_DIR = "scored"
REJECTS_DIR = "rejects"
SUMMARY_FILE = "summary.json"
CSV_BLOCKSIZE = "64MiB"  # CSV bytes per partition (~3M rows of this data)
PARQUET_BLOCKSIZE = "256MiB"  # in-memory bytes per Parquet partition (row groups are never split)
TOP_BY_MERGE = 2_000_000  # a --top/--budget list up to this size merges per-partition tops; longer: sort
MERGE_FAN_IN = 8  # per-partition tops merged per task (a tree, so no single task holds them all)

_SCORERS: dict = {}  # per worker process: bundle sha256 -> Scorer, so each worker loads a bundle once
_SCORERS_LOCK = threading.Lock()


@dataclass
class DaskScoreResult(BatchResult):
    """What a cluster scoring run wrote: the single-machine counts, plus partitions and time."""

    partitions: int = 0
    seconds: float = 0.0


def score_dataset(
    model: str | Path,
    data: str | Path,
    out_dir: str | Path,
    address: str | None = "local",
    *,
    client=None,
    top: int | None = None,
    budget: float | None = None,
    offer_cost: float | None = None,
    blocksize: str | int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DaskScoreResult:
    """Score a CSV/Parquet file, folder or glob on a Dask cluster into out_dir (partitioned Parquet).

    out_dir/scored/part-NNNNN.parquet holds row, [id], probability, decision and a global rank, best
    first (read the folder in name order for the ranked list); out_dir/rejects/ holds the rejected rows
    with their cells and reason; out_dir/summary.json the counts. With top or budget only the best N
    rows are written. Pass a connected `client`, or an `address` ("local" starts a 2-worker cluster).
    """
    t0 = time.perf_counter()
    model, out_dir = Path(model), Path(out_dir)
    scorer = Scorer.load(model)  # a bad bundle fails here, before any cluster work
    if offer_cost is None:
        offer_cost = float(scorer.bundle.metadata.get("offer_cost", config.OFFER_COST))
    keep = None
    if top is not None or budget is not None:
        keep = selected_count(sys.maxsize, top, budget, offer_cost)
    files, parquet = input_files(data)
    _check_out_dir(out_dir, files)
    schema = scorer.schema
    id_col = schema.id_column
    columns = set(columns_of(Path(files[0])))
    require_columns(files[0], columns, schema.names)
    with_id = id_col is not None and id_col in columns
    columns = schema.names + ([id_col] if with_id else [])
    blob = model.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()

    tmp = temp_folder(out_dir)
    try:
        with connect(None if client is not None else (address or "local")) as own:
            cl = client if client is not None else own
            result = _run(
                cl,
                files,
                parquet,
                columns,
                id_col if with_id else None,
                blob,
                digest,
                scorer,
                tmp,
                keep,
                blocksize,
                progress,
            )
        result.seconds = time.perf_counter() - t0
        write_json_atomic(
            tmp / SUMMARY_FILE,
            {
                "model": str(model),
                "model_sha256": digest,
                "data": str(data),
                "files": len(files),
                "top": keep,
                "threshold": scorer.threshold,
                "rows": result.rows,
                "accepted": result.accepted,
                "rejected": result.rejected,
                "written": result.written,
                "partitions": result.partitions,
                "reject_reasons": result.reject_reasons,
                "seconds": round(result.seconds, 3),
            },
        )
        publish_folder(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.out, result.rejects = out_dir / SCORED_DIR, out_dir / REJECTS_DIR
    return result


def _run(
    client, files, parquet, columns, id_col, blob, digest, scorer, tmp: Path, keep, blocksize, progress
) -> DaskScoreResult:
    import dask
    from distributed import as_completed

    # The in-process scheduler of a local cluster logs every shuffle at WARNING level; it is routine here.
    logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)
    stage, rejects_stage = tmp / "_stage", tmp / "_rejects"
    for d in (stage, rejects_stage, tmp / SCORED_DIR, tmp / REJECTS_DIR):
        d.mkdir()
    with _read_errors(files, parquet):
        ddf = _read(files, parquet, columns, blocksize)
        bundle_ref = client.scatter(blob, broadcast=True, hash=True)  # the bundle's bytes, once per worker
        parts = ddf.to_delayed(optimize_graph=True)
        score = dask.delayed(score_partition, pure=True)
        merge = keep if keep is not None and keep <= TOP_BY_MERGE else None
        tasks = [
            score(p, i, bundle_ref, digest, str(stage), str(rejects_stage), id_col, merge)
            for i, p in enumerate(parts)
        ]
        counts = [dask.delayed(_counts, pure=True)(t) for t in tasks]  # what the client receives
        futures = client.compute(counts + ([_merge_tree(tasks, merge)] if merge is not None else []))
        top = futures.pop() if merge is not None else None  # stays on the workers
        stats: list[dict] = [{}] * len(futures)
        index = {f.key: i for i, f in enumerate(futures)}
        for done, fut in enumerate(as_completed(futures), 1):
            stats[index[fut.key]] = fut.result()
            if progress:
                progress(done, len(futures))
        del futures, tasks
    rows = np.array([s["rows"] for s in stats], dtype=np.int64)
    if rows.sum() == 0:
        raise InputError(f"{files[0]}: the input has no data rows")
    row_offsets = np.concatenate(([0], np.cumsum(rows)[:-1]))
    reasons: dict[str, int] = {}
    for s in stats:
        for text, count in s["reasons"].items():
            reasons[text] = reasons.get(text, 0) + count
    result = DaskScoreResult(
        tmp,
        tmp,
        int(rows.sum()),
        sum(s["accepted"] for s in stats),
        sum(s["rejected"] for s in stats),
        0,
        reasons,
        partitions=len(stats),
    )

    final = dask.delayed(finalize_partition, pure=True)
    offsets_ref = client.scatter(row_offsets, broadcast=True, hash=True)  # once, not once per task
    out_tasks = []
    if top is not None:
        # The per-partition tops were merged on the workers; the best `keep` rows are written there too.
        out_tasks.append(
            final(top, str(tmp / SCORED_DIR / _part_name(0)), 1, offsets_ref, scorer.threshold, id_col)
        )
    elif result.accepted:
        staged = [str(stage / _part_name(s["part"])) for s in stats if s["accepted"]]
        ranked = _read_staged(staged).sort_values(["p", "part", "local"], ascending=[False, True, True])
        ranked_dir = tmp / "_ranked"
        ranked.to_parquet(ranked_dir, write_index=False, name_function=_part_name, compute=True)
        sizes = [(f, pq.ParquetFile(f).metadata.num_rows) for f in sorted(ranked_dir.glob("part-*.parquet"))]
        start = 1
        last = keep if keep is not None else sys.maxsize  # a large top N: the first N ranks of the sort
        for f, n in sizes:
            if n and start <= last:
                out_tasks.append(
                    final(
                        str(f),
                        str(tmp / SCORED_DIR / _part_name(len(out_tasks))),
                        start,
                        offsets_ref,
                        scorer.threshold,
                        id_col,
                        last,
                    )
                )
            start += n
    reject_parts = [s["part"] for s in stats if s["rejected"]]
    for k, part in enumerate(reject_parts):
        out_tasks.append(
            dask.delayed(finalize_rejects, pure=True)(
                str(rejects_stage / _part_name(part)), str(tmp / REJECTS_DIR / _part_name(k)), offsets_ref
            )
        )
    written = client.compute(out_tasks, sync=True) if out_tasks else []
    result.written = int(sum(written[: len(written) - len(reject_parts)]))
    if result.written == 0:
        _empty_ranked(scorer, id_col).to_parquet(tmp / SCORED_DIR / _part_name(0), index=False)
    if not reject_parts:
        _empty_rejects(columns).to_parquet(tmp / REJECTS_DIR / _part_name(0), index=False)
    for d in (stage, rejects_stage, tmp / "_ranked"):
        shutil.rmtree(d, ignore_errors=True)
    for d in (tmp / SCORED_DIR, tmp / REJECTS_DIR):  # temp files of writers killed mid-write
        for f in d.iterdir():
            if not f.name.startswith("part-"):
                f.unlink()
    return result


def score_partition(
    frame,
    part: int,
    bundle_bytes: bytes,
    digest: str,
    stage: str,
    rejects_stage: str,
    id_col: str | None,
    keep: int | None,
) -> dict:
    """Score one input partition on a worker with the single-machine functions (batch_to_frame,
    Scorer.score_frame); write its scored rows (unless only the top N is kept) and its rejects."""
    scorer = _worker_scorer(bundle_bytes, digest)
    batch = pa.Table.from_pandas(frame, preserve_index=False)  # batch_to_frame takes tables too
    del frame
    scored = scorer.score_frame(batch_to_frame(batch, scorer.schema))
    n = batch.num_rows
    local = np.arange(n, dtype=np.int64)
    valid = scored.valid
    cols = {
        "part": pa.array(np.full(int(valid.sum()), part, dtype=np.int32)),
        "local": pa.array(local[valid]),
        "p": pa.array(scored.probability, pa.float64()),
    }
    if id_col:
        cols[id_col] = pc.cast(batch.column(id_col), pa.string()).filter(pa.array(valid))
    table = pa.table(cols)
    top = None
    if keep is not None:
        top = table.take(pa.array(rank_order(scored.probability)[:keep]))
    elif table.num_rows:
        _write_parquet(table, Path(stage) / _part_name(part))
    bad = ~valid
    reasons: dict[str, int] = {}
    if bad.any():
        keys = {
            "part": pa.array(np.full(int(bad.sum()), part, dtype=np.int32)),
            "local": pa.array(local[bad]),
        }
        rej, reasons = reject_table(batch, bad, scored.reasons, keys)
        _write_parquet(rej, Path(rejects_stage) / _part_name(part))
    return {
        "part": part,
        "rows": n,
        "accepted": int(valid.sum()),
        "rejected": int(bad.sum()),
        "reasons": reasons,
        "top": top,
    }


def _counts(stats: dict) -> dict:
    return {k: v for k, v in stats.items() if k != "top"}


def _merge_tree(tasks: list, keep: int):
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


def merge_tops(items: list, keep: int):
    """The best `keep` rows of several partitions' top rows (given in partition order)."""
    tables = [i["top"] if isinstance(i, dict) else i for i in items]
    merged = pa.concat_tables(tables)  # each in rank order, partitions in file order: ties keep file order
    return merged.take(pa.array(rank_order(merged.column("p").to_numpy())[:keep]))


def finalize_partition(
    src,
    dst: str,
    first_rank: int,
    row_offsets: np.ndarray,
    threshold: float,
    id_col: str | None,
    last_rank: int = sys.maxsize,
) -> int:
    """A ranked partition (a file, or a table) as the single-machine list: row, [id], probability,
    decision, rank."""
    t = src if isinstance(src, pa.Table) else pq.read_table(src)
    t = t.slice(0, max(0, min(t.num_rows, last_rank - first_rank + 1)))
    p = t.column("p").to_numpy()
    row = row_offsets[t.column("part").to_numpy()] + t.column("local").to_numpy()
    cols = {"row": pa.array(row, pa.int64())}
    if id_col:
        cols[id_col] = t.column(id_col)
    cols["probability"] = pa.array(p, pa.float64())
    cols["decision"] = pa.array((p >= threshold).astype(np.int8))
    cols["rank"] = pa.array(np.arange(first_rank, first_rank + len(p), dtype=np.int64))
    _write_parquet(pa.table(cols), Path(dst))
    return t.num_rows


def finalize_rejects(src: str, dst: str, row_offsets: np.ndarray) -> int:
    """Rejected rows as the single-machine rejects file: row, the cells as text, reason."""
    t = pq.read_table(src)
    row = row_offsets[t.column("part").to_numpy()] + t.column("local").to_numpy()
    t = t.drop_columns(["part", "local"])
    _write_parquet(t.add_column(0, "row", pa.array(row, pa.int64())), Path(dst))
    return t.num_rows


def _worker_scorer(bundle_bytes: bytes, digest: str):
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


def _part_name(i: int) -> str:
    return f"part-{i:05d}.parquet"  # zero-padded: name order is partition order


def _write_parquet(table, path: Path) -> None:
    write_atomic(path, lambda f: pq.write_table(table, f))


def _read_staged(paths):
    import dask.dataframe as dd

    return dd.read_parquet(paths)


def _read(files: list[str], parquet: bool, columns: list[str], blocksize):
    """The input as a Dask dataframe; CSV cells as text, only empty cells missing ("NA" is Namibia)."""
    import dask.dataframe as dd

    if parquet:
        return dd.read_parquet(
            files, columns=columns, blocksize=blocksize or PARQUET_BLOCKSIZE, split_row_groups="infer"
        )
    sep = sniff_delimiter(Path(files[0]))
    ddf = dd.read_csv(
        files,
        sep=sep,
        dtype=str,
        keep_default_na=False,
        na_values=config.NA_VALUES,
        blocksize=blocksize or CSV_BLOCKSIZE,
        usecols=lambda c: str(c).strip() in set(columns),
    )
    return ddf.rename(columns=lambda c: str(c).strip())[columns]


@contextlib.contextmanager
def _read_errors(files: list[str], parquet: bool):
    """A file that cannot be parsed (on the client or on a worker) becomes one readable input error."""
    try:
        yield
    except (pd.errors.ParserError, pd.errors.EmptyDataError, pa.ArrowInvalid, UnicodeDecodeError) as e:
        raise InputError(_unreadable(files, parquet, e)) from None
    except ValueError as e:
        if not str(e).startswith("An error occurred while calling the read_"):  # Dask's reader wrapper
            raise
        raise InputError(_unreadable(files, parquet, e.__cause__ or e)) from None


def _unreadable(files: list[str], parquet: bool, e: BaseException) -> str:
    where = files[0] if len(files) == 1 else f"{files[0]} (or another of {len(files)} files)"
    return f"{where}: cannot be read as {'Parquet' if parquet else 'CSV'} ({str(e).strip().splitlines()[0]})"


def _check_out_dir(out_dir: Path, files: list[str]) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: is a file; --dask writes a folder of Parquet parts")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / SUMMARY_FILE).exists():
        raise InputError(
            f"{out_dir}: the folder exists and is not an earlier scoring output; choose a new folder"
        )
    root = out_dir.resolve()
    if any(Path(f).resolve().is_relative_to(root) for f in files):
        raise InputError(f"{out_dir}: the output folder holds the input; choose another folder")


def _empty_ranked(scorer, id_col):
    cols = {"row": pd.Series([], dtype="int64")}
    if id_col:
        cols[id_col] = pd.Series([], dtype="str")
    cols.update(
        probability=pd.Series([], dtype="float64"),
        decision=pd.Series([], dtype="int8"),
        rank=pd.Series([], dtype="int64"),
    )
    return pd.DataFrame(cols)


def _empty_rejects(columns):
    return pd.DataFrame(
        {
            "row": pd.Series([], dtype="int64"),
            **{c: pd.Series([], dtype="str") for c in columns},
            "reason": pd.Series([], dtype="str"),
        }
    )
