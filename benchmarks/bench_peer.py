"""A peer at equal wall time: upgrade-predictor against FLAML's AutoML on the same split.

    pip install -e '.[bench]'   # FLAML, for this benchmark only
    .venv/bin/python benchmarks/bench_peer.py [--sets real,200k] [--budgets quick,standard] [--runs 1]
        [--data PATH] [--resamples 2000]

For each data set and budget, `upgrade_predictor.api.train` runs (report=False) and its wall time is
measured; FLAML then gets that many seconds as `time_budget` (metric "ap", n_jobs=2, seed fixed) on the
run's own training rows, read from its predictions.parquet (the stratified 20% hold-out, seed 365), with
the same features (every input column but the target; FLAML encodes the categorical ones itself). Both
are scored on the run's test rows: PR AUC (average precision) and ROC AUC, and the difference ours - FLAML
gets a 95% paired bootstrap interval over test rows (scipy.stats.bootstrap, percentile method), or
over source rows on a grouped set, whose copies of one student are not independent test cases.

`real` is ml_datasource.csv. `200k` is the real rows resampled to 200,000 with a small jitter by
bench_scaling.resampled (cached under benchmarks/out/scaling/), with each row's source row in the column
source_row: the tool trains with --group source_row and FLAML gets the same groups, so every copy of a
student sits on one side of the test split and of both tools' validation folds. `200k-copies` is the
same rows split freely, as a user who did not know of the copies would: about 99.98% of its test rows
then have a near-copy in training, which rewards memorising. Results: benchmarks/out/peer/.
With --runs N each (set, budget) is trained N times (the tool's seed stays 365, which fixes the split;
FLAML's seed is 365 + run), so the rows show how wall time and FLAML's search vary.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from scipy.stats import bootstrap
from sklearn.metrics import average_precision_score, roc_auc_score

from bench_scaling import resampled  # the scaling benchmark's resampler, so both use the same 200k rows
from upgrade_predictor import api, config
from upgrade_predictor.console import plain, say
from upgrade_predictor.errors import InputError
from upgrade_predictor.files import write_atomic, write_json_atomic

OUT = Path(__file__).resolve().parent / "out" / "peer"
GROUP = "source_row"  # the resampled sets' column naming each row's source row


@dataclass(frozen=True)
class PeerSet:
    """A data set of the benchmark: rows resampled (None: the real table as it is), and the column
    both tools keep together in every split (None: rows split freely)."""

    rows: int | None
    group: str | None


SETS = {
    "real": PeerSet(None, None),
    "200k": PeerSet(200_000, GROUP),
    "200k-copies": PeerSet(200_000, None),
}
console = Console(width=200)  # wide tables stay whole when the output goes to a file


@dataclass
class Scores:
    """Test scores of one model."""

    pr_auc: float
    roc_auc: float


@dataclass
class Diff:
    """ours - FLAML on the test rows, with a 95% paired bootstrap interval."""

    value: float
    low: float
    high: float


@dataclass
class PeerResult:
    """One (data set, budget, run): both tools at the same wall time on the same rows."""

    data_set: str
    rows: int
    train_rows: int
    test_rows: int
    budget: str
    run: int
    ours_seconds: float
    flaml_budget_s: float
    flaml_seconds: float  # FLAML's fit end to end; it may overrun its budget by the final refit
    ours_chosen: str
    flaml_best: str
    flaml_config: dict
    ours: Scores
    flaml: Scores
    pr_auc_diff: Diff
    roc_auc_diff: Diff
    bar_met: bool  # the PR AUC interval reaches 0 or above: ours is not significantly below FLAML
    load_before: float
    load_after: float
    run_dir: str
    group: str | None = None  # the column both tools kept on one side of every split


def data_path(name: str, real: Path) -> Path:
    """The CSV of a data set name."""
    if name not in SETS:
        raise InputError(f"--sets: unknown {name!r}; choose from {', '.join(SETS)}")
    spec = SETS[name]
    # Both 200k sets are the same rows: the source column is only dropped when the split ignores it.
    return real if spec.rows is None else resampled(real, spec.rows, source=GROUP)


def read_table(path: Path) -> pd.DataFrame:
    """The table as the tool reads it: only an empty cell is missing, so the code NA stays Namibia."""
    return pd.read_csv(path, keep_default_na=False, na_values=config.NA_VALUES)


def features(df: pd.DataFrame, target: str, train_rows: np.ndarray) -> pd.DataFrame:
    """Every input column but the target and the source row; text columns become pandas categoricals whose categories
    come from the training rows only (FLAML encodes categoricals itself; a code unseen in training
    becomes missing, as it would when scoring new data)."""
    X = df.drop(columns=[target, *([GROUP] if GROUP in df else [])])
    for col in X.columns:
        if not pd.api.types.is_numeric_dtype(X[col]):
            text = X[col].astype(str).where(X[col].notna())
            cats = sorted(text.iloc[train_rows].dropna().unique())
            X[col] = pd.Categorical(text.where(text.isin(cats)), categories=cats)
    return X


def scores(y: np.ndarray, p: np.ndarray) -> Scores:
    return Scores(float(average_precision_score(y, p)), float(roc_auc_score(y, p)))


def paired_diffs(
    y: np.ndarray,
    p_ours: np.ndarray,
    p_peer: np.ndarray,
    resamples: int,
    seed: int,
    clusters: np.ndarray | None = None,
) -> tuple[Diff, Diff]:
    """PR AUC and ROC AUC differences (ours - peer) with 95% paired bootstrap intervals over test rows,
    or over `clusters` (the copies of one student are not independent draws: resampling them one by one
    would narrow the interval about sqrt(copies) times). Percentile intervals: BCa's jackknife would
    refit the statistic once per row or cluster."""

    def stat_rows(rows: np.ndarray) -> np.ndarray:
        yy, a, b = y[rows], p_ours[rows], p_peer[rows]
        return np.array(
            [
                average_precision_score(yy, a) - average_precision_score(yy, b),
                roc_auc_score(yy, a) - roc_auc_score(yy, b),
            ]
        )

    stat = stat_rows
    n_units = len(y)
    if clusters is not None:
        order = np.argsort(clusters, kind="stable")
        _, starts = np.unique(clusters[order], return_index=True)
        units = np.split(order, starts[1:])
        n_units = len(units)

        def stat(picked: np.ndarray) -> np.ndarray:
            return stat_rows(np.concatenate([units[i] for i in picked]))

    res = bootstrap(
        (np.arange(n_units),),
        stat,
        vectorized=False,
        n_resamples=resamples,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    point = stat_rows(np.arange(len(y)))
    lo, hi = res.confidence_interval
    return (
        Diff(float(point[0]), float(lo[0]), float(hi[0])),
        Diff(float(point[1]), float(lo[1]), float(hi[1])),
    )


def run_ours(csv: Path, budget: str, out: Path, group: str | None) -> tuple[float, api.TrainedRun]:
    """Train with the tool (no report) and return its wall seconds. The source row, when the file has
    one, is never a feature: the grouping column, or else left out."""
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - one per run, closed with the process
    has_source = GROUP in pd.read_csv(csv, nrows=0).columns
    options = {"group_column": group} if group else {"exclude": [GROUP]} if has_source else {}
    started = time.perf_counter()
    run = api.train(csv, budget=budget, out=out, force=True, report=False, console=quiet, **options)
    return time.perf_counter() - started, run


def run_flaml(
    X_tr: pd.DataFrame,
    y_tr: np.ndarray,
    X_te: pd.DataFrame,
    seconds: float,
    seed: int,
    groups: np.ndarray | None = None,
):
    """FLAML's AutoML with `seconds` of time budget; returns (test probabilities, fit seconds, best
    learner, its configuration). `groups` keep FLAML's own validation splits grouped too."""
    from flaml import AutoML  # an optional dependency: pip install -e '.[bench]'

    automl = AutoML()
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        automl.fit(
            X_tr,
            y_tr,
            task="classification",
            metric="ap",
            time_budget=seconds,
            n_jobs=2,
            seed=seed,
            verbose=0,
            **({"groups": groups} if groups is not None else {}),
        )
    fit_s = time.perf_counter() - started
    p = automl.predict_proba(X_te)[:, 1]
    return p, fit_s, str(automl.best_estimator), dict(automl.best_config or {})


