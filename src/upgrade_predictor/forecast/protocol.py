"""The forecasting protocol: compare on grouped folds, backtest in time order, recalibrate, fit for today.

Rows are (user, cutoff) pairs (`design.py`), features use only events before the cutoff (`features.py`).
The same families, imbalance strategies, tuning and metrics as a table run are reused; what changes is
how the past is split from the future:

* the comparison of families and strategies runs on the training rows of the test split (label windows
  closed before the test period), on a stratified sample of users, with folds grouped by user;
* a rolling-origin backtest refits the chosen pipeline at each origin on the rows whose labels had
  closed by then, holding out the most recent `calibration_days` of cutoffs to recalibrate it; the last
  origin is the held-out test period, touched once;
* the deployed model is fitted the same way on every labelled row, so it is calibrated for the period
  it will score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from rich.console import Console
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.preprocessing import OneHotEncoder

from .. import config, evaluation
from ..console import say, warn
from ..errors import InputError
from ..models import FAMILIES, SMOTE_K, build_pipeline, row_caps
from ..runs.options import RunOptions
from ..sampling import stratified_rows
from ..schema import Schema
from ..training.candidates import Candidate, CVResult
from ..training.clock import RunClock
from ..training.metrics import Limits, Tuning
from ..training.planning import FitPlan
from ..training.selection import compare, leaderboard
from ..training.splits import MIN_CLASS_PER_FOLD, Folds, cv_folds
from ..training.summary import progress_bar
from .design import Design, TimeSplit, rolling_origins
from .matrix import Matrix
from .threads import one_blas_thread, side_by_side, threads_each, with_threads

CALIBRATIONS = ("none", "sigmoid")  # what a bundle can carry: the pipeline, or it Platt-scaled on recent rows
SHORTLIST = 3  # leading families checked on a later period before one is chosen
AGGREGATED = "aggregated-table model"  # the baseline fitted the aggregated table's way, when it runs


def model_key(method: str) -> str:
    """The name of the chosen model's predictions under calibration `method` (see OriginResult.p)."""
    return f"model ({method})"


@dataclass
class Fitted:
    """A pipeline fitted on older rows and its recalibrations on the most recent labelled rows."""

    models: dict[str, Any]  # calibration method -> fitted estimator
    calib_rows: np.ndarray  # design rows that recalibrated it
    fit_rows: int
    sampled: bool  # fitted on a sample of rows (costly families)


@dataclass
class OriginResult:
    """One backtest origin: its split, the recalibrated model's and the baselines' test predictions."""

    split: TimeSplit
    p: dict[str, np.ndarray]  # model name -> probabilities on split.test rows
    calib_y: np.ndarray
    calib_p: dict[str, np.ndarray]  # calibration method -> probabilities on the calibration rows
    fit_rows: int
    calib_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # design rows

    def model(self, method: str) -> np.ndarray:
        """The chosen model's test predictions under calibration `method`."""
        return self.p[model_key(method)]

    def baselines(self) -> dict[str, np.ndarray]:
        """The baselines' test predictions (every entry of `p` but the model's), in their order."""
        models = {model_key(method) for method in CALIBRATIONS}
        return {name: p for name, p in self.p.items() if name not in models}


@dataclass
class ForecastOutcome:
    results: dict[str, CVResult]
    board: pd.DataFrame
    tuning: dict[str, Tuning]
    chosen: CVResult
    compare_rows: int
    origins: list[OriginResult]
    calibration: str  # the method the backtest chose
    calibration_scores: dict[str, float]  # mean test log loss per method over the origins
    final: Fitted
    baselines: list[str] = field(default_factory=list)
    selection: dict[str, float] = field(default_factory=dict)  # candidate -> log loss on the first origin
    notes: list[str] = field(default_factory=list)  # what --time-limit cut, one sentence each


def events_fit_plan(y: np.ndarray, folds: Folds) -> FitPlan:
    """The comparison's plan: every family on every fold, SMOTE's neighbours fewer when a fold holds
    few upgrades; refused when a fold holds too few to learn from (a table run's plan also caps rows,
    which the comparison's stated sample already does here)."""
    fewest = min(int(y[tr].sum()) for _, tr, _ in folds)
    if fewest < MIN_CLASS_PER_FOLD:
        raise InputError(
            f"the event tables give {int(y.sum())} upgrades among the comparison's {len(y):,} training "
            f"rows, {fewest} in the poorest fold: too few to compare models (at least {MIN_CLASS_PER_FOLD} "
            "per fold); use event tables with more users or a longer history"
        )
    fold_rows = max(len(tr) for _, tr, _ in folds)
    return FitPlan(len(y), fold_rows, smote_k=max(1, min(SMOTE_K, fewest - 1)))


