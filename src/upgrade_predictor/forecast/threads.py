"""How the events run spends its cores: fits side by side in threads while their matrices fit the memory
budget, one at a time beyond it, and then each fit on every core."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lightgbm import LGBMClassifier
from sklearn.ensemble import RandomForestClassifier
from threadpoolctl import threadpool_limits

from .. import config

# Families whose own fit runs on threads (LightGBM's OpenMP, the forest's joblib threads); the others
# are one-threaded fits or, for the SVM's calibration folds, would start processes.
_THREADED = (LGBMClassifier, RandomForestClassifier)


def side_by_side(jobs: int, rows: int) -> int:
    """How many fits of up to `rows` rows run at once: `jobs`, or one at a time beyond
    config.PARALLEL_FIT_ROWS, where two fits' matrices side by side would exceed the memory budget."""
    return jobs if rows <= config.PARALLEL_FIT_ROWS else 1


def threads_each(jobs: int, side: int) -> int:
    """Threads for each of `side` fits running at once on a run of `jobs` cores: a fit that runs alone
    gets them all (at a million users the backtest's fits run one at a time, and one thread of two
    left half the machine idle for most of the run)."""
    return max(1, jobs // max(1, side))


def with_threads(pipe: Any, threads: int) -> Any:
    """The pipeline with its model set to fit and predict on `threads` threads, when its family runs
    on threads; a deployed model is set back to one, so that scoring and serving decide their own."""
    model = getattr(pipe, "named_steps", {}).get("model")
    if isinstance(model, _THREADED):
        model.set_params(n_jobs=int(threads))
    return pipe


@contextmanager
def one_blas_thread(jobs: int) -> Iterator[None]:
    """BLAS on one thread while `jobs` > 1 fits run side by side in threads: each of OpenBLAS's pools
    would otherwise start a thread per core, and the fits fight for the cores (a linear model's Hessian
    products ran several times slower so)."""
    if jobs <= 1:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
