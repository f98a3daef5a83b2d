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
        None, help="folder of dated event tables [default: ../shared/data/365_events]"
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="cutoff date YYYY-MM-DD [default: the day after the last event]"
    ),
    mapping: Path | None = typer.Option(
        None, help="TOML mapping of the event tables [default: the 365 layout]"
    ),
    force: bool = typer.Option(False, help="replace an existing --out file"),
    dask: str | None = typer.Option(
        None,
        help="compute on a Dask cluster: a scheduler address, or 'local' (its workers must read the "
        "event folder at the same path)",
    ),
) -> None:
    """Write the point-in-time features of every user still free on --as-of (events before it only)."""
    from ..files import check_outputs

    check_outputs({"--out": out}, {"--events": events, "--mapping": mapping})
    folder = events or config.default_events_path()
    if dask:
        from ..scoring.events_cluster import write_features_folder  # Dask is loaded for --dask only

        path = write_features_folder(folder, out, as_of, mapping, force, dask)
    else:
        from ..forecast.export import write_features

        path = write_features(folder, out, as_of, mapping, force)
    say(console, f"features written to {path}")
