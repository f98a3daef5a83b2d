"""Cross-validation of candidates on shared folds, the fits spread over worker processes."""

from __future__ import annotations

import time
import warnings
from collections import Counter

import numpy as np
import pandas as pd
from joblib import parallel_config
from sklearn.base import clone
from sklearn.utils.parallel import Parallel, delayed  # joblib's, carrying warning filters to the workers

from .. import evaluation
from .candidates import REFERENCE, Candidate, CVResult
from .fitcache import active, with_memory
from .splits import Folds


def _fit_fold(
    key: str, i: int, estimator, X: pd.DataFrame, y: np.ndarray, tr: np.ndarray, va: np.ndarray, memory=None
):
    """Fit a fresh clone on one training fold; every fitted statistic and sample stays inside it
    (`memory` only replays a step already fitted on the same fold with the same parameters)."""
    start = time.perf_counter()
    # One fold is one core's task: on a Dask worker joblib would otherwise send the steps' own joblib
    # calls (a column transformer's) back to the cluster, each task waiting for its sub-tasks.
    with parallel_config(backend="sequential"):
        model = with_memory(clone(estimator), memory).fit(X.iloc[tr], y[tr])
        p = model.predict_proba(X.iloc[va])[:, 1]
    return key, i, p, time.perf_counter() - start


def cross_validate(
    candidates: list[Candidate],
    X: pd.DataFrame,
    y: np.ndarray,
    folds: Folds,
    schema,
    seed: int,
    jobs: int,
    advance=None,
    wrap=None,
    deadline: float | None = None,
) -> dict[str, CVResult]:
    """Score every candidate on the same folds, fits spread over `jobs` processes.

    With a `deadline` (a time.perf_counter() value) the cheapest candidates go first, and once it has
    passed the rest are cancelled: only candidates scored on every fold are returned (at least one)."""
    estimators = {c.key: (wrap(c.build(schema, seed)) if wrap else c.build(schema, seed)) for c in candidates}
    order = candidates if deadline is None else sorted(candidates, key=lambda c: c.cost)
    tasks = [(c.key, i) for c in order for i in range(len(folds))]
    memory = active()
    run = Parallel(n_jobs=jobs, return_as="generator_unordered")(
        delayed(_fit_fold)(k, i, estimators[k], X, y, folds[i][1], folds[i][2], memory) for k, i in tasks
    )
    probs: dict[tuple[str, int], np.ndarray] = {}
    seconds: dict[str, float] = {c.key: 0.0 for c in candidates}
    done: Counter[str] = Counter()
    try:
        for key, i, p, s in run:
            probs[key, i] = p
            seconds[key] += s
            done[key] += 1
            if advance:
                advance()
            if deadline is not None and time.perf_counter() > deadline:
                if any(k != REFERENCE and n == len(folds) for k, n in done.items()):
                    break
    finally:
        with warnings.catch_warnings():  # joblib says which tasks it cancelled: that is the point
            warnings.simplefilter("ignore", UserWarning)
            run.close()
    return {
        c.key: _result(c, y, folds, probs, seconds[c.key] / len(folds))
        for c in candidates
        if done[c.key] == len(folds)
    }


def _result(
    c: Candidate, y: np.ndarray, folds: Folds, probs: dict[tuple[str, int], np.ndarray], fit_seconds: float
) -> CVResult:
    """One candidate's fold scores and out-of-fold probabilities (averaged over the repeats)."""
    n_repeats = max(r for r, _, _ in folds) + 1
    oof = np.zeros(len(y))
    fold_scores = []
    for i, (_, _, va) in enumerate(folds):
        p = probs[c.key, i]
        oof[va] += p / n_repeats
        fold_scores.append(evaluation.scores(y[va], p))
    fold_rows = max(len(tr) for _, tr, _ in folds)
    rows = min(fold_rows, c.fit_rows or fold_rows)
    return CVResult(c, fold_scores, oof, fit_seconds, rows, fold_rows)
