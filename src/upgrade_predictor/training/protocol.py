"""The training protocol: split once, compare on identical folds, tune, pick a threshold, test once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from joblib import Parallel, delayed
from rich.console import Console
from rich.progress import Progress
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from .. import config, evaluation
from ..console import say, warn
from ..dataset import Dataset
from ..errors import InputError
from ..evaluation import Scores
from ..models import FAMILIES, STRATEGY_LABELS, build_pipeline, build_reference, calibrated, supports
from ..schema import Schema
from .metrics import Chosen
from .summary import progress_bar

REFERENCE = "reference"


@dataclass
class TrainConfig:
    data: Path | None = None
    target: str = config.TARGET
    out: Path | None = None
    budget: str = config.BUDGET
    seed: int = config.SEED
    id_column: str | None = None
    positive: str | None = None
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    test_size: float = config.TEST_SIZE
    group_duplicates: bool = False
    families: list[str] = field(default_factory=lambda: list(config.FAMILIES))
    strategies: list[str] = field(default_factory=lambda: list(config.STRATEGIES))
    objective: str = config.OBJECTIVE
    threshold: str = config.THRESHOLD
    offer_cost: float = config.OFFER_COST
    upgrade_value: float = config.UPGRADE_VALUE
    jobs: int = config.JOBS
    report: bool = True
    force: bool = False
    dask: str | None = None  # a scheduler address, or "local"
    # Event runs: a folder of dated tables instead of one table (data and the table options are unused).
    events: Path | None = None
    mapping: Path | None = None  # TOML mapping of the tables; the 365 layout is built in
    horizon: int = config.HORIZON

    def check(self) -> config.Budget:
        if self.budget not in config.BUDGETS:
            raise InputError(f"--budget {self.budget!r}: choose quick, standard or thorough")
        bad = [f for f in self.families if f not in FAMILIES]
        if bad:
            raise InputError(f"--families: unknown {', '.join(bad)}; choose from {', '.join(FAMILIES)}")
        bad = [s for s in self.strategies if s not in config.STRATEGIES]
        if bad:
            raise InputError(
                f"--strategies: unknown {', '.join(bad)}; choose from {', '.join(config.STRATEGIES)}"
            )
        if self.objective not in evaluation.METRICS or self.objective in evaluation.LOWER_IS_BETTER:
            ok = [m for m in evaluation.METRICS if m not in evaluation.LOWER_IS_BETTER]
            raise InputError(f"--objective {self.objective!r}: choose one of {', '.join(ok)}")
        if self.threshold not in ("f1", "profit"):
            raise InputError(f"--threshold {self.threshold!r}: choose f1 or profit")
        if not 1 <= self.horizon <= 365:
            raise InputError(f"--horizon {self.horizon}: choose a number of days from 1 to 365")
        if not 0.05 <= self.test_size <= 0.5:
            raise InputError(f"--test-size {self.test_size}: choose a share between 0.05 and 0.5")
        return config.BUDGETS[self.budget]


@dataclass(frozen=True)
class Candidate:
    family: str
    strategy: str
    params: dict = field(default_factory=dict, hash=False, compare=False)
    tuned: bool = False

    @property
    def key(self) -> str:
        if self.family == REFERENCE:
            return REFERENCE
        return f"{self.family}/{self.strategy}" + ("/tuned" if self.tuned else "")

    def build(self, schema, seed: int):
        if self.family == REFERENCE:
            return build_reference(seed)
        return build_pipeline(schema, self.family, self.strategy, self.params, seed)


@dataclass
class CVResult:
    candidate: Candidate
    folds: list[evaluation.Scores]
    oof: np.ndarray  # mean out-of-fold probability over repeats
    fit_seconds: float

    @property
    def summary(self) -> dict[str, float]:
        return evaluation.summarise(self.folds)

    def mean(self, metric: str) -> float:
        return self.summary[f"{metric}_mean"]


# ---------------------------------------------------------------- split and folds


def holdout_split(y: np.ndarray, groups: np.ndarray | None, test_size: float, seed: int):
    """Stratified hold-out; the same rows as train_test_split(test_size, random_state=seed, stratify=y)."""
    idx = np.arange(len(y))
    if groups is None:
        tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=y)
        return np.sort(tr), np.sort(te)
    n_splits = max(2, round(1 / test_size))
    tr, te = next(StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(idx, y, groups))
    return tr, te


def cv_folds(y: np.ndarray, groups: np.ndarray | None, budget: config.Budget, seed: int):
    """Repeated stratified k-fold (grouped when asked), as a list of (repeat, train, validation)."""
    folds: list[tuple[int, np.ndarray, np.ndarray]] = []
    for r in range(budget.cv_repeats):
        if groups is None:
            splitter = StratifiedKFold(budget.cv_splits, shuffle=True, random_state=seed + r)
            parts = splitter.split(np.zeros(len(y)), y)
        else:
            splitter = StratifiedGroupKFold(budget.cv_splits, shuffle=True, random_state=seed + r)
            parts = splitter.split(np.zeros(len(y)), y, groups)
        folds.extend((r, tr, va) for tr, va in parts)
    return folds


# ---------------------------------------------------------------- cross-validation


def _fit_fold(key: str, i: int, estimator, X: pd.DataFrame, y: np.ndarray, tr: np.ndarray, va: np.ndarray):
    """Fit a fresh clone on one training fold; every fitted statistic and sample stays inside it."""
    start = time.perf_counter()
    model = clone(estimator).fit(X.iloc[tr], y[tr])
    return key, i, model.predict_proba(X.iloc[va])[:, 1], time.perf_counter() - start


def cross_validate(
    candidates: list[Candidate],
    X: pd.DataFrame,
    y: np.ndarray,
    folds,
    schema,
    seed: int,
    jobs: int,
    advance=None,
    wrap=None,
) -> dict[str, CVResult]:
    """Score every candidate on the same folds, fits spread over `jobs` processes."""
    estimators = {c.key: (wrap(c.build(schema, seed)) if wrap else c.build(schema, seed)) for c in candidates}
    tasks = [(c.key, i) for c in candidates for i in range(len(folds))]
    run = Parallel(n_jobs=jobs, return_as="generator_unordered")(
        delayed(_fit_fold)(k, i, estimators[k], X, y, folds[i][1], folds[i][2]) for k, i in tasks
    )
    probs: dict[tuple[str, int], np.ndarray] = {}
    seconds: dict[str, float] = {c.key: 0.0 for c in candidates}
    for key, i, p, s in run:
        probs[key, i] = p
        seconds[key] += s
        if advance:
            advance()
    n_repeats = max(r for r, _, _ in folds) + 1
    results = {}
    for c in candidates:
        oof = np.zeros(len(y))
        fold_scores = []
        for i, (_, _, va) in enumerate(folds):
            p = probs[c.key, i]
            oof[va] += p / n_repeats
            fold_scores.append(evaluation.scores(y[va], p))
        results[c.key] = CVResult(c, fold_scores, oof, seconds[c.key] / len(folds))
    return results


# ---------------------------------------------------------------- tuning


def tune(
    family: str,
    strategy: str,
    X,
    y,
    folds,
    schema,
    cfg: TrainConfig,
    budget: config.Budget,
    progress: Progress,
    storage=None,
) -> tuple[CVResult, optuna.Study]:
    """Optuna over one family's space, maximising the CV mean of the objective on the shared folds."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Trials run one after another (each one's folds spread over the workers), so a seed gives
    # the same study locally and on a cluster; a shared storage records them where workers see them.
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=cfg.seed),
        storage=storage,
        study_name=f"{family}-{strategy}-{cfg.seed}-{time.time_ns()}",
    )
    # Trial counts, not wall time, bound the search, so the same seed gives the same study; the
    # timeout is only a safety net for a machine far slower than planned.
    n_trials = max(3, round(budget.trials / FAMILIES[family].cost))
    task = progress.add_task(f"tuning {FAMILIES[family].label} ({STRATEGY_LABELS[strategy]})", total=n_trials)
    best: dict[str, Any] = {}

    def objective(trial: optuna.Trial) -> float:
        params = FAMILIES[family].space(trial)
        cand = Candidate(family, strategy, params, tuned=True)
        res = cross_validate([cand], X, y, folds, schema, cfg.seed, cfg.jobs)[cand.key]
        value = res.mean(cfg.objective)
        if not best or value > best["value"]:
            best.update(value=value, result=res)
        progress.advance(task)
        return value

    study.optimize(objective, n_trials=n_trials, timeout=budget.timeout_s)
    if len(study.trials) < n_trials:
        warn(
            progress.console,
            f"tuning {family} stopped at the {budget.timeout_s:.0f}s safety limit after "
            f"{len(study.trials)} of {n_trials} trials; this run may not repeat exactly",
        )
    progress.update(task, completed=n_trials)
    return best["result"], study


