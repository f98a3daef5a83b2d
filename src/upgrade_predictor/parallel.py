"""Running fits on a Dask cluster. Dask is imported only when a command is given --dask."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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
def fits_on(client) -> Iterator[int]:
    """Route joblib's parallel fits to the cluster's workers; yield the n_jobs to ask for."""
    if client is None:
        yield 0
        return
    with joblib.parallel_config(backend="dask"):
        yield -1


def study_storage(client):
    """Optuna storage that every worker of the cluster shares (None: Optuna's in-memory default)."""
    if client is None:
        return None
    from optuna_integration.dask import DaskStorage

    return DaskStorage(client=client)


# --- scoring a partitioned data set ---------------------------------------------------------------
#
# Three passes, all on the workers; only per-partition counts reach the client. 1) Every input partition
# is validated and scored by the single-machine functions and written to a staging folder (valid rows:
# partition, row in partition, probability, id; rejects with reasons). 2) Dask sorts the staged rows by
# probability (ties: file order) into ranked partitions; with a top N, each partition keeps only its
# best N and a tree of merges on the workers keeps the best N overall instead. 3) Each ranked
# partition gets its global rank, global row number and decision. Every file is
# written under a fixed name (temp file, then rename), so a task rerun after a lost worker rewrites
