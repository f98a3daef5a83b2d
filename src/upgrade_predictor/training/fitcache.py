"""A cache of fitted preprocessing shared by every fit of one comparison (scikit-learn's Pipeline memory).

The comparison fits every family x strategy, then every tuning trial, on the same folds: the engagement
features, imputation, clipping and Yeo-Johnson steps see the same fold rows again and again, and
Yeo-Johnson alone was most of a linear model's fit. scikit-learn's `Pipeline(memory=...)` (joblib.Memory)
reuses a step's fitted output when its parameters and input are the same, so every fit is still a refit
of its own fold: the results are identical, only repeated work is skipped.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from joblib import Memory
from joblib.parallel import get_active_backend

_active: Memory | None = None


def active() -> Memory | None:
    """The cache of the comparison under way, or None (no comparison, or fits on a cluster)."""
    return _active


@contextmanager
def fit_cache() -> Iterator[Memory | None]:
    """A private temporary cache for the fits made inside the block, removed when it ends.

    It holds pickles this process's workers wrote into a folder only this user can read (mkdtemp),
    read back by the same run. Fits on a Dask cluster get none: its workers may not share this disk."""
    global _active
    backend, _ = get_active_backend()
    if _active is not None or "Dask" in type(backend).__name__:
        yield _active
        return
    folder = tempfile.mkdtemp(prefix="upgrade-predictor-fits-")
    _active = Memory(folder, verbose=0)
    try:
        yield _active
    finally:
        _active = None
        shutil.rmtree(folder, ignore_errors=True)


def with_memory(estimator: Any, memory: Memory | None) -> Any:
    """`estimator` caching its pipeline steps in `memory` (a pipeline; anything else as it is)."""
    if memory is not None and "memory" in estimator.get_params(deep=False):
        estimator.set_params(memory=memory)
    return estimator