# ---------------------------------------------------------------- final model


@dataclass
class FittedModel:
    candidate: Candidate
    estimator: Any
    calibrated: bool
    threshold: float
    oof: np.ndarray
    p_train: np.ndarray
    p_test: np.ndarray
    train: Scores
    test: Scores


def fit_final(
    cand: Candidate, X_tr, y_tr, X_te, y_te, folds, schema, cfg: TrainConfig, oof: np.ndarray | None = None
) -> FittedModel:
    """Calibrate if resampling or class weights distort probabilities, pick the threshold on
    out-of-fold predictions, refit on all training rows, then score the test set once."""
    pipe = cand.build(schema, cfg.seed)
    needs_calibration = cand.family != REFERENCE and cand.strategy != "none"
    estimator = calibrated(pipe, cfg.seed) if needs_calibration else pipe
    if oof is None or needs_calibration:
        first = [f for f in folds if f[0] == 0]
        oof = cross_validate(
            [cand],
            X_tr,
            y_tr,
            first,
            schema,
            cfg.seed,
            cfg.jobs,
            wrap=(lambda p: calibrated(p, cfg.seed)) if needs_calibration else None,
        )[cand.key].oof
    if cand.family == REFERENCE:
        thr = 0.5  # the course's recipe, as published
    else:
        thr = evaluation.choose_threshold(y_tr, oof, cfg.threshold, cfg.offer_cost, cfg.upgrade_value)
    estimator.fit(X_tr, y_tr)
    p_train = estimator.predict_proba(X_tr)[:, 1]
    p_test = estimator.predict_proba(X_te)[:, 1]
    return FittedModel(
        cand,
        estimator,
        needs_calibration,
        thr,
        oof,
        p_train,
        p_test,
        evaluation.scores(y_tr, p_train, thr),
        evaluation.scores(y_te, p_test, thr),
    )


