"""`upgrade-predictor campaign plan|readout`: a randomized holdout for an offer, drawn and read out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from .. import config
from ..console import STDERR, plain, say, warn
from ..errors import InputError
from .app import app

if TYPE_CHECKING:
    from ..campaign.records import ListReadout, Plan, Readout

campaign_app = typer.Typer(
    no_args_is_help=True,
    help="Draw a randomized holdout for an offer (plan), then measure what the offer did (readout).",
)
app.add_typer(campaign_app, name="campaign")

PLAN_EXAMPLE = (
    "Example:  upgrade-predictor campaign plan runs/forecast/model.zip --events ../shared/data/365_events "
    "--as-of 2022-07-15 --top 5000 --out campaigns/july"
)
READOUT_EXAMPLE = (
    "Example:  upgrade-predictor campaign readout campaigns/july --events newer_tables --out campaigns/july-readout"
    "   (or a plain list: campaign readout july.csv --horizon 30 --events newer_tables --out july-list)"
)


@campaign_app.command("plan", epilog=PLAN_EXAMPLE)
def plan(
    model: Path = typer.Argument(..., help="events model bundle (model.zip of a train --events run)"),
    events: Path = typer.Option(
        ..., "--events", help="folder of dated event tables, or postgresql://USER@HOST:PORT/DB, to score"
    ),
    out: Path = typer.Option(..., "--out", help="folder to write the plan to"),
    as_of: str | None = typer.Option(
        None, "--as-of", help="the day the offer goes out, YYYY-MM-DD [default: the day after the last event]"
    ),
    top: int | None = typer.Option(None, help="target the N users most likely to upgrade"),
    budget: float | None = typer.Option(None, help="target as many users as the budget pays offers for"),
    holdout: float = typer.Option(0.2, help="share of the target group held out (not sent the offer)"),
    seed: int = typer.Option(config.SEED, help="seed of the random assignment"),
    offer_cost: float = typer.Option(config.OFFER_COST, help="cost of one offer"),
    upgrade_value: float = typer.Option(config.UPGRADE_VALUE, help="value of one upgrade"),
    discount: float = typer.Option(0.0, help="revenue given up when an upgrader redeems the offer"),
    mapping: Path | None = typer.Option(None, help="TOML mapping of the tables [default: the 365 layout]"),
    force: bool = typer.Option(False, help="replace an earlier plan in --out"),
) -> None:
    """Score the users free on --as-of, select the target group and split it into offer and holdout."""
    from ..campaign.plan import plan_campaign
    from ..campaign.records import PLAN_FILE, Plan, read_record

    config.check_number("--top", top, 1)
    config.check_number("--budget", budget, 0)
    done = plan_campaign(
        model,
        events,
        out,
        as_of,
        top,
        budget,
        holdout,
        seed,
        offer_cost,
        upgrade_value,
        discount,
        mapping,
        force,
    )
    show_plan(read_record(Plan, done / PLAN_FILE))
    say(STDERR, f"plan written to {done}; send the offer to the users of {done / 'send.csv'}")


@campaign_app.command("readout", epilog=READOUT_EXAMPLE)
def readout(
    source: Path = typer.Argument(
        ..., help="the folder `campaign plan` wrote, or a list `score --events` wrote (.csv or .parquet)"
    ),
    events: Path = typer.Option(
        ..., "--events", help="folder of event tables newer than the as-of, or postgresql://USER@HOST:PORT/DB"
    ),
    out: Path = typer.Option(..., "--out", help="folder to write the readout to"),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="for a scored list: the day it was scored, YYYY-MM-DD [default: from its tenure_days]",
    ),
    horizon: int | None = typer.Option(
        None, help="for a scored list: the horizon in days of the model that scored it (required)"
    ),
    mapping: Path | None = typer.Option(None, help="TOML mapping of the tables [default: the plan's]"),
    force: bool = typer.Option(False, help="replace an earlier readout in --out"),
    mlflow: bool = typer.Option(
        False, help="log the readout to MLflow ($MLFLOW_TRACKING_URI, else ./mlruns; needs the mlflow extra)"
    ),
    tracking_uri: str | None = typer.Option(None, help="with --mlflow: the MLflow tracking URI"),
) -> None:
    """Measure the offer against the holdout from the upgrades within the model's horizon; for a plain
    scored list (no holdout), check the forecast against what happened."""
    from ..campaign.records import ListReadout
    from ..campaign.run import read_out
    from ..campaign.tracked import read_readout

    if tracking_uri and not mlflow:
        raise InputError("--tracking-uri is for --mlflow; add --mlflow")
    done = read_out(source, events, out, mapping, force, as_of, horizon)
    record = read_readout(done)
    if isinstance(record, ListReadout):
        show_list(record)
    else:
        show_readout(record)
    say(STDERR, f"readout written to {done}")
    if mlflow:
        say(STDERR, f"logged to MLflow as run {log_readout(done, tracking_uri)}")


def log_readout(folder: Path, tracking_uri: str | None) -> str:
    from ..campaign.tracked import EXPERIMENT, tracked_readout
    from ..tracking import Record, log_record

    t = tracked_readout(folder)
    record = Record(t.name, t.params, t.metrics, t.tags, t.artifacts, leaderboard=None)
    return log_record(record, tracking_uri, EXPERIMENT)


def _table(rows: list[tuple[str, str]]) -> Table:
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for name, value in rows:
        table.add_row(plain(name), plain(value))
    return table


def show_plan(p: Plan) -> None:
    STDERR.print(
        _table(
            [
                ("as of / horizon", f"{p.as_of} / {p.horizon} days"),
                ("scored / targeted", f"{p.scored_users:,} / {p.targeted_users:,}"),
                ("offer arm", f"{p.offer.users:,} users, {p.offer.expected_upgrades:.1f} upgrades expected"),
                (
                    "holdout",
                    f"{p.holdout.users:,} users, {p.holdout.expected_upgrades:.1f} upgrades expected",
                ),
                ("minimum detectable effect", f"{p.power.mde * 100:.2f}pp"),
                ("break-even lift", f"{p.power.break_even * 100:.2f}pp"),
            ]
        )
    )
    if p.power.warning:
        warn(STDERR, p.power.warning)


def show_readout(r: Readout) -> None:
    d, a, pr = r.effect.difference, r.effect.adjusted, r.profit.incremental
    STDERR.print(
        _table(
            [
                (
                    "window",
                    f"{r.as_of} to {r.window_end}"
                    + ("" if r.horizon_closed else f" ({r.days_open} days open)"),
                ),
                ("offer", f"{r.offer.upgrades:,} of {r.offer.users:,} ({r.offer.rate:.2%})"),
                ("holdout", f"{r.holdout.upgrades:,} of {r.holdout.users:,} ({r.holdout.rate:.2%})"),
                ("difference", f"{d.value:+.2%} ({d.low:+.2%} to {d.high:+.2%})"),
                ("adjusted", f"{a.value:+.2%} ({a.low:+.2%} to {a.high:+.2%})"),
                ("incremental profit", f"{pr.value:+,.0f} ({pr.low:+,.0f} to {pr.high:+,.0f})"),
            ]
        )
    )
    if not r.horizon_closed:
        warn(STDERR, f"interim: the tables end {r.days_open} days before the horizon closes")
    if r.srm.mismatch:
        warn(
            STDERR, f"sample-ratio mismatch (p = {r.srm.p_value:.2g}): the arms do not match the plan's share"
        )
    if r.balance is not None and r.balance.flagged:
        where = [
            f"band {b.band}" if b.band else "overall"
            for b in [r.balance.overall, *r.balance.bands]
            if b.flagged
        ]
        warn(
            STDERR,
            f"the arms differ by more than {r.balance.threshold:g} standardized mean differences "
            f"({', '.join(where)}); see the balance table of the readout page",
        )


def show_list(r: ListReadout) -> None:
    e = r.expected_upgrades
    table = Table(title=plain(f"forecast against what happened, {r.as_of} to {r.window_end}"))
    for name in ("band", "ranks", "users", "expected", "actual", "precision", "lift"):
        table.add_column(name, justify="left" if name == "band" else "right")
    for b in r.bands:
        table.add_row(
            str(b.band), f"{b.first_rank:,}-{b.last_rank:,}", f"{b.users:,}", f"{b.expected_upgrades:,.1f}",
            f"{b.actual_upgrades:,}", f"{b.precision:.2%}", f"{b.lift:.2f}",
        )  # fmt: skip
    table.add_row(
        "all", "", f"{r.users:,}", f"{e.value:,.1f} ({e.low:,.0f}-{e.high:,.0f})", f"{r.actual_upgrades:,}",
        f"{r.upgrade_rate:.2%}", "1.00",
    )  # fmt: skip
    STDERR.print(table)
    warn(STDERR, r.note)
    if r.interim:
        warn(STDERR, f"interim: the tables end {r.days_open} days before the horizon closes")
    if r.upgraded_before_as_of:
        warn(
            STDERR,
            f"{r.upgraded_before_as_of:,} listed users had upgraded before {r.as_of} by the newer tables "
            "(late records, or a list not scored on that day); they are not counted",
        )
