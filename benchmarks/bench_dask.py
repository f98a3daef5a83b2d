"""Scoring a partitioned Parquet data set on a local 2-worker Dask cluster, beside the single-process path.

    .venv/bin/python benchmarks/bench_dask.py [--rows 50000000] [--file-rows 2500000] [--model m.zip]
                                              [--skip-single]

Writes the input once (rows resampled from the real file, labels dropped) as Parquet parts under
benchmarks/out/lake_<rows>/, then prints from one run: the cluster's wall time and rows/s, each worker's
peak resident memory, the time per task group (read + score per partition, sort, final ranks), and the
single-process path (score_file over the same glob: one ranked list, as the cluster writes) in rows/s, with
the ratio.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from bench_scoring import OUT, default_model, real_users
from upgrade_predictor import parallel
from upgrade_predictor.scoring import cluster


def make_lake(rows: int, file_rows: int, seed: int = 0) -> Path:
    """Resample the real rows into Parquet parts of file_rows rows (row groups of 500k), once."""
    lake = OUT / f"lake_{rows}_{file_rows}"
    if (lake / "_done").exists():
        return lake
    lake.mkdir(parents=True, exist_ok=True)
    src = real_users()
    rng = np.random.default_rng(seed)
    for i, s in enumerate(range(0, rows, file_rows)):
        idx = rng.integers(0, src.num_rows, min(file_rows, rows - s))
        pq.write_table(src.take(idx), lake / f"users-{i:05d}.parquet", row_group_size=500_000)
    (lake / "_done").write_text("")
    return lake


def single_process(model: Path, data: str, out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of score_file over the whole input, in a child process."""
    code = (
        "import resource, sys\n"
        "from upgrade_predictor.scoring.batch import score_file\nfrom upgrade_predictor.scoring.scorer import Scorer\n"
        "score_file(Scorer.load(sys.argv[1]), sys.argv[3], f'{sys.argv[2]}/scored.parquet')\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"  # its own peak, not the workers'
    )
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", code, str(model), str(out), data],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t
    return wall, int(r.stdout.split()[-1]) / 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000_000)
    ap.add_argument(
        "--file-rows", type=int, default=2_500_000, help="rows per Parquet part (one partition each)"
    )
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--skip-single", action="store_true", help="do not run the single-process path")
    a = ap.parse_args()
    model = a.model or default_model()
    t = time.perf_counter()
    lake = make_lake(a.rows, a.file_rows)
    files = sorted(lake.glob("users-*.parquet"))
    size = sum(f.stat().st_size for f in files)
    print(
        f"model {model}; input {lake} ({a.rows:,} rows in {len(files)} parts, "
        f"{size / 1e6:,.0f} MB on disk; ready in {time.perf_counter() - t:.0f} s)"
    )

    from distributed import get_task_stream

    out = OUT / "dask_scored"
    with parallel.connect("local") as client:
        with get_task_stream(client) as ts:
            t = time.perf_counter()
            res = cluster.score_dataset(model, str(lake / "users-*.parquet"), out, client=client)
            wall = time.perf_counter() - t
        peaks = client.run(peak_rss_mb)
        nworkers = len(peaks)
    print(
        f"dask, local cluster of {nworkers} workers x 1 thread: {wall:.1f} s, {a.rows / wall:,.0f} rows/s; "
        f"{res.partitions} partitions, {res.written:,} rows written, {res.rejected:,} rejected"
    )
    for addr, mb in sorted(peaks.items()):
        print(f"  peak RSS of worker {addr}: {mb:,.0f} MB")
    print(f"  peak RSS of the client (with the in-process scheduler): {peak_rss_mb():,.0f} MB")

    groups: dict[str, list[float]] = defaultdict(list)
    from dask.utils import key_split

    for task in ts.data:
        spans = [s for s in task["startstops"] if s["action"] == "compute"]
        groups[key_split(task["key"])].append(sum(s["stop"] - s["start"] for s in spans))
    print("  compute seconds by task group (count, total, mean per task):")
    for name, secs in sorted(groups.items(), key=lambda kv: -sum(kv[1])):
        print(f"    {name:<40} {len(secs):>5} {sum(secs):>9.1f} {np.mean(secs):>8.3f}")
    read = sum(sum(v) for k, v in groups.items() if k.startswith("read"))
    per_part = (sum(groups.get("score_partition", [])) + read) / max(res.partitions, 1)
    print(f"  read + score per partition ({a.rows / max(res.partitions, 1):,.0f} rows): {per_part:.2f} s")
    rest = sum(sum(v) for v in groups.values()) - per_part * res.partitions
    print(f"  sort + final ranks (every other task group): {rest:.1f} s, {rest / a.rows * 1e6:.2f} us/row")
    summary = json.loads((out / cluster.SUMMARY_FILE).read_text())
    print(f"  summary: {summary['written']:,} written; {summary['seconds']} s inside score_dataset")

    if not a.skip_single:
        wall_s, peak_s = single_process(model, str(lake / "users-*.parquet"), OUT / "single_scored")
        print(
            f"single process (score_file over the same {len(files)} parts): {wall_s:.1f} s, "
            f"{a.rows / wall_s:,.0f} rows/s, peak RSS {peak_s:,.0f} MB"
        )
        print(f"ratio dask / single process (rows/s): {wall_s / wall:.2f}")


if __name__ == "__main__":
    main()
