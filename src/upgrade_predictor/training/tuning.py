"""Optuna tuning of the leading families on the shared folds: how many trials each gets, the study, and
the tuning records metrics.json keeps."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import optuna
from rich.progress import Progress

from .. import config
from ..console import warn
from ..models import FAMILIES, STRATEGY_LABELS
from ..runs.options import RunOptions
from .candidates import Candidate, CVResult
from .clock import RunClock
from .crossval import cross_validate
from .metrics import Tuning
from .planning import FitPlan
from .splits import Folds


def trial_count(family: str, budget: config.Budget, fold_rows: int | None = None) -> int:
    """Optuna trials for `family`: fewer for a costly family and, beyond budget.tune_rows rows per
    training fold, fewer in proportion; the count depends only on the data size, so it repeats."""
    n = budget.trials / FAMILIES[family].cost
    if fold_rows is not None and fold_rows > budget.tune_rows:
        n *= budget.tune_rows / fold_rows
    return max(3, round(n))


def tune(
    base: Candidate,
    X,
    y,
    folds: Folds,
    schema,
    cfg: RunOptions,
    budget: config.Budget,
    progress: Progress,
    storage=None,
    n_trials: int | None = None,
    timeout: float | None = None,
) -> tuple[CVResult, optuna.Study]:
    """Optuna over one family's space, maximising the CV mean of the objective on the shared folds.

    `base` carries the strategy and the family's fit settings; `timeout` (seconds) replaces the
    budget's safety net when a time limit leaves less."""
    family, strategy = base.family, base.strategy
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
    # timeout is only a safety net for a machine far slower than planned (or a --time-limit's share).
    n_trials = n_trials or trial_count(family, budget)
    limit = budget.timeout_s if timeout is None else min(timeout, budget.timeout_s)
    task = progress.add_task(f"tuning {FAMILIES[family].label} ({STRATEGY_LABELS[strategy]})", total=n_trials)
    best: dict[str, Any] = {}

    def objective(trial: optuna.Trial) -> float:
        params = FAMILIES[family].space(trial)
        cand = replace(base, params=params, tuned=True)
        res = cross_validate([cand], X, y, folds, schema, cfg.seed, cfg.jobs)[cand.key]
        value = res.mean(cfg.objective)
        if not best or value > best["value"]:
            best.update(value=value, result=res)
        progress.advance(task)
        return value

    study.optimize(objective, n_trials=n_trials, timeout=limit)
    if len(study.trials) < n_trials:
        why = "safety limit" if limit == budget.timeout_s else "share of --time-limit"
        warn(
            progress.console,
            f"tuning {family} stopped at the {limit:.0f}s {why} after "
            f"{len(study.trials)} of {n_trials} trials; this run may not repeat exactly",
        )
    progress.update(task, completed=n_trials)
    return best["result"], study


def tune_leaders(
    leaders: list[tuple[str, str]],
    results: dict[str, CVResult],
    X,
    y,
    folds: Folds,
    schema,
    cfg: RunOptions,
    budget: config.Budget,
    progress: Progress,
    plan: FitPlan,
    clock: RunClock,
    notes: list[str],
    storage=None,
) -> dict[str, Tuning]:
    """Tune each leading (family, strategy) in turn, adding its best trial to `results`; under a time
    limit the tuning share is split evenly among the leaders not yet tuned, and what it cut is noted."""
    tuning: dict[str, Tuning] = {}
    for i, (fam, strat) in enumerate(leaders):
        left = clock.left("tuning")
        share = None if left is None else left / (len(leaders) - i)
        if share is not None and share <= 0:
            notes.append(f"--time-limit: no time was left to tune {FAMILIES[fam].label}")
            warn(progress.console, notes[-1])
            continue
        n_trials = trial_count(fam, budget, plan.fold_rows)
        base = plan.candidate(fam, strat)
        best, study = tune(base, X, y, folds, schema, cfg, budget, progress, storage, n_trials, share)
        results[best.candidate.key] = best
        ran = len(study.trials)
        tuning[fam] = Tuning(strat, study.best_value, ran, study.best_params, planned_trials=n_trials)
        if share is not None and ran < n_trials:
            notes.append(f"--time-limit: tuning {FAMILIES[fam].label} ran {ran} of {n_trials} trials")
    return tuning