def compare(
    X_tr, y_tr, folds, schema, cfg: TrainConfig, budget: config.Budget, console: Console, storage=None
) -> tuple[dict[str, CVResult], dict]:
    """Every family x strategy (and the reference recipe) on the same folds, then Optuna on the leaders."""
    candidates = [Candidate(f, s) for f in cfg.families for s in cfg.strategies if supports(f, s)]
    if set(config.REFERENCE_OUTLIER_LIMITS) & set(schema.numeric):
        candidates.append(Candidate(REFERENCE, "none"))
    with progress_bar(console) as progress:
        task = progress.add_task("cross-validating models x strategies", total=len(candidates) * len(folds))
        results = cross_validate(
            candidates, X_tr, y_tr, folds, schema, cfg.seed, cfg.jobs, advance=lambda: progress.advance(task)
        )
        tuning = {}
        for fam, strat in _leaders(results, cfg.objective, budget.tune_families):
            best, study = tune(fam, strat, X_tr, y_tr, folds, schema, cfg, budget, progress, storage)
            results[best.candidate.key] = best
            tuning[fam] = {
                "strategy": strat,
                "best_value": study.best_value,
                "n_trials": len(study.trials),
                "best_params": study.best_params,
            }
    return results, tuning


def leaderboard(results: dict[str, CVResult], objective: str) -> pd.DataFrame:
    rows = []
    for key, res in results.items():
        c = res.candidate
        ref = c.family == REFERENCE
        rows.append(
            {
                "key": key,
                "family": c.family,
                "strategy": c.strategy,
                "model": "course reference (random forest)" if ref else FAMILIES[c.family].label,
                "strategy_label": "drop outliers (training only)" if ref else STRATEGY_LABELS[c.strategy],
                "note": _note(c),
                "tuned": c.tuned,
                "is_reference": ref,
                **res.summary,
                "fit_seconds": res.fit_seconds,
            }
        )
    board = pd.DataFrame(rows).sort_values(f"{objective}_mean", ascending=False, kind="stable")
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    return board.reset_index(drop=True)


