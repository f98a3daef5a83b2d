"""How an events run's cost grows with users: `train --events` and `score --events` on the real 365
tables and on synthetic logs of 100k to 3M users, each command in its own child process.

    .venv/bin/python benchmarks/bench_events_scale.py [--sizes real,100k,300k,1M,3M] [--budget standard]
        [--compare-all-rows 100k] [--out DIR]

The synthetic logs are `bench_events.make_data`'s (users resampled from the real tables, new ids, shifted
dates; 26 activity rows per user), cached under DIR/data. Per size: wall seconds, CPU seconds and peak
resident memory of the command (ru_maxrss from os.wait4 on the child: the largest single process among
it and the workers it reaped), the run's stage timings (run.json), the design and the sample trained on
(design.json), the test period's PR AUC, ROC AUC and expected / actual upgrades (metrics.json,
backtest.csv, forecasts.csv); then the scoring of every user free on the day after the data end. The
cost exponent is the least-squares slope of log(wall) on log(users). `--compare-all-rows SIZE` also
trains SIZE with `--design-rows all` and judges the sampled run's figures against the all-rows run's
95% user-bootstrap interval. Results go to benchmarks/out/events_scale.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table
from sklearn.metrics import average_precision_score

from bench_events import REAL, make_data  # the same synthetic logs as the features benchmark
from upgrade_predictor.console import say, warn
from upgrade_predictor.files import write_json_atomic
from upgrade_predictor.sources.event_mapping import builtin_mapping

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "events_scale"
RESULTS = HERE / "out" / "events_scale.json"
EVENTS_PER_USER = 26
SIZES = {"real": 0, "100k": 100_000, "300k": 300_000, "1M": 1_000_000, "3M": 3_000_000}
QUICK_ONLY = {"3M"}  # trained at the quick budget whatever --budget says: standard would run for hours
CLI = [sys.executable, "-m", "upgrade_predictor.cli"]
ENV = {**os.environ, "COLUMNS": "160"}  # the commands' logs keep whole lines
console = Console(width=220)  # wide tables stay whole when the output goes to a file


@dataclass
class Cost:
    """One command in a child process: wall and CPU seconds, peak resident memory, exit code, its log."""

    wall_s: float
    cpu_s: float
    peak_mb: float
    returncode: int
    log: str


@dataclass
class TrainResult:
    cost: Cost
    budget: str
    design_rows: str  # "budget" (the budget's row sample) or "all"
    timings: dict[str, float] = field(default_factory=dict)
    rows: int = 0  # design rows
    users: int = 0  # design users
    sample: dict[str, Any] = field(default_factory=dict)  # design.json on the rows trained on, as written
    chosen: str = ""
    pr_auc: float = math.nan
    roc_auc: float = math.nan
    rows_ratio: float = math.nan  # expected / actual positive rows of the test period (backtest.csv)
    weekly_ratio: float = math.nan  # expected / actual upgrades over the test period's weekly snapshots
    coverage: float = math.nan  # share of those weekly counts inside their interval


@dataclass
class ScoreResult:
    cost: Cost
    users: int
    users_per_s: float


@dataclass
class SizeResult:
    size: str
    users: int  # rows of the users table
    activity_rows: int  # rows of the activity tables, before cleaning
    data_s: float  # seconds to build the synthetic log (about 0 when reused)
    train: TrainResult | None
    score: ScoreResult | None
    load: tuple[float, float]  # 1-minute load average before and after


@dataclass
class Judged:
    """A sampled run's figure against the all-rows run's 95% user-bootstrap interval (same test rows:
    also the paired difference, sampled minus all rows)."""

    metric: str
    sampled: float
    all_rows: float
    low: float
    high: float
    verdict: str
    difference_low: float = float("nan")
    difference_high: float = float("nan")


def measured(cmd: list[str], log: Path) -> Cost:
    """Run `cmd` with its output in `log`; the parent's os.wait4 gives that child's own usage."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        f.write(" ".join(cmd) + "\n\n")
        f.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=ENV)
        _, status, use = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    cpu = use.ru_utime + use.ru_stime
    return Cost(round(wall, 2), round(cpu, 1), round(use.ru_maxrss / 1024), proc.returncode, str(log))


