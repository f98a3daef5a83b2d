"""`upgrade-predictor features`: the point-in-time features of today's free users, as a table."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import config
from ..console import say
from .app import EXAMPLES, app, console


@app.command(epilog=EXAMPLES["features"])
def features(
    out: Path = typer.Option(
        ...,
        "--out",
        help="the feature table to write (.csv or .parquet; with --dask a folder of Parquet parts)",
    ),
    events: Path | None = typer.Option(
        None,
        help="folder of dated event tables, or a database postgresql://USER@HOST:PORT/DB (the password from "
        "PGPASSWORD or ~/.pgpass) [default: ../shared/data/365_events]",
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="cutoff date YYYY-MM-DD [default: the day after the last event]"
    ),
    mapping: Path | None = typer.Option(
        None, help="TOML mapping of the event tables [default: the 365 layout]"
    ),
    force: bool = typer.Option(False, help="replace an existing --out file"),
    audit: Path | None = typer.Option(
        None, help="also write the event tables' audit (every row left out or flagged, by reason) as JSON"
    ),
    dask: str | None = typer.Option(
        None,
        help="compute on a Dask cluster: a scheduler address, or 'local' (its workers must read the "
        "event folder at the same path)",
    ),
) -> None:
    """Write the point-in-time features of every user still free on --as-of (events before it only)."""
    from ..files import check_outputs
    from ..forecast.summary import show_event_audit
    from ..sources.event_staging import event_inputs

    folder = events or config.default_events_path()
    if dask:
        from ..forecast.engine import refuse_database_on_dask

        refuse_database_on_dask(folder)
    check_outputs(
        {"--out": out, "--audit": audit},
        {"--events": folder, "--mapping": mapping, "a table of the mapping": event_inputs(folder, mapping)},
    )
    if dask:
        from ..scoring.events_cluster import write_features_folder  # Dask is loaded for --dask only

        path = write_features_folder(
            folder,
            out,
            as_of,
            mapping,
            force,
            dask,
            on_audit=lambda a: show_event_audit(console, a),
            audit=audit,
        )
    else:
        from ..scoring.events import export_features

        path = export_features(
            folder, out, as_of, mapping, force, on_audit=lambda a: show_event_audit(console, a), audit=audit
        )
    say(console, f"features written to {path}" + (f"; audit in {audit}" if audit else ""))