def compare(
    name: str, csv: Path, budget: str, run: int, resamples: int, seed: int, target: str
) -> PeerResult:
    """One (data set, budget, run): train ours, then FLAML at the same wall time, on the same rows."""
    load_before = os.getloadavg()[0]
    run_dir = OUT / "runs" / f"{name}_{budget}_r{run}"
    group = SETS[name].group
    ours_s, trained = run_ours(csv, budget, run_dir, group)
    preds = pd.read_parquet(trained.dir / "predictions.parquet")
    df = read_table(csv)
    if len(preds) != len(df):
        raise InputError(f"{trained.dir}/predictions.parquet has {len(preds)} rows but {csv} has {len(df)}")
    train = preds[preds["set"] == "train"].sort_values("row")
    test = preds[preds["set"] == "test"].sort_values("row")
    tr, te = train["row"].to_numpy(), test["row"].to_numpy()
    y = df[target].to_numpy()
    positive = y[te][test["y"].to_numpy() == 1][0]
    y01 = (y == positive).astype(int)
    # The tool's labels and the raw column must agree row by row, or the rows are not the same rows.
    if not (np.array_equal(y01[tr], train["y"].to_numpy()) and np.array_equal(y01[te], test["y"].to_numpy())):
        raise InputError(f"the labels in {trained.dir}/predictions.parquet do not match {csv}")
    groups = None
    if group is not None:
        groups = df[group].to_numpy()
        if np.isin(groups[te], groups[tr]).any():
            raise InputError(f"{trained.dir}: a {group} has rows on both sides of the split")
    X = features(df, target, tr)
    p_peer, flaml_s, best, best_cfg = run_flaml(
        X.iloc[tr], y01[tr], X.iloc[te], ours_s, seed + run, None if groups is None else groups[tr]
    )
    y_te, p_ours = y01[te], test["p"].to_numpy()
    # FLAML's test scores beside the run's own, so an interval can be recomputed without refitting.
    flaml_file = trained.dir / "flaml_test.parquet"
    write_atomic(flaml_file, lambda f: pd.DataFrame({"row": te, "p": p_peer}).to_parquet(f, index=False))
    pr, roc = paired_diffs(y_te, p_ours, p_peer, resamples, seed, None if groups is None else groups[te])
    return PeerResult(
        name,
        len(df),
        len(tr),
        len(te),
        budget,
        run,
        round(ours_s, 1),
        round(ours_s, 1),
        round(flaml_s, 1),
        trained.metrics.chosen.key,
        best,
        best_cfg,
        scores(y_te, p_ours),
        scores(y_te, p_peer),
        pr,
        roc,
        pr.high >= 0,
        load_before,
        os.getloadavg()[0],
        str(trained.dir),
        group,
    )


