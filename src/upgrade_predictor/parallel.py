"""Running fits on a Dask cluster. Dask is imported only when a command is given --dask."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import joblib

from .errors import InputError


@contextlib.contextmanager
def connect(address: str | None) -> Iterator[object | None]:
    """Yield a dask.distributed Client ("local": a 2-worker LocalCluster on this machine), or None."""
    if not address:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("--dask needs Dask: pip install 'upgrade-predictor[dask]'") from None
    if address == "local":
        # Processes, one thread each: scikit-learn and LightGBM fits hold the GIL.
        with (
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc,
            Client(lc) as client,
        ):
            yield client
        return
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise InputError(
            f"--dask {address}: no Dask scheduler answered ({e}); start one with "
            "`dask scheduler` or pass --dask local"
        ) from None
    with client:
        yield client


@contextlib.contextmanager
def fits_on(client: Any) -> Iterator[int]:
    """Route joblib's parallel fits to the cluster's workers; yield the n_jobs to ask for."""
    if client is None:
        yield 0
        return
    with joblib.parallel_config(backend="dask"):
        yield -1


def study_storage(client: Any) -> Any:
    """Optuna storage that every worker of the cluster shares (None: Optuna's in-memory default)."""
    if client is None:
        return None
    from optuna_integration.dask import DaskStorage

    return DaskStorage(client=client)