def events_pipeline(cand: Candidate, schema: Schema, seed: int, rows: int, threads: int = 1) -> Any:
    """The candidate's pipeline for a fit of `rows` design rows on `threads` threads: a category needs
    its share of them (config.EVENTS_CATEGORY_SHARE) as well as the usual count to get a one-hot column
    of its own."""
    pipe = with_threads(cand.build(schema, seed), threads)
    floor = max(config.MIN_CATEGORY_FREQUENCY, int(config.EVENTS_CATEGORY_SHARE * rows))
    if isinstance(pipe.get_params().get("encode__cat"), OneHotEncoder):  # not the reference's ordinal codes
        pipe.set_params(encode__cat__min_frequency=floor)
    return pipe


def fit_recalibrated(
    cand: Candidate,
    m: Matrix,
    design: Design,
    rows: np.ndarray,
    calibration_days: int,
    seed: int,
    threads: int = 1,
) -> Fitted:
    """Fit on `rows` older than the last `calibration_days` of their cutoffs, then Platt-scale on those
    (on `threads` threads)."""
    cut = design.rows["cutoff"].to_numpy()[rows]
    start = cut.max() - np.timedelta64(calibration_days - 1, "D")
    calib, fit = rows[cut >= start], rows[cut < start]
    cap = row_caps(config.EVENTS_FIT_ROWS).get(cand.family, len(fit))
    sampled = len(fit) > cap
    y = design.rows["label"].to_numpy()
    if sampled:
        fit = stratified_rows(y, cap, seed, among=fit)
    pipe = events_pipeline(cand, m.schema, seed, len(fit), threads).fit(m.X.iloc[fit], y[fit])
    models: dict[str, Any] = {"none": pipe}
    if len(np.unique(y[calib])) == 2:
        cal = CalibratedClassifierCV(FrozenEstimator(pipe), method="sigmoid")
        models["sigmoid"] = cal.fit(m.X.iloc[calib], y[calib])
    return Fitted(models, calib, len(fit), sampled)