def _leaders(results: dict[str, CVResult], objective: str, n: int) -> list[tuple[str, str]]:
    """The best strategy of each of the n best families, by CV objective."""
    best: dict[str, CVResult] = {}
    for r in results.values():
        f = r.candidate.family
        if f != REFERENCE and (f not in best or r.mean(objective) > best[f].mean(objective)):
            best[f] = r
    ranked = sorted(best.values(), key=lambda r: -r.mean(objective))[:n]
    return [(r.candidate.family, r.candidate.strategy) for r in ranked]


def _note(c: Candidate) -> str:
    if c.family == REFERENCE:
        return (
            "outliers dropped from training folds only, practice_exams_started dropped, ordinal country, "
            "threshold 0.5"
        )
    notes = [FAMILIES[c.family].note] if FAMILIES[c.family].note else []
    if c.tuned:
        notes.append("best of the Optuna trials on these folds, so its CV score is slightly optimistic")
    return "; ".join(notes)


def chosen_of(c: Candidate, calibrated: bool) -> Chosen:
    """What metrics.json and the bundle say of the chosen candidate."""
    return Chosen(
        c.key, c.family, c.strategy, {**FAMILIES[c.family].defaults, **c.params}, label_of(c), calibrated
    )


def label_of(c: Candidate) -> str:
    return f"{FAMILIES[c.family].label}, {STRATEGY_LABELS[c.strategy]}" + (", tuned" if c.tuned else "")


@dataclass
class Outcome:
    """Everything the protocol decided and measured, for the run folder to write."""

    train_rows: np.ndarray
    test_rows: np.ndarray
    results: dict[str, CVResult]
    board: pd.DataFrame
    tuning: dict[str, Any]
    chosen: CVResult
    final: FittedModel
    reference: FittedModel | None
    leaky: list[str]
    no_leak: FittedModel | None
    no_leak_cv: CVResult | None
    no_leak_schema: Schema | None


def run_protocol(
    ds: Dataset,
    leakage_flags: list[str],
    cfg: TrainConfig,
    budget: config.Budget,
    console: Console,
    groups: np.ndarray | None = None,
    storage: Any = None,
) -> Outcome:
    """Split once, compare every candidate on the same folds, tune the leaders, fit the chosen one,
    the reference recipe and the chosen one without flagged leaks, and score the test set once."""
    tr, te = holdout_split(ds.y, groups, cfg.test_size, cfg.seed)
    X_tr, y_tr, X_te, y_te = ds.X.iloc[tr], ds.y[tr], ds.X.iloc[te], ds.y[te]
    folds = cv_folds(y_tr, groups[tr] if groups is not None else None, budget, cfg.seed)
    say(
        console,
        f"split: {len(tr):,} training rows ({budget.cv_splits}-fold CV x {budget.cv_repeats}), "
        f"{len(te):,} held-out test rows (seed {cfg.seed})",
    )
    results, tuning = compare(X_tr, y_tr, folds, ds.schema, cfg, budget, console, storage)
    board = leaderboard(results, cfg.objective)
    chosen = results[board.loc[~board["is_reference"], "key"].iloc[0]]
    say(console, f"chosen: {chosen.candidate.key} (CV {cfg.objective} {chosen.mean(cfg.objective):.4f})")
    with console.status("fitting the chosen model, the reference recipe and the test predictions"):
        final = fit_final(chosen.candidate, X_tr, y_tr, X_te, y_te, folds, ds.schema, cfg, chosen.oof)
        ref = None
        if REFERENCE in results:
            ref = fit_final(results[REFERENCE].candidate, X_tr, y_tr, X_te, y_te, folds, ds.schema, cfg)
        # The same pipeline without the features the audit flagged: the model fit to score today's users.
        leaky = [c for c in leakage_flags if c in ds.schema.names]
        no_leak = nl_cv = schema_nl = None
        if leaky and len(leaky) < len(ds.schema.names):
            keep = [c for c in ds.X.columns if c not in leaky]
            schema_nl = ds.schema.without(leaky)
            nl_cv = cross_validate(
                [chosen.candidate], X_tr[keep], y_tr, folds, schema_nl, cfg.seed, cfg.jobs
            )[chosen.candidate.key]
            no_leak = fit_final(
                chosen.candidate, X_tr[keep], y_tr, X_te[keep], y_te, folds, schema_nl, cfg, nl_cv.oof
            )
    return Outcome(tr, te, results, board, tuning, chosen, final, ref, leaky, no_leak, nl_cv, schema_nl)
