"""How training time and memory grow with rows: the real table resampled (with a small jitter) to each
size, `train` run on it per budget in a child process, wall time and peak memory per stage, and the
growth exponent log(t2/t1) / log(n2/n1) between consecutive sizes (1 = linear).

    .venv/bin/python benchmarks/bench_scaling.py [--sizes 17761,50000] [--budgets quick,standard]
        [--time-limit SECONDS] [--no-report] [--data PATH]

Sizes such as 200000 or 1000000 are accepted (the resampled files are cached under
benchmarks/out/scaling/). Peak memory is the resident set of the training process and its worker
processes added up, sampled every 0.2 s (pages they share are counted once per process).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from rich.console import Console
from rich.table import Table

from upgrade_predictor import config

OUT = Path(__file__).resolve().parent / "out" / "scaling"
STAGES = ["audit", "comparison", "tuning", "final fit", "write", "report"]
console = Console(width=200)  # wide tables stay whole when the output goes to a file


def resampled(data: Path, rows: int, seed: int = 0, source: str | None = None) -> Path:
    """The real rows drawn with replacement to `rows` rows; minutes and days get a small jitter so
    copies are not identical (counts stay as drawn, so passed exams never exceed started ones).

    With `source`, a column of that name holds each row's source row (the same draws otherwise), so
    a split grouped by it keeps every copy of a student on one side."""
    path = OUT / (f"ml_{rows}_s{seed}.csv" if source is None else f"ml_{rows}_s{seed}_{source}.csv")
    if path.exists():
        return path
    src = pd.read_csv(data, keep_default_na=False, na_values=config.NA_VALUES)
    rng = np.random.default_rng(seed)
    rows_drawn = rng.integers(0, len(src), rows)
    df = src.iloc[rows_drawn].reset_index(drop=True)
    for col, digits in (("minutes_watched", 1), ("minutes_spent_on_exams", 2)):
        if col in df:
            df[col] = (df[col] * np.exp(rng.normal(0, 0.05, rows))).round(digits)
    if "days_on_platform" in df:
        top = int(src["days_on_platform"].max())
        df["days_on_platform"] = np.clip(df["days_on_platform"] + rng.integers(-2, 3, rows), 0, top)
    if source is not None:
        df.insert(0, source, rows_drawn)
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


@dataclass
class Measure:
    """One train run: seconds and peak memory (MB) per stage."""

    rows: int
    budget: str
    seconds: dict[str, float] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds of the process tree
    total_s: float = 0.0
    total_peak_mb: float = 0.0
    chosen: str = ""
    test_pr_auc: float = float("nan")
    load_before: float = 0.0
    load_after: float = 0.0
    process_s: float = 0.0  # the child process end to end, start-up and imports included


class TreeMonitor:
    """Samples the resident memory of this process and its children in a thread (peak per stage), and
    their CPU seconds per stage: on a busy machine CPU time says more about the work than wall time."""

    def __init__(self, every: float = 0.2):
        self.every, self.stage = every, "start"
        self.peak: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._cpu_at = 0.0
        self._stop = threading.Event()
        self._me = psutil.Process()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self) -> list[psutil.Process]:
        return [self._me, *self._me.children(recursive=True)]

    def _rss(self) -> float:
        total = 0
        for p in self._tree():
            try:
                total += p.memory_info().rss
            except psutil.Error:  # a worker that ended between listing and reading
                pass
        return total / 2**20

    def _cpu(self) -> float:
        total = 0.0
        for p in self._tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def sample(self) -> None:
        stage = self.stage
        self.peak[stage] = max(self.peak.get(stage, 0.0), self._rss())

    def enter(self, stage: str) -> None:
        self.sample()  # the last reading of the stage before, then the new one starts
        cpu = self._cpu()
        self.cpu[self.stage] = self.cpu.get(self.stage, 0.0) + cpu - self._cpu_at
        self.stage, self._cpu_at = stage, cpu
        self.sample()

    def __enter__(self) -> TreeMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def child(csv: Path, budget: str, out: Path, report: bool, time_limit: float | None) -> None:
    """One run in this (fresh) process; writes a Measure as JSON."""
    from upgrade_predictor.api import TrainConfig
    from upgrade_predictor.api import report as build_report
    from upgrade_predictor.training.clock import RunClock
    from upgrade_predictor.training.train import run_training

    rows = sum(1 for _ in csv.open()) - 1
    load_before = os.getloadavg()[0]
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    with TreeMonitor() as memory:
        clock = RunClock(time_limit, listen=memory.enter)
        cfg = TrainConfig(
            data=csv, budget=budget, out=out.with_suffix(""), force=True, report=report, time_limit=time_limit
        )
        finish = (lambda folder, name: build_report(folder, quiet, name=name)) if report else None
        run_dir = run_training(cfg, quiet, finish, clock)
        memory.enter("end")
    m = json.loads((run_dir / "metrics.json").read_text())
    result = Measure(
        rows,
        budget,
        {k: round(v, 2) for k, v in clock.stages.items()},
        {k: round(v) for k, v in memory.peak.items() if k in clock.stages},
        {k: round(v, 1) for k, v in memory.cpu.items() if k in clock.stages},
        round(sum(clock.stages.values()), 2),
        round(max(memory.peak.values())),
        m["chosen"]["key"],
        m["test"]["pr_auc"],
        load_before,
        os.getloadavg()[0],
    )
    out.write_text(json.dumps(asdict(result)))


def run_one(csv: Path, budget: str, report: bool, time_limit: float | None) -> Measure:
    """Train in a child process, so each run starts with fresh memory and fresh workers."""
    out = OUT / f"result_{csv.stem}_{budget}.json"
    cmd = [sys.executable, __file__, "--child", str(csv), "--budgets", budget, "--json", str(out)]
    cmd += ["--no-report"] if not report else []
    cmd += ["--time-limit", str(time_limit)] if time_limit else []
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    d = json.loads(out.read_text())
    d["process_s"] = round(time.perf_counter() - started, 1)
    return Measure(**d)


def exponent(t1: float, t2: float, n1: int, n2: int) -> float:
    return math.log(t2 / t1) / math.log(n2 / n1) if t1 > 0 and t2 > 0 and n1 != n2 else float("nan")


def show(results: list[Measure]) -> None:
    for budget in dict.fromkeys(r.budget for r in results):
        rs = sorted((r for r in results if r.budget == budget), key=lambda r: r.rows)
        t = Table(
            title=f"--budget {budget}: wall seconds [CPU seconds] (peak MB) per stage", title_justify="left"
        )
        for c in [
            "rows",
            *STAGES,
            "total",
            "CPU",
            "process",
            "peak MB",
            "chosen",
            "test PR AUC",
            "load 1 min",
        ]:
            t.add_column(c, justify="left" if c == "chosen" else "right")
        for r in rs:
            t.add_row(
                f"{r.rows:,}",
                *(
                    f"{r.seconds[s]:.1f} [{r.cpu_s.get(s, 0):.0f}] ({r.peak_mb.get(s, 0):,.0f})"
                    if s in r.seconds
                    else "-"
                    for s in STAGES
                ),
                f"{r.total_s:.1f}",
                f"{sum(r.cpu_s.values()):.0f}",
                f"{r.process_s:.1f}",
                f"{r.total_peak_mb:,.0f}",
                r.chosen,
                f"{r.test_pr_auc:.4f}",
                f"{r.load_before:.1f} / {r.load_after:.1f}",
            )
        console.print(t)
        if len(rs) > 1:
            g = Table(
                title=f"--budget {budget}: growth exponent between sizes (1 = linear)", title_justify="left"
            )
            for c in ["rows", *STAGES, "total"]:
                g.add_column(c, justify="right")
            for a, b in zip(rs, rs[1:]):
                g.add_row(
                    f"{a.rows:,} -> {b.rows:,}",
                    *(
                        f"{exponent(a.seconds.get(s, 0), b.seconds.get(s, 0), a.rows, b.rows):.2f}"
                        for s in STAGES
                    ),
                    f"{exponent(a.total_s, b.total_s, a.rows, b.rows):.2f}",
                )
            console.print(g)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="the real table [default: ml_datasource.csv]")
    ap.add_argument("--sizes", default="17761,50000", help="comma-separated row counts")
    ap.add_argument("--budgets", default="quick,standard")
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, args.budgets, args.json, not args.no_report, args.time_limit)
        return
    data = args.data or config.default_data_path()
    sizes = [int(s) for s in args.sizes.split(",")]
    console.print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    results = []
    for n in sizes:
        csv = resampled(data, n)
        for budget in args.budgets.split(","):
            results.append(run_one(csv, budget, not args.no_report, args.time_limit))
            r = results[-1]
            console.print(f"{n:,} rows, {budget}: {r.total_s:.0f} s, peak {r.total_peak_mb:,.0f} MB")
            with (OUT / "results.jsonl").open("a") as f:
                f.write(json.dumps(asdict(r)) + "\n")
    show(results)


if __name__ == "__main__":
    main()