def predict_rows(est: Any, X: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """P(upgrade) of `est` on rows `rows` of X, config.FEATURE_CHUNK_ROWS at a time: a test period of
    millions of rows is never copied whole, nor its pipeline's intermediate matrices."""
    step = config.FEATURE_CHUNK_ROWS
    parts = [est.predict_proba(X.iloc[rows[i : i + step]])[:, 1] for i in range(0, len(rows), step)]
    return np.concatenate(parts) if parts else np.zeros(0)


def _baseline_frame(m: Matrix, columns: list[str]) -> tuple[pd.DataFrame, Schema]:
    return m.X[columns], Schema([m.schema.column(c) for c in columns], m.schema.target, "1", "0", None)


def baselines(
    m: Matrix, design: Design, fit: np.ndarray, test: np.ndarray, seed: int
) -> dict[str, np.ndarray]:
    """Simple forecasts on the same test rows: the base rate, tenure alone, recency alone."""
    y = design.rows["label"].to_numpy()
    out = {"base rate": np.full(len(test), float(y[fit].mean()))}
    # One or a few columns need no more rows than this to be learnt; the base rate uses them all.
    fit = stratified_rows(y, config.BASELINE_FIT_ROWS, seed, among=fit)
    recency = [c for c in m.X.columns if c.endswith("_days_since_last")]
    for name, cols in (("tenure only", ["tenure_days"]), ("recency only", ["tenure_days", *recency])):
        cols = [c for c in cols if c in m.X.columns]
        if not cols:
            continue
        X, schema = _baseline_frame(m, cols)
        pipe = build_pipeline(schema, "gbm", "none", seed=seed).fit(X.iloc[fit], y[fit])
        out[name] = predict_rows(pipe, X, test)
    return out


def _origin(
    cand: Candidate,
    m: Matrix,
    design: Design,
    split: TimeSplit,
    calibration_days: int,
    seed: int,
    extra: dict[str, np.ndarray] | None = None,
    fitted: Fitted | None = None,
    threads: int = 1,
) -> OriginResult:
    fitted = fitted or fit_recalibrated(cand, m, design, split.train, calibration_days, seed, threads)
    p = {model_key(k): predict_rows(est, m.X, split.test) for k, est in fitted.models.items()}
    fit_rows = np.setdiff1d(split.train, fitted.calib_rows)
    p.update(baselines(m, design, fit_rows, split.test, seed))
    p.update(extra or {})
    y = design.rows["label"].to_numpy()
    calib_p = {k: predict_rows(est, m.X, fitted.calib_rows) for k, est in fitted.models.items()}
    return OriginResult(split, p, y[fitted.calib_rows], calib_p, fitted.fit_rows, fitted.calib_rows)


def shortlist(board: pd.DataFrame, results: dict[str, CVResult], n: int) -> list[CVResult]:
    """The best candidate of each of the `n` leading families by the cross-validated objective."""
    seen: set[str] = set()
    out: list[CVResult] = []
    for key in board["key"]:
        r = results[key]
        if r.candidate.family not in seen and r.candidate.family in FAMILIES:
            seen.add(r.candidate.family)
            out.append(r)
        if len(out) == n:
            break
    return out


def select_in_time(
    leaders: list[CVResult], m: Matrix, design: Design, split: TimeSplit, cfg: RunOptions
) -> tuple[CVResult, dict[str, float], Fitted]:
    """The leader whose recalibrated forecasts of a later period have the lowest log loss.

    Grouped folds on a sample rank families by their ranking power, but a forecast must also be
    calibrated where it will be used: later periods and every tenure. Log loss is a proper score, so
    it rewards both. The period is the first backtest origin; the test period stays untouched."""
    y = design.rows["label"].to_numpy()

    jobs = min(side_by_side(cfg.jobs, len(split.train)), len(leaders))
    threads = threads_each(cfg.jobs, jobs)

    def loss(r: CVResult) -> tuple[float, Fitted]:
        fitted = fit_recalibrated(
            r.candidate, m, design, split.train, config.CALIBRATION_DAYS, cfg.seed, threads
        )
        return min(
            evaluation.scores(y[split.test], predict_rows(est, m.X, split.test)).log_loss
            for est in fitted.models.values()
        ), fitted

    with one_blas_thread(jobs):
        # Shared memory: the fits read the frames in place. It also keeps them here when --dask routes
        # joblib to a cluster (the closure cannot travel; a failed submit there waits forever).
        fits = Parallel(n_jobs=jobs, require="sharedmem")(delayed(loss)(r) for r in leaders)
    losses = [v for v, _ in fits]
    selection = {r.candidate.key: float(v) for r, v in zip(leaders, losses)}
    best = int(np.argmin(losses))
    # The winner's fit is the first backtest origin's own (same rows, same seed): the backtest reuses it.
    return leaders[best], selection, fits[best][1]


def choose_calibration(origins: list[OriginResult], y: np.ndarray) -> tuple[str, dict[str, float]]:
    """The recalibration with the lowest mean test log loss over the backtest origins."""
    scores = {}
    for method in CALIBRATIONS:
        key = model_key(method)
        if all(key in o.p for o in origins):
            scores[method] = float(
                np.mean([evaluation.scores(y[o.split.test], o.p[key]).log_loss for o in origins])
            )
    return min(scores, key=lambda k: scores[k]), scores


def run_forecast_protocol(
    m: Matrix,
    design: Design,
    cfg: RunOptions,
    budget: config.Budget,
    console: Console,
    storage: Any = None,
    aggregated: Callable[[Candidate, TimeSplit], np.ndarray] | None = None,
    clock: RunClock | None = None,
) -> ForecastOutcome:
    """Compare, backtest over rolling origins, choose the recalibration, and fit the deployed model.

    `aggregated(candidate, split)`, when given, returns the aggregated-table baseline's probabilities on
    split.test (computed here, in this process: it reads the event source). `clock`, started with the
    run, holds cfg.time_limit: the comparison and tuning keep to their shares of it, as in table runs;
    the backtest and the final fit always run whole."""
    clock = clock or RunClock(cfg.time_limit)
    notes: list[str] = []
    if cfg.time_limit is not None:
        notes.append(Limits.time_limit_note(cfg.time_limit))
        warn(console, notes[-1])
    y = design.rows["label"].to_numpy().astype(int)
    origins_splits = rolling_origins(design, config.ORIGINS, config.ORIGIN_STEP_DAYS, config.TEST_DAYS)
    test = origins_splits[-1]
    sub = stratified_rows(y, budget.compare_rows, cfg.seed, among=test.train)
    groups = design.rows["user_id"].to_numpy()[sub]
    # One repeat of grouped folds and half the trials: the rows are many and the backtest refits the
    # chosen pipeline four times, so an events run keeps within the budget's time.
    budget = replace(budget, cv_repeats=1, trials=max(8, budget.trials // 2))
    folds = cv_folds(y[sub], groups, budget, cfg.seed)
    plan = events_fit_plan(y[sub], folds)
    say(
        console,
        f"comparing on {len(sub):,} training rows of {len(np.unique(groups)):,} users "
        f"(folds grouped by user; of {len(test.train):,} training rows)",
    )
    results, tuning = compare(
        m.X.iloc[sub], y[sub], folds, m.schema, cfg, budget, console, storage, plan, clock, notes
    )
    board = leaderboard(results, cfg.objective)
    first = origins_splits[0]
    with console.status(f"choosing among the leading families on the period from {first.test_start}"):
        chosen, selection, first_fit = select_in_time(
            shortlist(board, results, SHORTLIST), m, design, first, cfg
        )
    say(
        console,
        f"chosen: {chosen.candidate.key} (grouped CV {cfg.objective} {chosen.mean(cfg.objective):.4f}; "
        f"lowest log loss of the leading families on {first.test_start} to {first.test_end})",
    )
    origins, final = backtest(
        chosen.candidate, m, design, origins_splits, cfg, aggregated, console, first_fit
    )
    method, cal_scores = choose_calibration(origins, y)
    if method not in final.models:
        method = "none"
    names = list(origins[-1].baselines())
    return ForecastOutcome(
        results, board, tuning, chosen, len(sub), origins, method, cal_scores, final, names, selection, notes
    )


def backtest(
    cand: Candidate,
    m: Matrix,
    design: Design,
    splits: list[TimeSplit],
    cfg: RunOptions,
    aggregated: Callable[[Candidate, TimeSplit], np.ndarray] | None = None,
    console: Console | None = None,
    first: Fitted | None = None,
) -> tuple[list[OriginResult], Fitted]:
    """`cand` refitted and recalibrated at every origin of `splits`, with the baselines' forecasts of the
    same test rows, and the deployed model fitted the same way on every training row. `first`, when
    given, is `cand` already fitted at the first origin."""
    bar = progress_bar(console or Console(stderr=True, quiet=True))
    with bar:
        extra: list[dict[str, np.ndarray] | None] = []
        if aggregated:
            task = bar.add_task("aggregated-table baseline, per origin", total=len(splits))
            for s in splits:
                extra.append({AGGREGATED: aggregated(cand, s)})
                bar.advance(task)
        else:
            extra = [None] * len(splits)
        task = bar.add_task(
            f"backtest: {len(splits)} origins fitted and scored, and the model for today",
            total=len(splits) + 1,
        )

        def step(fn: Callable[..., Any], *args: Any) -> Any:
            out = fn(*args)
            bar.advance(task)
            return out

        # Threads: LightGBM and scikit-learn's tree builders release the GIL, and the frames stay shared.
        # The largest fits go first (the model for today, then the latest origins), so that the two
        # threads end together instead of one finishing the biggest fit alone.
        days, seed = config.CALIBRATION_DAYS, cfg.seed
        n_jobs = min(side_by_side(cfg.jobs, len(design.fit_rows())), len(splits) + 1)
        threads = threads_each(cfg.jobs, n_jobs)
        origins = [
            delayed(step)(_origin, cand, m, design, s, days, seed, e, first if k == 0 else None, threads)
            for k, (s, e) in enumerate(zip(splits, extra))
        ]
        today = delayed(step)(fit_recalibrated, cand, m, design, design.fit_rows(), days, seed, threads)
        with one_blas_thread(n_jobs):
            # Threads of this process even under --dask (see select_in_time): `step` holds the bar.
            jobs = Parallel(n_jobs=n_jobs, require="sharedmem")([today, *origins[::-1]])
    final: Fitted = jobs[0]
    with_threads(final.models["none"], 1)  # the deployed model; its recalibrated wrapper holds the same
    return list(jobs[:0:-1]), final


def snapshot_dates(split: TimeSplit, design: Design) -> list[date]:
    """Calendar-grid dates in a test period: there the design holds every user free that day."""
    plan = design.plan
    out, d = [], split.test_start
    while d <= split.test_end:
        if (d - plan.calendar_anchor).days % plan.calendar_every_days == 0:
            out.append(d)
        d += timedelta(days=1)
    return out
