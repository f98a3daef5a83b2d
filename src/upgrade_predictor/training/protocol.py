"""The training protocol: split once, compare on identical folds, tune, pick a threshold, test once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from .. import config
from ..console import say, warn
from ..dataset import Dataset
from ..schema import Schema
from .calibration import FittedModel, fit_final
from .candidates import REFERENCE, CVResult
from .clock import RunClock
from .crossval import cross_validate
from .metrics import Limits, Tuning
from .options import TableOptions
from .planning import plan_fits
from .selection import compare, leaderboard
from .splits import Folds, cv_folds, holdout_split


@dataclass
class Outcome:
    """Everything the protocol decided and measured, for the run folder to write."""

    train_rows: np.ndarray
    test_rows: np.ndarray
    results: dict[str, CVResult]
    board: pd.DataFrame
    tuning: dict[str, Tuning]
    chosen: CVResult
    final: FittedModel
    reference: FittedModel | None
    leaky: list[str]
    no_leak: FittedModel | None
    no_leak_cv: CVResult | None
    no_leak_schema: Schema | None
    limits: Limits = field(default_factory=Limits)
    clock: RunClock = field(default_factory=RunClock)  # seconds per stage so far


@dataclass(frozen=True)
class _NoLeak:
    """The chosen pipeline without the features the audit flagged: its CV, final fit and schema."""

    fitted: FittedModel | None = None
    cv: CVResult | None = None
    schema: Schema | None = None


def run_protocol(
    ds: Dataset,
    leakage_flags: list[str],
    cfg: TableOptions,
    budget: config.Budget,
    console: Console,
    groups: np.ndarray | None = None,
    storage: Any = None,
    clock: RunClock | None = None,
) -> Outcome:
    """Split once, compare every candidate on the same folds, tune the leaders, fit the chosen one,
    the reference recipe and the chosen one without flagged leaks, and score the test set once.

    `clock` (started with the run, holding cfg.time_limit) times the stages and shares the limit."""
    clock = clock or RunClock(cfg.time_limit)
    tr, te = holdout_split(ds.y, groups, cfg.test_size, cfg.seed)
    X_tr, y_tr, X_te, y_te = ds.X.iloc[tr], ds.y[tr], ds.X.iloc[te], ds.y[te]
    g_tr = groups[tr] if groups is not None else None
    folds = cv_folds(y_tr, g_tr, budget, cfg.seed)
    say(
        console,
        f"split: {len(tr):,} training rows ({budget.cv_splits}-fold CV x {budget.cv_repeats}), "
        f"{len(te):,} held-out test rows (seed {cfg.seed})",
    )
    plan = plan_fits(
        y_tr, folds, cfg, budget, bool(set(config.REFERENCE_OUTLIER_LIMITS) & set(ds.schema.numeric))
    )
    for note in plan.notes:
        say(console, note)
    notes = list(plan.notes)
    if cfg.time_limit is not None:
        notes.append(Limits.time_limit_note(cfg.time_limit))
        warn(console, notes[-1])
    results, tuning = compare(X_tr, y_tr, folds, ds.schema, cfg, budget, console, storage, plan, clock, notes)
    clock.mark("final fit")
    board = leaderboard(results, cfg.objective)
    chosen = results[board.loc[~board["is_reference"], "key"].iloc[0]]
    say(console, f"chosen: {chosen.candidate.key} (CV {cfg.objective} {chosen.mean(cfg.objective):.4f})")
    with console.status("fitting the chosen model, the reference recipe and the test predictions"):
        final = fit_final(chosen.candidate, X_tr, y_tr, X_te, y_te, folds, ds.schema, cfg, chosen.oof, g_tr)
        ref = None
        if REFERENCE in results:
            r = results[REFERENCE]  # its threshold is the recipe's 0.5: the comparison's OOF will do
            ref = fit_final(r.candidate, X_tr, y_tr, X_te, y_te, folds, ds.schema, cfg, r.oof, g_tr)
        leaky = [c for c in leakage_flags if c in ds.schema.names]
        nl = _without_leaks(chosen, leaky, ds, tr, te, folds, cfg, g_tr)
    clock.mark("write")  # the run folder writes its files and bundles after this returns
    limits = Limits(cfg.time_limit, dict(plan.fit_rows), plan.smote_k, dict(plan.left_out), notes)
    return Outcome(
        tr, te, results, board, tuning, chosen, final, ref, leaky, nl.fitted, nl.cv, nl.schema, limits, clock
    )


def _without_leaks(
    chosen: CVResult,
    leaky: list[str],
    ds: Dataset,
    tr: np.ndarray,
    te: np.ndarray,
    folds: Folds,
    cfg: TableOptions,
    g_tr: np.ndarray | None,
) -> _NoLeak:
    """The same pipeline without the features the audit flagged: the model fit to score today's users
    (nothing when no feature is flagged, or every one is)."""
    if not leaky or len(leaky) >= len(ds.schema.names):
        return _NoLeak()
    keep = [c for c in ds.X.columns if c not in leaky]
    X_tr, y_tr, X_te, y_te = ds.X.iloc[tr][keep], ds.y[tr], ds.X.iloc[te][keep], ds.y[te]
    schema = ds.schema.without(leaky)
    cand = chosen.candidate
    cv = cross_validate([cand], X_tr, y_tr, folds, schema, cfg.seed, cfg.jobs)[cand.key]
    return _NoLeak(fit_final(cand, X_tr, y_tr, X_te, y_te, folds, schema, cfg, cv.oof, g_tr), cv, schema)
