"""Batch scoring throughput, memory and exactness on a large CSV made by resampling the real rows.

    .venv/bin/python benchmarks/bench_scoring.py [--rows 10000000] [--model run/model.zip]

Prints, from one run: the end-to-end rate of `upgrade-predictor score` (a child process, so its peak
memory is measured alone), the bare model's in-memory predict_proba rate on the same rows, their
ratio, the largest difference between the two, and the --explain rate on a slice.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sklearn.pipeline import Pipeline as SkPipeline

from upgrade_predictor import bundle, config, dataset, models
from upgrade_predictor.scoring.fast import FastPipeline
from upgrade_predictor.scoring.scorer import Scorer

OUT = Path(__file__).resolve().parent / "out"


def real_users() -> pa.Table:
    """The real rows without their label, read so that "NA" stays Namibia."""
    src = pacsv.read_csv(
        config.default_data_path(),
        convert_options=pacsv.ConvertOptions(
            column_types={"student_country": pa.string()}, null_values=[""], strings_can_be_null=False
        ),
    )
    return src.drop_columns([config.TARGET])


def make_csv(rows: int, seed: int = 0) -> Path:
    """Resample the real rows (labels dropped) into a CSV written like the original file."""
    path = OUT / f"users_{rows}.csv"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    src = real_users()
    idx = np.random.default_rng(seed).integers(0, src.num_rows, rows)
    tmp = path.with_suffix(".tmp")
    with pacsv.CSVWriter(str(tmp), src.schema, write_options=pacsv.WriteOptions(quoting_style="needed")) as w:
        for s in range(0, rows, 1_000_000):
            w.write_table(src.take(idx[s : s + 1_000_000]))
    tmp.rename(path)
    return path


def default_model() -> Path:
    """The model training most often chooses here: LightGBM with default parameters, all rows."""
    path = OUT / "bench_model.zip"
    if not path.exists():
        ds = dataset.load_dataset()
        pipe = models.build_pipeline(ds.schema, "gbm", "none").fit(ds.X, ds.y)
        bundle.save_bundle(
            path,
            pipe,
            {"schema": ds.schema.to_dict(), "threshold": 0.4, "family": "gbm", "key": "gbm/none"},
            "",
        )
    return path


def run_cli(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one CLI run in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "upgrade_predictor.cli", *args], check=True)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument(
        "--compare-rows",
        type=int,
        default=1_000_000,
        help="rows (from the top of the file) for the bare model's rate and the exactness check",
    )
    ap.add_argument("--explain-rows", type=int, default=200_000)
    ap.add_argument("--model", type=Path, default=None)
    a = ap.parse_args()
    model = a.model or default_model()
    csv = make_csv(a.rows)
    out = OUT / "scored.parquet"
    print(f"model {model}; input {csv} ({a.rows:,} rows, {csv.stat().st_size / 1e6:,.0f} MB)")

    wall, peak = run_cli(["score", str(model), str(csv), "--out", str(out), "--no-progress"])
    rate = a.rows / wall
    print(f"end to end (score, no --explain): {wall:.2f} s, {rate:,.0f} rows/s, peak RSS {peak:,.0f} MB")

    scorer = Scorer.load(model)
    head = pd.read_csv(csv, nrows=a.compare_rows, keep_default_na=False, na_values=config.NA_VALUES)
    rows = scorer.schema.validate_rows(head)
    assert rows.valid.all()
    X = rows.X
    pipe = scorer.pipeline
    t = time.perf_counter()
    bare = np.concatenate(
        [pipe.predict_proba(X.iloc[s : s + 100_000])[:, 1] for s in range(0, len(X), 100_000)]
    )
    bare_rate = len(X) / (time.perf_counter() - t)
    inner = models.inner_pipeline(pipe)
    final_rate = None
    if isinstance(inner, SkPipeline) and inner is pipe:
        Z = [FastPipeline(inner).transform(X.iloc[s : s + 100_000]) for s in range(0, len(X), 100_000)]
        t = time.perf_counter()
        for z in Z:
            inner.steps[-1][1].predict_proba(z)
        final_rate = len(X) / (time.perf_counter() - t)
        del Z
    print(f"bare pipeline predict_proba in memory (typed frame, {len(X):,} rows): {bare_rate:,.0f} rows/s")
    if final_rate:
        print(f"final estimator alone on the encoded matrix: {final_rate:,.0f} rows/s")
    print(
        f"ratio end-to-end / bare pipeline: {rate / bare_rate:.2f}"
        + (f"; end-to-end / final estimator: {rate / final_rate:.2f}" if final_rate else "")
    )

    scored = pd.read_parquet(out, columns=["row", "probability"])
    got = scored.loc[scored["row"] < len(X)].sort_values("row")["probability"].to_numpy()
    print(
        f"rows written {len(scored):,}; max |batch - predict_proba| on {len(X):,} rows: "
        f"{np.max(np.abs(got - bare)):.3g}"
    )
    del scored

    small = OUT / f"users_{a.explain_rows}.csv"
    if not small.exists():
        with open(csv) as src, open(small, "w") as dst:
            for i, line in enumerate(src):
                if i > a.explain_rows:
                    break
                dst.write(line)
    if scorer.family in (None, "gbm"):
        wall_e, _ = run_cli(
            [
                "score",
                str(model),
                str(small),
                "--out",
                str(OUT / "explained.csv"),
                "--explain",
                "--no-progress",
            ]
        )
        print(f"--explain: {a.explain_rows:,} rows in {wall_e:.2f} s, {a.explain_rows / wall_e:,.0f} rows/s")


if __name__ == "__main__":
    main()
