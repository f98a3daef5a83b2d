"""`upgrade-predictor score`: a ranked target list from a table of users, a cluster, or event tables."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from .. import config
from ..console import say, warn
from ..errors import InputError
from .app import EXAMPLES, VERIFY_KEY, app, console, fail

if TYPE_CHECKING:
    from ..scoring.batch import BatchResult
    from ..sources.event_audit import EventAudit


@app.command(epilog=EXAMPLES["score"])
def score(
    model: Path = typer.Argument(..., help="model bundle (model.zip from a training run)"),
    data: str | None = typer.Argument(
        None,
        help="users to score: a CSV (plain or .csv.gz) or Parquet file, a folder of parts, or a glob "
        "(not with --events)",
    ),
    out: Path = typer.Option(
        ..., "--out", help="ranked list to write (.csv or .parquet; with --dask a folder)"
    ),
    top: int | None = typer.Option(None, help="keep only the N best-ranked users"),
    budget: float | None = typer.Option(None, help="keep as many users as the budget pays offers for"),
    offer_cost: float | None = typer.Option(
        None, help="cost of one offer, for --budget [default: the bundle's, else config]"
    ),
    explain: bool = typer.Option(False, help="add the top three signed reasons per user (slower)"),
    rejects: Path | None = typer.Option(None, help="rejected rows with reasons [default: OUT.rejects.csv]"),
    id: str | None = typer.Option(
        None, "--id", help="an id column to carry to the list and the rejects [default: the training id]"
    ),
    max_reject_share: float = typer.Option(
        config.MAX_REJECT_SHARE, help="exit 1 when more than this share of rows is rejected"
    ),
    progress: bool = typer.Option(True, help="show a progress bar"),
    dask: str | None = typer.Option(None, help="score on a Dask cluster: a scheduler address, or 'local'"),
    events: Path | None = typer.Option(
        None,
        help="score every user still free on --as-of from a folder of dated event tables or a database "
        "postgresql://USER@HOST:PORT/DB (the password from PGPASSWORD or ~/.pgpass; with --dask: a folder, "
        "computed on the cluster, whose workers must read it at the same path)",
    ),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="with --events: the scoring day YYYY-MM-DD [default: the day after the last event]",
    ),
    mapping: Path | None = typer.Option(None, help="with --events: TOML mapping [default: the 365 layout]"),
    audit: Path | None = typer.Option(
        None, help="with --events: also write the event tables' audit (rows left out, by reason) as JSON"
    ),
    verify_key: Path | None = VERIFY_KEY,
) -> None:
    """Score users into a ranked target list: row, id, probability, decision, rank (and reasons).

    With --events: every user still free on --as-of, from the events dated before it (user_id, tenure)."""
    from ..files import check_outputs
    from ..scoring.batch import default_rejects_path, score_file
    from ..scoring.cluster import score_dataset
    from ..scoring.scorer import Scorer

    check_options(data, events, dask, id, explain, rejects, max_reject_share, top, budget, offer_cost)
    if audit is not None and events is None:
        raise InputError("--audit is the audit of event tables: give it with --events")
    check_outputs(
        {"--out": out, "--rejects": rejects or (None if dask else default_rejects_path(out)), "--audit": audit},
        {"MODEL": model, "DATA": data, "--events": events, "--mapping": mapping, "--verify-key": verify_key,
         "a table of the mapping": event_tables(events, mapping)},
    )  # fmt: skip
    scorer = None if dask else Scorer.load(model, verify_key=verify_key)
    selection = Selection(top, budget, offer_cost)
    with progress_bar(bool(dask), progress) as advance:
        result: BatchResult
        if events is not None and dask:
            from ..scoring.events_cluster import score_events_on_dask

            result, day = score_events_on_dask(
                model,
                events,
                out,
                dask,
                as_of=as_of,
                mapping=mapping,
                **selection.kwargs(),
                progress=advance,
                verify_key=verify_key,
                on_audit=show_audit,
                audit=audit,
            )
            say(console, f"users free on {day} scored on the cluster from the events dated before it")
        elif events is not None and scorer is not None:
            from ..scoring.events import score_events  # DuckDB is loaded for event tables only

            result, day = score_events(
                scorer,
                events,
                out,
                as_of=as_of,
                mapping=mapping,
                rejects=rejects,
                **selection.kwargs(),
                explain=explain,
                progress=advance,
                on_audit=show_audit,
                audit=audit,
            )
            say(console, f"users free on {day} scored from the events dated before it")
        elif scorer is None:
            assert data is not None  # checked above: DATA or --events
            result = score_dataset(
                model,
                data,
                out,
                dask,
                **selection.kwargs(),
                id_column=id,
                progress=advance,
                verify_key=verify_key,
            )
        else:
            assert data is not None  # checked above: DATA or --events
            result = score_file(
                scorer,
                data,
                out,
                rejects=rejects,
                **selection.kwargs(),
                explain=explain,
                id_column=id,
                progress=advance,
            )
    show_result(result)
    if result.reject_share > max_reject_share:
        fail(
            f"{result.reject_share:.2%} of rows were rejected, over --max-reject-share "
            f"{max_reject_share:.2%}; see {result.rejects}",
            code=1,
        )


def event_tables(events: Path | None, mapping: Path | None) -> list[str]:
    """Every file the mapping of --events names (inputs no output may be); none without --events."""
    if events is None:
        return []
    from ..sources.event_staging import event_inputs

    return event_inputs(events, mapping)


def show_audit(audit: EventAudit) -> None:
    """The event tables' audit on the console, as train --events shows it."""
    from ..forecast.summary import show_event_audit

    show_event_audit(console, audit)