def data_for(size: str, out: Path) -> tuple[Path, float]:
    """The events folder of a size and the seconds it took to build."""
    if size == "real":
        return REAL, 0.0
    t0 = time.perf_counter()
    folder = make_data(out / "data", SIZES[size], SIZES[size] * EVENTS_PER_USER, seed=0)
    return folder, round(time.perf_counter() - t0, 1)


def table_rows(folder: Path) -> tuple[int, int]:
    """Rows of the users table and of the activity tables, as the files hold them."""

    def rows(stem: str) -> int:
        parquet = folder / f"{stem}.parquet"
        if parquet.exists():
            return int(pq.ParquetFile(parquet).metadata.num_rows)
        with (folder / f"{stem}.csv").open("rb") as f:
            return sum(1 for _ in f) - 1

    m = builtin_mapping()
    return rows(Path(m.users.file).stem), sum(rows(Path(a.file).stem) for a in m.activities)


def sample_keys(design: dict[str, Any]) -> dict[str, Any]:
    """design.json's keys about the rows the model was fitted on, whatever this version writes (nested
    records flattened to "outer.inner")."""
    keys: dict[str, Any] = {}
    for k, v in design.items():
        if "sample" in k.lower() or "fit" in k.lower():
            keys.update({f"{k}.{kk}": vv for kk, vv in v.items()} if isinstance(v, dict) else {k: v})
    if design.get("origins"):
        keys["test_origin.fit_rows"] = design["origins"][-1].get("fit_rows")
    return keys


def train(folder: Path, budget: str, run: Path, all_rows: bool) -> TrainResult:
    cmd = [*CLI, "train", "--events", str(folder), "--budget", budget, "--out", str(run), "--force"]
    cmd += ["--design-rows", "all"] if all_rows else []
    cost = measured(cmd, run.with_name(run.name + ".train.log"))
    if cost.returncode != 0:
        return TrainResult(cost, budget, "all" if all_rows else "budget")
    info, design, metrics = (
        json.loads((run / f).read_text()) for f in ("run.json", "design.json", "metrics.json")
    )
    backtest, weekly = pd.read_csv(run / "backtest.csv"), pd.read_csv(run / "forecasts.csv")
    last = (backtest["origin"] == backtest["origin"].max()) & (backtest["model"] == "model")
    test = backtest[last & (backtest["band"] == "all")]
    weeks = weekly[(weekly["origin"] == weekly["origin"].max()) & (weekly["model"] == "model")]
    return TrainResult(
        cost,
        budget,
        "all" if all_rows else "budget",
        info.get("timings", {}),
        int(design["rows"]),
        int(design["users"]),
        sample_keys(design),
        str(metrics["chosen"]["key"]),
        float(metrics["test"]["pr_auc"]),
        float(metrics["test"]["roc_auc"]),
        ratio(test["expected"].sum(), test["actual"].sum()),
        ratio(weeks["expected"].sum(), weeks["actual"].sum()),
        float(metrics["coverage"]),
    )


def ratio(a: float, b: float) -> float:
    return float(a / b) if b else math.nan


def score(run: Path, folder: Path, out: Path) -> ScoreResult:
    cmd = [*CLI, "score", str(run / "model.zip"), "--events", str(folder), "--out", str(out), "--no-progress"]
    cost = measured(cmd, out.with_suffix(".log"))
    users = int(pq.ParquetFile(out).metadata.num_rows) if cost.returncode == 0 else 0
    return ScoreResult(cost, users, round(users / cost.wall_s) if users else 0.0)


