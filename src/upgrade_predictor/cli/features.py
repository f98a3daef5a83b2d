"""`upgrade-predictor features`: the point-in-time features of today's free users, as a table."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import config
from ..console import say
from .app import EXAMPLES, app, console


@app.command(epilog=EXAMPLES["features"])
def features(
    out: Path = typer.Option(..., "--out", help="the feature table to write (.csv or .parquet)"),
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
) -> None:
    """Write the point-in-time features of every user still free on --as-of (events before it only)."""
    from ..files import check_outputs
    from ..forecast.export import write_features

    check_outputs({"--out": out}, {"--events": events, "--mapping": mapping})
    path = write_features(events or config.default_events_path(), out, as_of, mapping, force)
    say(console, f"features written to {path}")