def show(results: list[PeerResult]) -> None:
    """The comparison table."""
    t = Table(
        title="test set: ours (upgrade-predictor) vs FLAML at equal wall time; difference ours - FLAML "
        "with 95% paired bootstrap interval",
        title_justify="left",
    )
    cols = ["data set", "rows", "split", "budget", "seconds", "ours PR / ROC AUC", "FLAML PR / ROC AUC"]
    cols += ["PR AUC diff [95%]", "ROC AUC diff [95%]", "ours chosen", "FLAML best", "FLAML s", "load"]
    for c in cols:
        t.add_column(
            c,
            justify="left" if c in ("data set", "split", "budget", "ours chosen", "FLAML best") else "right",
        )
    for r in results:
        t.add_row(
            *(
                plain(x)
                for x in (
                    r.data_set,
                    f"{r.rows:,}",
                    f"by {r.group}" if r.group else "free",
                    r.budget,
                    f"{r.ours_seconds:.0f}",
                    f"{r.ours.pr_auc:.4f} / {r.ours.roc_auc:.4f}",
                    f"{r.flaml.pr_auc:.4f} / {r.flaml.roc_auc:.4f}",
                    f"{r.pr_auc_diff.value:+.4f} [{r.pr_auc_diff.low:+.4f}, {r.pr_auc_diff.high:+.4f}]",
                    f"{r.roc_auc_diff.value:+.4f} [{r.roc_auc_diff.low:+.4f}, {r.roc_auc_diff.high:+.4f}]",
                    r.ours_chosen,
                    r.flaml_best,
                    f"{r.flaml_seconds:.0f}",
                    f"{r.load_before:.1f} / {r.load_after:.1f}",
                )
            )
        )
    console.print(t)
    for r in results:
        verdict = "met" if r.bar_met else "NOT met"
        say(
            console,
            f"{r.data_set} {r.budget} run {r.run}: bar (PR AUC not significantly below FLAML) {verdict}",
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="real,200k", help="comma-separated: real, 200k, 200k-copies")
    ap.add_argument("--budgets", default="quick,standard")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--data", type=Path, default=None, help="the real table [default: ml_datasource.csv]")
    ap.add_argument("--target", default=config.TARGET)
    ap.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (at least 1000)")
    ap.add_argument("--seed", type=int, default=config.SEED, help="FLAML's and the bootstrap's seed")
    args = ap.parse_args()
    # FLAML logs each trial through the logging module even at verbose=0 on some versions.
    logging.getLogger("flaml").setLevel(logging.ERROR)
    sets, budgets = args.sets.split(","), args.budgets.split(",")
    unknown = [s for s in sets if s not in SETS] + [b for b in budgets if b not in config.BUDGETS]
    if unknown or args.runs < 1 or args.resamples < 1000:
        ap.error(
            f"choose --sets from {', '.join(SETS)}, --budgets from {', '.join(config.BUDGETS)}, "
            "--runs of at least 1 and --resamples of at least 1000"
        )
    real = args.data or config.default_data_path()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    say(console, f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    results: list[PeerResult] = []
    for name in sets:
        csv = data_path(name, real)
        for budget in budgets:
            for run in range(args.runs):
                r = compare(name, csv, budget, run, args.resamples, args.seed, args.target)
                results.append(r)
                say(
                    console,
                    f"{name} {budget} run {run}: {r.ours_seconds:.0f} s; PR AUC ours {r.ours.pr_auc:.4f}, "
                    f"FLAML {r.flaml.pr_auc:.4f} ({r.flaml_best}, {r.flaml_seconds:.0f} s)",
                )
                # Written after every pair, so a long session keeps what it measured.
                write_json_atomic(OUT / f"peer_{stamp}.json", [asdict(x) for x in results])
    show(results)
    say(console, f"results: {OUT / f'peer_{stamp}.json'}")


if __name__ == "__main__":
    main()
