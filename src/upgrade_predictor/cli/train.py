"""`upgrade-predictor train`: a table run, or with --events an events run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import typer

from .. import config
from ..errors import InputError
from .app import EXAMPLES, app, console, split_names

if TYPE_CHECKING:
    from ..kinds import TrainConfig


@app.command(epilog=EXAMPLES["train"])
def train(
    data: Path | None = typer.Option(
        None, help="CSV or Parquet file [default: ../shared/data/ml_datasource.csv]"
    ),
    target: str = typer.Option(config.TARGET, help="the binary label column"),
    out: Path | None = typer.Option(None, help="run folder [default: runs/<timestamp>]; never overwritten"),
    budget: config.BudgetName = typer.Option(config.BUDGET, help="how much search: trial counts, folds"),
    seed: int = typer.Option(config.SEED, help="seed of the split, folds, samplers and tuning"),
    id: str | None = typer.Option(None, "--id", help="an id column: carried through, never a feature"),
    positive: str | None = typer.Option(None, help="the target value that counts as positive"),
    numeric: str | None = typer.Option(None, help="comma-separated columns to treat as numeric"),
    categorical: str | None = typer.Option(None, help="comma-separated columns to treat as categorical"),
    exclude: str | None = typer.Option(None, help="comma-separated columns to leave out"),
    test_size: float = typer.Option(config.TEST_SIZE, help="share of rows held out for the final test"),
    group_duplicates: bool = typer.Option(
        False, help="keep feature-identical rows on one side of every split"
    ),
    group: str | None = typer.Option(
        None,
        "--group",
        help="a column whose rows stay together on one side of every split (e.g. a user with "
        "several rows); never a feature",
    ),
    families: str | None = typer.Option(
        None, help=f"comma-separated subset of {','.join(get_args(config.FamilyName))}"
    ),
    strategies: str | None = typer.Option(
        None, help=f"comma-separated subset of {','.join(config.STRATEGIES)}"
    ),
    objective: config.Objective = typer.Option(config.OBJECTIVE, help="metric Optuna maximises (CV mean)"),
    threshold: config.ThresholdRule = typer.Option(
        config.THRESHOLD,
        help="how the decision threshold is chosen: best F1, or most incremental profit "
        "(needs --assumed-lift)",
    ),
    offer_cost: float = typer.Option(config.OFFER_COST, help="cost of one offer (profit threshold, report)"),
    upgrade_value: float = typer.Option(config.UPGRADE_VALUE, help="value of one upgrade reached"),
    assumed_lift: str | None = typer.Option(
        None,
        help="the offer's assumed effect that prices the offer policy, relative to each user's "
        "upgrade probability ('20%') or absolute ('1.5pp') [default: none; no policy is priced]",
    ),
    discount: float = typer.Option(0.0, help="revenue given up when an upgrader redeems the offer"),
    jobs: int = typer.Option(config.JOBS, help="parallel fits"),
    report: bool = typer.Option(True, help="write report.html at the end"),
    force: bool = typer.Option(False, help="replace an existing --out folder"),
    dask: str | None = typer.Option(
        None, help="run the fits on a Dask cluster: a scheduler address, or 'local'"
    ),
    events: Path | None = typer.Option(
        None,
        help="forecast from a folder of dated event tables instead of one table "
        "(e.g. ../shared/data/365_events), or from a database postgresql://USER@HOST:PORT/DB (the password "
        "from PGPASSWORD or ~/.pgpass)",
    ),
    mapping: Path | None = typer.Option(
        None, help="TOML mapping of the event tables [default: the 365 layout]"
    ),
    horizon: int = typer.Option(
        config.HORIZON, help="with --events: days after the cutoff an upgrade counts"
    ),
    design_rows: str | None = typer.Option(
        None,
        "--design-rows",
        help="with --events: train on the (user, cutoff) rows of a random sample of users holding at most "
        "this many rows, or 'all' [default: the budget's: quick 300,000, standard 1,500,000, thorough "
        "5,000,000]",
    ),
    time_limit: float | None = typer.Option(
        None, help="cap the whole run at this many seconds (results may then vary between machines)"
    ),
    sign_key: Path | None = typer.Option(
        None,
        help="PEM elliptic-curve private key: writes model.zip.sig beside each bundle "
        "(needs pip install 'upgrade-predictor[sign]')",
    ),
    mlflow: bool = typer.Option(
        False, help="log the run to MLflow ($MLFLOW_TRACKING_URI, else ./mlruns; needs the mlflow extra)"
    ),
    tracking_uri: str | None = typer.Option(None, help="with --mlflow: the MLflow tracking URI"),
) -> None:
    """Audit the data, compare models and imbalance strategies, tune, and save a model bundle.

    With --events: point-in-time features of (user, cutoff) rows, a time-ordered backtest, and a forecast
    of which of today's free users upgrade within --horizon days."""
    options = dict(locals())  # first: the options only, before any name is bound here
    from .. import api

    mlflow_on, uri = options.pop("mlflow"), options.pop("tracking_uri")
    if uri and not mlflow_on:
        raise InputError("--tracking-uri is for --mlflow; add --mlflow")
    if options["events"] is not None:
        from ..sources.event_database import parse_database

        parse_database(options["events"])  # a URL with a password is refused before anything is read
    api.train(train_config(options), console=console, mlflow=mlflow_on, tracking_uri=uri)


# The options the command line names apart from TrainConfig's fields, and its comma-separated lists.
RENAMED = {"id": "id_column", "group": "group_column"}
LISTS = ("numeric", "categorical", "exclude", "families", "strategies")


def train_config(options: dict[str, Any]) -> TrainConfig:
    """The run's options from the command's: lists split, every family and strategy when none given."""
    from ..kinds import TrainConfig

    values = {RENAMED.get(k, k): v for k, v in options.items()}
    for key in LISTS:
        values[key] = split_names(values[key])
    values["design_rows"] = design_rows_of(values["design_rows"])
    values["families"] = values["families"] or list(get_args(config.FamilyName))
    values["strategies"] = values["strategies"] or list(config.STRATEGIES)
    return TrainConfig(**values)


def design_rows_of(text: str | None) -> int | None:
    """--design-rows: a whole number of rows, or 'all' (0: no limit)."""
    if text is None:
        return None
    if text.strip().lower() == "all":
        return 0
    try:
        rows = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise InputError(f"--design-rows {text!r}: give a whole number of rows, or 'all'") from None
    if rows < 1:
        raise InputError(f"--design-rows {text!r}: give at least 1 row, or 'all'")
    return rows
