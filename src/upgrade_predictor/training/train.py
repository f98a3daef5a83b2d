"""A training run: load and audit the data, run the protocol, and publish the run folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from rich.console import Console

from ..audit import audit
from ..console import say
from ..dataset import load_dataset
from ..errors import InputError
from ..files import staged_folder
from ..parallel import connect, fits_on, study_storage
from .protocol import TrainConfig
from .runs import write_run
from .summary import show_audit


def run_training(
    cfg: TrainConfig,
    console: Console | None = None,
    finish: Callable[[Path, str], object] | None = None,
) -> Path:
    """Audit, compare, tune, select, test once, and publish the run folder whole.

    `finish(folder, name)` runs on the complete temp folder before it is published (the report is built
    there), so a reader never sees a run without it and a failure leaves nothing behind."""
    console = console or Console(stderr=True)
    budget = cfg.check()
    started = time.perf_counter()
    dest = check_out(cfg)
    ds = load_dataset(
        cfg.data, cfg.target, cfg.id_column, cfg.numeric, cfg.categorical, cfg.exclude, cfg.positive
    )
    if ds.n < 50 or min(int(ds.y.sum()), int(ds.n - ds.y.sum())) < 2 * budget.cv_splits:
        raise InputError(
            f"too few rows to train and test: {ds.n} rows, {int(ds.y.sum())} positive; "
            f"need at least 50 rows and {2 * budget.cv_splits} of each class"
        )
    report = audit(ds)
    show_audit(console, report)
    with staged_folder(dest) as out:
        with connect(cfg.dask) as client, fits_on(client) as n_jobs:
            run_cfg = replace(cfg, jobs=n_jobs or cfg.jobs)
            write_run(out, ds, report, run_cfg, budget, console, study_storage(client))
        if finish is not None:
            finish(out, dest.name)
    say(console, f"done in {time.perf_counter() - started:.0f}s: {dest}", style="green")
    return dest


def check_out(cfg: TrainConfig) -> Path:
    """Where the run will be published; an existing run is replaced only with --force."""
    dest = Path(cfg.out) if cfg.out else Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    if dest.exists() and any(dest.iterdir()) and not cfg.force:
        raise InputError(f"{dest} already holds a run; choose another --out or pass --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest
