"""`upgrade-predictor report`: rebuild a run's report.html."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import EXAMPLES, app, console


@app.command("report", epilog=EXAMPLES["report"])
def report_cmd(run_dir: Path = typer.Argument(..., help="a run folder written by 'train'")) -> None:
    """Rebuild RUN_DIR/report.html from a saved run (a table run reloads the data file named in run.json)."""
    from .. import api

    api.report(run_dir, console)
