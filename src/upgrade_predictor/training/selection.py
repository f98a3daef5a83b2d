"""Choosing among candidates: the comparison of every family x strategy on shared folds (then tuning of
the leaders), the leaderboard and its wording, and what metrics.json says of the chosen one."""

from __future__ import annotations

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import Progress

from .. import config
from ..console import warn
from ..models import FAMILIES, STRATEGY_LABELS, supports
from ..runs.options import RunOptions
from .candidates import REFERENCE, Candidate, CVResult
from .clock import RunClock
from .crossval import cross_validate
from .fitcache import fit_cache
from .metrics import Chosen, Tuning
from .planning import FitPlan
from .splits import Folds
from .summary import progress_bar
from .tuning import tune_leaders


def compare(
    X_tr,
    y_tr,
    folds: Folds,
    schema,
    cfg: RunOptions,
    budget: config.Budget,
    console: Console,
    storage=None,
    plan: FitPlan | None = None,
    clock: RunClock | None = None,
    notes: list[str] | None = None,
) -> tuple[dict[str, CVResult], dict[str, Tuning]]:
    """Every family x strategy (and the reference recipe) on the same folds, then Optuna on the leaders.

    `plan` (table runs) caps costly families' fit rows and leaves out what the data cannot support;
    `clock` shares a --time-limit between comparison and tuning; what they cut is added to `notes`."""
    plan = plan or FitPlan(len(y_tr), max(len(tr) for _, tr, _ in folds))
    clock = clock or RunClock()
    notes = notes if notes is not None else []
    candidates = [
        plan.candidate(f, s)
        for f in cfg.families
        for s in cfg.strategies
        if supports(f, s) and plan.allows(f, s)
    ]
    if set(config.REFERENCE_OUTLIER_LIMITS) & set(schema.numeric):
        candidates.append(plan.candidate(REFERENCE, "none"))
    clock.mark("comparison")
    with progress_bar(console) as progress, fit_cache():
        results = _cross_validate_all(candidates, X_tr, y_tr, folds, schema, cfg, progress, clock, notes)
        clock.mark("tuning")
        leaders = _leaders(results, cfg.objective, budget.tune_families)
        tuning = tune_leaders(
            leaders, results, X_tr, y_tr, folds, schema, cfg, budget, progress, plan, clock, notes, storage
        )
    return results, tuning


def _cross_validate_all(
    candidates: list[Candidate],
    X_tr,
    y_tr,
    folds: Folds,
    schema,
    cfg: RunOptions,
    progress: Progress,
    clock: RunClock,
    notes: list[str],
) -> dict[str, CVResult]:
    """The comparison stage: every candidate on every fold, within its share of a time limit."""
    task = progress.add_task("cross-validating models x strategies", total=len(candidates) * len(folds))
    results = cross_validate(
        candidates,
        X_tr,
        y_tr,
        folds,
        schema,
        cfg.seed,
        cfg.jobs,
        advance=lambda: progress.advance(task),
        deadline=clock.deadline("comparison"),
    )
    if len(results) < len(candidates):
        missed = [c.key for c in candidates if c.key not in results]
        notes.append(
            f"--time-limit: the comparison's share ran out before {len(missed)} of {len(candidates)} "
            f"candidates were scored ({', '.join(missed)})"
        )
        warn(progress.console, notes[-1])
    return results


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
                "note": _note(c, res.fold_rows),
                "tuned": c.tuned,
                "is_reference": ref,
                **res.summary,
                "fit_seconds": res.fit_seconds,
                "fit_rows": res.fit_rows,
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


def _note(c: Candidate, fold_rows: int = 0) -> str:
    sample = []
    if c.fit_rows and fold_rows > c.fit_rows:
        sample = [
            f"fit on a stratified sample of {c.fit_rows:,} of the {fold_rows:,} rows of each training fold"
        ]
    elif c.fit_rows:
        sample = [f"the final fit uses a stratified sample of {c.fit_rows:,} of the training rows"]
    if c.family == REFERENCE:
        return "; ".join(
            [
                "outliers dropped from training folds only, practice_exams_started dropped, ordinal "
                "country, threshold 0.5",
                *sample,
            ]
        )
    notes = [FAMILIES[c.family].note] if FAMILIES[c.family].note else []
    notes += sample
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