def one_size(size: str, budget: str, out: Path) -> SizeResult:
    load = os.getloadavg()[0]
    folder, data_s = data_for(size, out)
    users, activity = table_rows(folder)
    b = "quick" if size in QUICK_ONLY else budget
    run = out / "runs" / size
    t = train(folder, b, run, all_rows=False)
    s = score(run, folder, out / "runs" / f"{size}.scored.parquet") if t.cost.returncode == 0 else None
    for what, cost in (("train", t.cost), ("score", s.cost if s else None)):
        if cost is not None and cost.returncode != 0:
            warn(console, f"{size}: {what} exited {cost.returncode}; see {cost.log}")
    return SizeResult(size, users, activity, data_s, t, s, (load, os.getloadavg()[0]))


def exponent(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of log(seconds) on log(users): 1 is linear."""
    if len({n for n, _ in points}) < 2:
        return math.nan
    x, y = np.log([n for n, _ in points]), np.log([s for _, s in points])
    return float(np.polyfit(x, y, 1)[0])


def exponents(results: list[SizeResult], budget: str) -> dict[str, Any]:
    """Train over the sizes trained at --budget (a quick run does less work per row, which would bend
    the fit), score over every size scored."""
    trained = [r for r in results if r.train and r.train.budget == budget and r.train.cost.returncode == 0]
    scored = [r for r in results if r.score and r.score.cost.returncode == 0]
    return {
        "train": exponent([(r.users, r.train.cost.wall_s) for r in trained if r.train]),
        "train_sizes": [r.size for r in trained],
        "score": exponent([(r.users, r.score.cost.wall_s) for r in scored if r.score]),
        "score_sizes": [r.size for r in scored],
    }


def boot_figures(y: np.ndarray, ps: list[np.ndarray], users: np.ndarray, n: int, seed: int) -> np.ndarray:
    """PR AUC and expected / actual of each of `ps` on `n` resamples of whole users (a user's rows are
    not independent cases): an array (resample, prediction, figure)."""
    codes, uniq = pd.factorize(users)
    rng = np.random.default_rng(seed)
    out = np.full((n, len(ps), 2), np.nan)
    for b in range(n):
        w = np.bincount(rng.integers(0, len(uniq), len(uniq)), minlength=len(uniq))[codes]
        keep = w > 0
        yk, wk = y[keep], w[keep]
        if not (yk.any() and not yk.all()):
            continue
        for j, p in enumerate(ps):
            pk = p[keep]
            out[b, j] = (average_precision_score(yk, pk, sample_weight=wk), (wk * pk).sum() / (wk * yk).sum())
    return out


def judge(sampled_run: Path, all_run: Path, n: int, seed: int) -> list[Judged]:
    """The sampled run's PR AUC and expected / actual against the all-rows run's interval."""
    a = pd.read_parquet(all_run / "test_predictions.parquet", columns=["user_id", "cutoff", "y", "p"])
    s = pd.read_parquet(sampled_run / "test_predictions.parquet", columns=["user_id", "cutoff", "y", "p"])
    both = a.merge(s, on=["user_id", "cutoff"], suffixes=("", "_s"))
    paired = len(both) == len(a) == len(s)  # the same test rows: the difference can be paired
    frame = both if paired else a
    y = frame["y"].to_numpy().astype(int)
    ps = [frame["p"].to_numpy(float)] + ([frame["p_s"].to_numpy(float)] if paired else [])
    boots = boot_figures(y, ps, frame["user_id"].to_numpy(), n, seed)
    ys, pss = s["y"].to_numpy().astype(int), s["p"].to_numpy(float)
    points = {
        "pr_auc": (average_precision_score(ys, pss), average_precision_score(y, ps[0])),
        "expected / actual": (ratio(pss.sum(), ys.sum()), ratio(ps[0].sum(), y.sum())),
    }
    out = []
    for k, (metric, (mine, theirs)) in enumerate(points.items()):
        low, high = np.nanquantile(boots[:, 0, k], [0.025, 0.975])
        verdict = "inside" if low <= mine <= high else ("below" if mine < low else "above")
        j = Judged(metric, float(mine), float(theirs), float(low), float(high), verdict)
        if paired:
            j.difference_low, j.difference_high = np.nanquantile(
                boots[:, 1, k] - boots[:, 0, k], [0.025, 0.975]
            )
        out.append(j)
    return out


def has_design_rows() -> bool:
    help_text = subprocess.run([*CLI, "train", "--help"], capture_output=True, text=True, env=ENV).stdout
    return "--design-rows" in help_text


COLUMNS = ["size", "users", "activity rows", "budget", "train s [CPU]", "train peak MB",
           "design rows / users", "PR AUC", "ROC AUC", "E/A rows", "E/A weekly (coverage)", "score s",
           "score peak MB", "users scored", "users/s", "load"]  # fmt: skip


def train_cells(tr: TrainResult | None) -> list[str]:
    if tr is None:
        return ["-"] * 8
    cost = [tr.budget, f"{tr.cost.wall_s:.1f} [{tr.cost.cpu_s:.0f}]", f"{tr.cost.peak_mb:,.0f}"]
    if tr.cost.returncode != 0:
        return [*cost, f"exit {tr.cost.returncode}", *["-"] * 4]
    return [
        *cost,
        f"{tr.rows:,} / {tr.users:,}",
        f"{tr.pr_auc:.4f}",
        f"{tr.roc_auc:.4f}",
        f"{tr.rows_ratio:.3f}",
        f"{tr.weekly_ratio:.3f} ({tr.coverage:.0%})",
    ]


def score_cells(sc: ScoreResult | None) -> list[str]:
    if sc is None:
        return ["-"] * 4
    if sc.cost.returncode != 0:
        return [f"exit {sc.cost.returncode}", f"{sc.cost.peak_mb:,.0f}", "-", "-"]
    return [f"{sc.cost.wall_s:.1f}", f"{sc.cost.peak_mb:,.0f}", f"{sc.users:,}", f"{sc.users_per_s:,.0f}"]


def pairs(d: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else f"{v:,}" if type(v) is int else str(v)

    return ", ".join(f"{k} {fmt(v)}" for k, v in d.items())


def show(results: list[SizeResult], fits: dict[str, Any]) -> None:
    t = Table(title="events runs by size, each command in its own process", title_justify="left")
    for c in COLUMNS:
        t.add_column(c, justify="left" if c == "size" else "right")
    for r in results:
        load = f"{r.load[0]:.1f} / {r.load[1]:.1f}"
        t.add_row(
            r.size, f"{r.users:,}", f"{r.activity_rows:,}", *train_cells(r.train), *score_cells(r.score), load
        )
    console.print(t)
    for r in results:
        tr = r.train
        if tr is None or tr.cost.returncode != 0:
            say(console, f"{r.size}: train failed; see {tr.cost.log if tr else '-'}")
            continue
        say(console, f"{r.size}: {tr.chosen}; stage seconds (run.json): {pairs(tr.timings)}")
        say(console, f"{r.size}: rows trained on (design.json): {pairs(tr.sample) or 'no sample keys'}")
    say(console, f"cost exponent, slope of log(wall) on log(users) (1 = linear): train {fits['train']:.2f} "
                 f"(sizes {', '.join(fits['train_sizes']) or '-'}), score {fits['score']:.2f} "
                 f"(sizes {', '.join(fits['score_sizes']) or '-'})")  # fmt: skip


def show_judged(size: str, sampled: TrainResult, full: TrainResult, judged: list[Judged]) -> None:
    t = Table(title=f"{size}: the budget's row sample against every design row", title_justify="left")
    for c in ["figure", "sampled", "all rows", "all rows 95% (users)", "sampled is", "sampled - all 95%"]:
        t.add_column(c, justify="left" if c == "figure" else "right")
    for j in judged:
        diff = "-" if math.isnan(j.difference_low) else f"[{j.difference_low:+.4f}, {j.difference_high:+.4f}]"
        t.add_row(
            j.metric, f"{j.sampled:.4f}", f"{j.all_rows:.4f}", f"[{j.low:.4f}, {j.high:.4f}]", j.verdict, diff
        )
    t.add_row("chosen", sampled.chosen, full.chosen, "", "", "")
    t.add_row("train wall s", f"{sampled.cost.wall_s:.0f}", f"{full.cost.wall_s:.0f}", "", "", "")
    t.add_row("train peak MB", f"{sampled.cost.peak_mb:,.0f}", f"{full.cost.peak_mb:,.0f}", "", "", "")
    console.print(t)
    for name, r in (("sampled", sampled), ("all rows", full)):
        say(console, f"{name}: {pairs(r.sample)}")


def compare_all_rows(size: str, a: argparse.Namespace) -> tuple[TrainResult, list[Judged]]:
    """Train `size` again on every design row; judge the sampled run (trained before) against it."""
    folder, _ = data_for(size, a.out)
    run = a.out / "runs" / f"{size}-all-rows"
    full = train(folder, "quick" if size in QUICK_ONLY else a.budget, run, all_rows=True)
    if full.cost.returncode != 0:
        warn(console, f"{size}: the all-rows run exited {full.cost.returncode}; see {full.cost.log}")
        return full, []
    return full, judge(a.out / "runs" / size, run, a.resamples, a.seed)


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}")
    ap.add_argument("--budget", default="standard", choices=["quick", "standard", "thorough"])
    ap.add_argument("--out", type=Path, default=OUT, help="data and run folders")
    ap.add_argument("--compare-all-rows", metavar="SIZE", default=None, help="also train SIZE on every row")
    ap.add_argument("--resamples", type=int, default=500, help="user-bootstrap resamples of the comparison")
    ap.add_argument("--seed", type=int, default=365, help="seed of the bootstrap")
    a = ap.parse_args()
    sizes = [s.strip() for s in a.sizes.split(",") if s.strip()]
    wrong = [s for s in [*sizes, a.compare_all_rows] if s is not None and s not in SIZES]
    if wrong or not sizes or a.resamples < 100:
        ap.error(
            f"choose --sizes and --compare-all-rows from {', '.join(SIZES)}, and --resamples of at least 100"
        )
    if a.compare_all_rows and not has_design_rows():
        ap.error("--compare-all-rows: this version's 'upgrade-predictor train' has no --design-rows option")
    # Smallest first, the compared size included: a failure at a large size keeps what ran before it.
    a.sizes = [s for s in SIZES if s in sizes or s == a.compare_all_rows]
    return a


def main() -> None:
    a = parse()
    say(console, f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    report: dict[str, Any] = {"budget": a.budget, "cores": os.cpu_count(), "compare_all_rows": None}
    results: list[SizeResult] = []
    for size in a.sizes:
        r = one_size(size, a.budget, a.out)
        results.append(r)
        if r.train is not None:
            scored = f"{r.score.cost.wall_s:.0f} s" if r.score else "-"
            say(console, f"{size}: {r.users:,} users, train {r.train.cost.wall_s:.0f} s "
                         f"(peak {r.train.cost.peak_mb:,.0f} MB), score {scored}")  # fmt: skip
        report["sizes"] = [asdict(x) for x in results]
        report["exponents"] = exponents(results, a.budget)
        write_json_atomic(RESULTS, report)  # after every size, so a long session keeps what it measured
    sampled = next((r.train for r in results if r.size == a.compare_all_rows), None)
    compared: tuple[TrainResult, list[Judged]] | None = None
    if sampled is not None and sampled.cost.returncode == 0:
        compared = compare_all_rows(a.compare_all_rows, a)
        report["compare_all_rows"] = {"size": a.compare_all_rows, "all_rows": asdict(compared[0]),
                                      "judged": [asdict(j) for j in compared[1]]}  # fmt: skip
        write_json_atomic(RESULTS, report)
    elif a.compare_all_rows:
        warn(console, f"{a.compare_all_rows}: no all-rows comparison, its sampled run failed")
    show(results, report["exponents"])
    if sampled is not None and compared is not None and compared[1]:
        show_judged(a.compare_all_rows, sampled, *compared)
    say(console, f"results: {RESULTS}")


if __name__ == "__main__":
    main()
