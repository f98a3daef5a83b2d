"""Running fits on a Dask cluster. Dask is imported only when a command is given --dask.

joblib's Dask backend, Optuna's Dask storage and a gather wait on the cluster's futures without any
timeout: a cluster whose workers are all gone would keep a run waiting forever. `connect` therefore
watches the cluster from a thread and, once it has had no scheduler or no worker for `lost_after`
seconds, interrupts the waiting command, which then ends in one sentence (exit 2)."""

from __future__ import annotations

import _thread
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import joblib

from .errors import InputError

CONNECT_SECONDS = 10  # for a scheduler to answer at the start
LOST_SECONDS = 60.0  # without a scheduler or any worker before a run gives up
WATCH_EVERY = 2.0  # seconds between two looks at the cluster


@contextlib.contextmanager
def connect(address: str | None, lost_after: float = LOST_SECONDS) -> Iterator[object | None]:
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
            watched(client, address, lost_after),
        ):
            yield client
        return
    try:
        client = Client(address, timeout=f"{CONNECT_SECONDS}s")
    except (OSError, TimeoutError, ValueError) as e:
        raise InputError(
            f"--dask {address}: no Dask scheduler answered ({e}); start one with "
            "`dask scheduler` or pass --dask local"
        ) from None
    with client, watched(client, address, lost_after):
        yield client


def _trouble(client: Any) -> str | None:
    """What keeps the cluster from working now, or None."""
    if client.status != "running":
        return "lost its scheduler"
    try:
        workers = client.scheduler_info(n_workers=1)["workers"]
    except (OSError, TimeoutError):
        return "lost its scheduler"
    return None if workers else "has no worker left"


@contextlib.contextmanager
def watched(client: Any, address: str, lost_after: float = LOST_SECONDS) -> Iterator[None]:
    """Turn a cluster that dies under the body (no scheduler or no worker for `lost_after` seconds, a
    task that killed its workers, futures cancelled with the scheduler) into one InputError."""
    from distributed import TimeoutError as DaskTimeout
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    stop, found = threading.Event(), []

    def watch() -> None:
        while not stop.wait(WATCH_EVERY):
            if _trouble(client) is None:
                continue
            if stop.wait(lost_after):  # a scheduler restarting or workers joining get their time
                return
            trouble = _trouble(client)
            if trouble is not None:
                found.append(trouble)
                _thread.interrupt_main()  # the main thread waits inside joblib, Optuna or Dask
                return

    watcher = threading.Thread(target=watch, name="dask-watch", daemon=True)
    watcher.start()
    lost = f"--dask {address}: the cluster"
    again = "; nothing was written. Check the scheduler and workers (their logs) and run again"
    try:
        yield
    except KeyboardInterrupt:
        if not found:
            raise
        raise InputError(f"{lost} {found[0]} for {lost_after:.0f} seconds{again}") from None
    except KilledWorker:
        raise InputError(
            f"{lost} lost a worker each of the times it ran one task (a worker out of memory is the "
            f"usual cause: give the workers more memory){again}"
        ) from None
    except (FutureCancelledError, DaskTimeout) as e:
        if found or client.status != "running" or _trouble(client):
            raise InputError(f"{lost} {found[0] if found else 'lost its scheduler'}{again}") from None
        raise InputError(f"{lost} cancelled the run's work ({type(e).__name__}){again}") from None
    finally:
        stop.set()


@contextlib.contextmanager
def fits_on(client: Any) -> Iterator[int]:
    """Route joblib's parallel fits to the cluster's workers; yield the n_jobs to ask for. A joblib call
    that must stay in this process (its tasks share memory or hold local state) says so with
    `require="sharedmem"`, which joblib honours under any backend."""
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
