"""A training run: load and audit the data, run the protocol, and publish the run folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from ..console import say
from ..data_audit import audit
from ..dataset import load_dataset
from ..parallel import connect, fits_on, study_storage
from ..runs.folder import destination, published
from .clock import RunClock
from .options import TableOptions
from .runs import write_run
from .splits import check_classes, row_groups
from .summary import show_audit, show_economics


def run_training(
    cfg: TableOptions,
    console: Console | None = None,
    finish: Callable[[Path, str], object] | None = None,
    clock: RunClock | None = None,
) -> Path:
    """Audit, compare, tune, select, test once, and publish the run folder whole.

    `finish(folder, name)` runs on the complete temp folder before it is published (the report is built
    there), so a reader never sees a run without it and a failure leaves nothing behind. `clock` (made
    here when not given) times the stages and holds cfg.time_limit, counted from this call."""
    console = console or Console(stderr=True)
    budget = cfg.check()
    cfg.check_threshold_rule()
    clock = clock or RunClock(cfg.time_limit)
    clock.limit = cfg.time_limit
    started = clock.started
    clock.mark("audit")
    dest = destination(cfg.out, cfg.force, {"--data": cfg.data})
    ds = load_dataset(
        cfg.data,
        cfg.target,
        cfg.id_column,
        cfg.numeric,
        cfg.categorical,
        cfg.exclude,
        cfg.positive,
        cfg.group_column,
    )
    groups = row_groups(ds, cfg)  # hashed once: the class check and the protocol split by the same groups
    check_classes(ds, groups, cfg, budget)
    report = audit(ds)
    show_audit(console, report)
    with published(dest) as out:
        with connect(cfg.dask) as client, fits_on(client) as n_jobs:
            run_cfg = replace(cfg, jobs=n_jobs or cfg.jobs)
            write_run(out, ds, report, run_cfg, budget, console, study_storage(client), clock, groups)
        out.finish(finish, clock)
    clock.mark(None)
    show_economics(console, cfg.economics(), cfg.lift())
    say(console, f"done in {time.perf_counter() - started:.0f}s: {dest}", style="green")
    return dest
