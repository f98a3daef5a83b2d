"""`upgrade-predictor drift`: new data against the bundle's training reference; exit 1 on drift."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from .. import config
from ..console import plain, say, warn
from ..errors import InputError
from .app import EXAMPLES, VERIFY_KEY, app, console

if TYPE_CHECKING:
    from ..drift_report import DriftCheck


@app.command(epilog=EXAMPLES["drift"])
def drift(
    model: Path = typer.Argument(..., help="model bundle (model.zip from a training run)"),
    data: str | None = typer.Argument(
        None,
        help="new users: a CSV (plain or .csv.gz) or Parquet file, a folder of parts, or a glob "
        "(not with --events)",
    ),
    out: Path | None = typer.Option(
        None, help="JSON report [default: drift.json beside DATA; with --events in this folder]"
    ),
    id: str | None = typer.Option(
        None, "--id", help="an id column to name rejected rows by [default: the training id]"
    ),
    psi_alert: float = typer.Option(config.PSI_ALERT, help="PSI at or above this is drift"),
    new_category_share: float = typer.Option(
        config.NEW_CATEGORY_SHARE, help="share of rows with unseen codes that is drift"
    ),
    range_share: float = typer.Option(
        config.RANGE_SHARE, help="share of rows outside the training range that is drift"
    ),
    events: Path | None = typer.Option(
        None,
        help="check the users still free on --as-of, from a folder of dated event tables or a database "
        "(postgresql://USER@HOST:PORT/DB; the password from PGPASSWORD or ~/.pgpass)",
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="with --events: the day YYYY-MM-DD [default: the day after the last event]"
    ),
    mapping: Path | None = typer.Option(None, help="with --events: TOML mapping [default: the 365 layout]"),
    audit: Path | None = typer.Option(
        None, help="with --events: also write the event tables' audit (rows left out, by reason) as JSON"
    ),
    verify_key: Path | None = VERIFY_KEY,
) -> None:
    """Compare new data with the training reference; exit 1 when a threshold is crossed."""
    from ..drift import check_file
    from ..files import check_outputs, write_json_atomic
    from ..scoring.events import today_features
    from ..scoring.scorer import Scorer

    if (data is None) == (events is None):
        raise InputError("give either DATA (a table of users) or --events DIR (dated event tables), not both")
    config.check_number("--psi-alert", psi_alert, 0, above=True)
    config.check_number("--new-category-share", new_category_share, 0, 1, above=True)
    config.check_number("--range-share", range_share, 0, 1, above=True)
    if audit is not None and events is None:
        raise InputError("--audit is the audit of event tables: give it with --events")
    if events is not None:
        out = out or Path("drift.json")
    else:
        assert data is not None  # checked above: DATA or --events
        out = out or Path(data.rstrip("/")).with_name("drift.json")
    from .score import event_tables, show_audit

    check_outputs(
        {"--out": out, "--audit": audit},
        {"MODEL": model, "DATA": data, "--events": events, "--mapping": mapping, "--verify-key": verify_key,
         "a table of the mapping": event_tables(events, mapping)},
    )  # fmt: skip
    scorer = Scorer.load(model, verify_key=verify_key)
    thresholds = {
        "psi_alert": psi_alert,
        "new_category_share": new_category_share,
        "range_share": range_share,
    }
    if events is not None:
        with today_features(scorer, events, as_of, mapping, show_audit, audit) as (path, day):
            check = check_file(scorer, path, id_column="user_id", **thresholds)
        data = f"{events} (users free on {day})"
    else:
        assert data is not None  # checked above: DATA or --events
        check = check_file(scorer, data, id_column=id, **thresholds)
    write_json_atomic(out, check.to_dict())
    show_drift(check, data)
    say(console, f"report written to {out}")
    if check.drift.drifted:
        for a in check.drift.alerts:
            warn(console, f"drift: {a}")
        raise typer.Exit(1)


def show_drift(check: DriftCheck, data: str) -> None:
    """The table of each feature's drift on stdout; the rows left out and repeated ids on stderr."""
    report = check.drift
    table = Table(title=plain(f"drift of {data} vs. training ({report.rows:,} valid rows)"))
    for col in ("feature", "PSI", "level", "new codes", "out of range"):
        table.add_column(col, justify="left" if col in ("feature", "level") else "right")
    for f in report.features:
        table.add_row(
            plain(f.feature),
            f"{f.psi:.3f}",
            f.level,
            f"{f.new_category_share:.2%}" if f.kind == "categorical" else "",
            f"{f.out_of_range_share:.2%}" if f.kind == "numeric" else "",
        )
    table.add_row("(score)", f"{report.score.psi:.3f}", report.score.level, "", "")
    Console().print(table)  # the table on stdout; messages on stderr
    if check.rows_rejected:
        say(console, f"{check.rows_rejected:,} rows failed validation and were left out")
    if check.duplicate_ids:
        n = check.duplicate_ids
        rows = f"{n:,} rows repeat" if n != 1 else "1 row repeats"
        warn(console, f"{rows} an earlier row's {check.id_column}")