@dataclass(frozen=True)
class Selection:
    """Which of the ranked users the list keeps: the top N, or as many as the budget pays offers for."""

    top: int | None
    budget: float | None
    offer_cost: float | None

    def kwargs(self) -> dict[str, Any]:
        return {"top": self.top, "budget": self.budget, "offer_cost": self.offer_cost}


def check_options(
    data: str | None,
    events: Path | None,
    dask: str | None,
    id: str | None,
    explain: bool,
    rejects: Path | None,
    max_reject_share: float,
    top: int | None,
    budget: float | None,
    offer_cost: float | None,
) -> None:
    """Refuse a bad option, or options that do not go together, before any file is read."""
    if (data is None) == (events is None):
        raise InputError("give either DATA (a table of users) or --events DIR (dated event tables), not both")
    if events is not None and id:
        raise InputError("--events scores with user_id as the id; drop --id")
    config.check_number("--max-reject-share", max_reject_share, 0, 1)
    config.check_number("--top", top, 1)
    config.check_number("--budget", budget, 0)
    config.check_number("--offer-cost", offer_cost, 0, above=True)
    if dask and explain:
        raise InputError("--explain is not available with --dask; score without it")
    if dask and rejects:
        raise InputError("--rejects: with --dask the rejects are written to OUT/rejects/")
    if dask and events is not None:
        from ..forecast.engine import refuse_database_on_dask

        refuse_database_on_dask(events)


@contextlib.contextmanager
def progress_bar(dask: bool, show: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (partitions on a cluster, bytes on this machine); yields its update."""
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn() if dask else DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
        transient=True,
    )
    with bar:
        task = bar.add_task("scoring partitions" if dask else "scoring", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def show_result(result: BatchResult) -> None:
    """What was scored, written and rejected (the five commonest reasons)."""
    say(
        console,
        f"{result.accepted:,} rows scored, {result.rejected:,} rejected "
        f"({result.reject_share:.2%}); {result.written:,} written to {result.out}; "
        f"rejects in {result.rejects}",
    )
    parts = f"the {result.files:,} files in name order" if result.files > 1 else "the file"
    which = f"id column {result.id_column}; " if result.id_column else "no id column; "
    say(console, f"{which}'row' counts data rows from 0 across {parts}")
    if result.duplicate_ids:
        n = result.duplicate_ids
        rows = f"{n:,} rows repeat" if n != 1 else "1 row repeats"
        warn(console, f"{rows} an earlier row's {result.id_column}; all are kept")
    for text, count in sorted(result.reject_reasons.items(), key=lambda kv: -kv[1])[:5]:
        say(console, f"  {count:,} x {text}")
