"""Report benchmark: the time `upgrade-predictor report` takes per model family on a ~100k-row table.

    .venv/bin/python benchmarks/bench_report.py [--rows 100000] [--families logreg,knn,svm,tree,forest,gbm]
                                                [--baseline forest] [--retrain]

Builds a table of --rows rows from the real ml_datasource.csv (rows drawn with replacement, numeric
columns jittered a little so no row is an exact copy), trains one run per family on it without a report
(no imbalance strategy, 2-fold CV, no tuning: the untuned defaults, so the forest has fully grown trees),
then times the report of each run in a fresh process. With --baseline it also times the report code of
the last commit (`git archive HEAD`, run with PYTHONPATH pointing at it) on those families' runs, for an
old / new ratio measured in the same run. Runs and data are kept under benchmarks/out/report/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from upgrade_predictor import api, config
from upgrade_predictor.api import TrainConfig
from upgrade_predictor.models import FAMILIES

console = Console()
OUT = Path(__file__).resolve().parent / "out" / "report"
ROOT = Path(__file__).resolve().parents[1]
BAR_S = 15.0
# The quick budget without tuning: the report is timed on each family's default (largest) model.
BENCH_BUDGET = dataclasses.replace(config.BUDGETS["quick"], name="bench", tune_families=0)

# Runs the report of one run folder and prints its wall and CPU seconds (the package imported first,
# as inside `train`; shap, imported by the report itself, counts).
CHILD = """
import sys, time
from pathlib import Path
from rich.console import Console
from upgrade_predictor import api
t, c = time.perf_counter(), time.process_time()
api.report(Path(sys.argv[1]), Console(quiet=True))
print(f"{time.perf_counter() - t:.3f} {time.process_time() - c:.3f}")
"""


def make_table(rows: int, seed: int = 0) -> Path:
    """The real file resampled to `rows` rows with small jitter: continuous columns times a log-normal
    factor (sd 5%), whole-number day counts moved by at most a day."""
    path = OUT / f"ml_datasource_{rows}.csv"
    if path.exists():
        return path
    src = pd.read_csv(config.default_data_path(), keep_default_na=False, na_values=config.NA_VALUES)
    rng = np.random.default_rng(seed)
    df = src.iloc[rng.integers(0, len(src), rows)].reset_index(drop=True)
    for c in ("minutes_watched", "minutes_spent_on_exams"):
        df[c] = (df[c] * np.exp(rng.normal(0, 0.05, rows))).round(2)
    df["days_on_platform"] = (df["days_on_platform"] + rng.integers(-1, 2, rows)).clip(lower=0)
    OUT.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


def train_runs(data: Path, families: list[str], retrain: bool) -> dict[str, Path]:
    """One report-less run per family (kept between invocations unless --retrain)."""
    config.BUDGETS[BENCH_BUDGET.name] = BENCH_BUDGET
    out: dict[str, Path] = {}
    for fam in families:
        run = OUT / "runs" / f"{data.stem}-{fam}"
        if retrain or not (run / "model.zip").exists():
            start = time.perf_counter()
            cfg = TrainConfig(
                data=data,
                out=run,
                budget=BENCH_BUDGET.name,
                families=[fam],
                strategies=["none"],
                report=False,
                force=True,
            )
            api.train(cfg, console=Console(quiet=True))
            console.print(f"trained {fam} in {time.perf_counter() - start:.0f} s")
        out[fam] = run
    return out


def old_source() -> Path:
    """The package as of the last commit, unpacked beside the runs (read-only git: `git archive`)."""
    dest = OUT / "head"
    blob = subprocess.run(
        ["git", "archive", "HEAD", "src/upgrade_predictor"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def time_report(run: Path, pythonpath: Path | None = None) -> tuple[float, float]:
    """Wall and CPU seconds of the report of `run`, in a fresh process (with `pythonpath` first)."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = f"{pythonpath}{os.pathsep}{env.get('PYTHONPATH', '')}"
    r = subprocess.run([sys.executable, "-c", CHILD, str(run)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"report of {run} failed:\n{r.stderr[-3000:]}")
    wall, cpu = r.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def stated_samples(run: Path) -> str:
    """The sample sizes the report states (permutation importance, SHAP, partial dependence)."""
    html = (run / "report.html").read_text().replace("&#39;", "'")
    found = re.findall(r"(?:a stratified sample of ([\d,]+) of (?:the )?[\d,]+|all ([\d,]+)) test rows", html)
    return " / ".join(a or b for a, b in found[:3])


def chosen_of(run: Path) -> tuple[str, int]:
    m = json.loads((run / "metrics.json").read_text())
    return m["chosen"]["label"], int(m["split"]["n_test"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--baseline", default="", help="families whose report also runs with the HEAD code")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--train-only", action="store_true")
    args = ap.parse_args()
    families = args.families.split(",")
    data = make_table(args.rows)
    runs = train_runs(data, families, args.retrain)
    if args.train_only:
        return
    console.print(f"load before timing: {os.getloadavg()[0]:.2f} (1-minute average, 2 cores)")
    t = Table(title=f"report step on {args.rows:,} rows ({data.name}); bar {BAR_S:.0f} s")
    for c in (
        "family",
        "chosen",
        "test rows",
        "wall s",
        "CPU s",
        f"wall ≤ {BAR_S:.0f} s",
        "samples: perm. / SHAP / PDP",
    ):
        t.add_column(c)
    new: dict[str, tuple[float, float]] = {}
    for fam, run in runs.items():
        label, n_test = chosen_of(run)
        new[fam] = wall, cpu = time_report(run)
        ok = "yes" if wall <= BAR_S else "NO"
        t.add_row(fam, label, f"{n_test:,}", f"{wall:.1f}", f"{cpu:.1f}", ok, stated_samples(run))
    console.print(t)
    baseline = [f for f in args.baseline.split(",") if f in runs]
    if baseline:
        old = old_source()
        for fam in baseline:
            wall, cpu = time_report(runs[fam], old)
            console.print(
                f"{fam}: last commit's report {wall:.1f} s wall ({cpu:.1f} s CPU), now {new[fam][0]:.1f} s "
                f"({new[fam][1]:.1f} s CPU): {wall / new[fam][0]:.1f}x faster wall, {cpu / new[fam][1]:.1f}x CPU"
            )
    console.print(f"load after timing: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
