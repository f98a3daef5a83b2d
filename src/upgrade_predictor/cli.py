"""The command line: a thin layer over the stage modules. Input errors exit 2 with one message."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from . import config
from .console import error, plain, say, warn
from .errors import InputError

# The command line loads only the stage the command runs (inside each command): importing every stage
# (scikit-learn, LightGBM, DuckDB, matplotlib, ...) takes about 3 s and 300 MB, which `--help` and a
# scoring job should not pay. The library modules themselves import at the top.

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Predict which free users will upgrade, and decide whom to target.",
)
console = Console(stderr=True)


# One example per command, shown under its --help (plain text: no markup is read in it).
EXAMPLES = {
    "train": "Examples:  upgrade-predictor train --budget quick  ·  "
    "upgrade-predictor train --events ../shared/data/365_events --out runs/forecast  ·  "
    "upgrade-predictor train --data users.parquet --target upgraded --id user_id --time-limit 600",
    "report": "Example:  upgrade-predictor report runs/20260101-120000",
    "features": "Example:  upgrade-predictor features --events ../shared/data/365_events "
    "--as-of 2022-08-01 --out features.parquet",
    "score": "Examples:  upgrade-predictor score runs/RUN/model.zip users.csv --out targets.csv --top 500  ·  "
    "upgrade-predictor score runs/forecast/model.zip --events ../shared/data/365_events --out today.csv",
    "serve": "Example:  upgrade-predictor serve runs/RUN/model.zip --port 8000, then "
    "curl -d '{\"minutes_watched\": 30, ...}' localhost:8000/predict",
    "drift": "Example:  upgrade-predictor drift runs/RUN/model.zip new_users.csv --out drift.json",
}


# The same option on score, serve and drift: one definition.
VERIFY_KEY = typer.Option(
    None,
    help="PEM public key: refuse the bundle unless MODEL.sig is its valid signature "
    "(needs pip install 'upgrade-predictor[sign]')",
)


def fail(message: str, code: int = 2) -> None:
    error(console, message)
    raise typer.Exit(code)


def _split(values: str | None) -> list[str]:
    return [v.strip() for v in values.split(",") if v.strip()] if values else []


def _version(value: bool) -> None:
    if value:
        from . import __version__

        say(Console(), f"upgrade-predictor {__version__}")  # stdout: scripts read it
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Predict which free users will upgrade, and decide whom to target."""


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
    families: str | None = typer.Option(None, help=f"comma-separated subset of {','.join(config.FAMILIES)}"),
    strategies: str | None = typer.Option(
        None, help=f"comma-separated subset of {','.join(config.STRATEGIES)}"
    ),
    objective: config.Objective = typer.Option(config.OBJECTIVE, help="metric Optuna maximises (CV mean)"),
    threshold: config.ThresholdRule = typer.Option(
        config.THRESHOLD, help="how the decision threshold is chosen: best F1, or most profit"
    ),
    offer_cost: float = typer.Option(config.OFFER_COST, help="cost of one offer (profit threshold, report)"),
    upgrade_value: float = typer.Option(config.UPGRADE_VALUE, help="value of one upgrade reached"),
    jobs: int = typer.Option(config.JOBS, help="parallel fits"),
    report: bool = typer.Option(True, help="write report.html at the end"),
    force: bool = typer.Option(False, help="replace an existing --out folder"),
    dask: str | None = typer.Option(
        None, help="run the fits on a Dask cluster: a scheduler address, or 'local'"
    ),
    events: Path | None = typer.Option(
        None,
        help="forecast from a folder of dated event tables instead of one table "
        "(e.g. ../shared/data/365_events)",
    ),
    mapping: Path | None = typer.Option(
        None, help="TOML mapping of the event tables [default: the 365 layout]"
    ),
    horizon: int = typer.Option(
        config.HORIZON, help="with --events: days after the cutoff an upgrade counts"
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
    from . import api
    from .training.protocol import TrainConfig

    cfg = TrainConfig(
        data=data,
        target=target,
        out=out,
        budget=budget,
        seed=seed,
        id_column=id,
        positive=positive,
        numeric=_split(numeric),
        categorical=_split(categorical),
        exclude=_split(exclude),
        test_size=test_size,
        group_duplicates=group_duplicates,
        group_column=group,
        families=_split(families) or list(config.FAMILIES),
        strategies=_split(strategies) or list(config.STRATEGIES),
        objective=objective,
        threshold=threshold,
        offer_cost=offer_cost,
        upgrade_value=upgrade_value,
        jobs=jobs,
        report=report,
        force=force,
        dask=dask,
        events=events,
        mapping=mapping,
        horizon=horizon,
        time_limit=time_limit,
        sign_key=sign_key,
    )
    if tracking_uri and not mlflow:
        raise InputError("--tracking-uri is for --mlflow; add --mlflow")
    api.train(cfg, console=console, mlflow=mlflow, tracking_uri=tracking_uri)


# --- report command (insights and report modules) ---
@app.command("report", epilog=EXAMPLES["report"])
def report_cmd(run_dir: Path = typer.Argument(..., help="a run folder written by 'train'")) -> None:
    """Rebuild RUN_DIR/report.html from a saved run (a table run reloads the data file named in run.json)."""
    from . import api

    api.report(run_dir, console)


# --- scoring, serving and drift commands (scoring, serving and drift modules) ---


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
    from .files import check_outputs
    from .forecast.export import write_features

    check_outputs({"--out": out}, {"--events": events, "--mapping": mapping})
    path = write_features(events or config.default_events_path(), out, as_of, mapping, force)
    say(console, f"features written to {path}")


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
        None, help="score every user still free on --as-of from a folder of dated event tables"
    ),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="with --events: the scoring day YYYY-MM-DD [default: the day after the last event]",
    ),
    mapping: Path | None = typer.Option(None, help="with --events: TOML mapping [default: the 365 layout]"),
    verify_key: Path | None = VERIFY_KEY,
) -> None:
    """Score users into a ranked target list: row, id, probability, decision, rank (and reasons).

    With --events: every user still free on --as-of, from the events dated before it (user_id, tenure)."""
    from .files import check_outputs
    from .scoring.batch import BatchResult, default_rejects_path, score_file
    from .scoring.cluster import score_dataset
    from .scoring.scorer import Scorer

    if (data is None) == (events is None):
        raise InputError("give either DATA (a table of users) or --events DIR (dated event tables), not both")
    if events is not None and (dask or id):
        raise InputError("--events scores on this machine with user_id as the id; drop --dask and --id")
    config.check_number("--max-reject-share", max_reject_share, 0, 1)
    config.check_number("--top", top, 1)
    config.check_number("--budget", budget, 0)
    config.check_number("--offer-cost", offer_cost, 0, above=True)
    if dask and explain:
        raise InputError("--explain is not available with --dask; score without it")
    if dask and rejects:
        raise InputError("--rejects: with --dask the rejects are written to OUT/rejects/")
    check_outputs(
        {"--out": out, "--rejects": rejects or (None if dask else default_rejects_path(out))},
        {"MODEL": model, "DATA": data, "--events": events, "--mapping": mapping, "--verify-key": verify_key},
    )
    scorer = None if dask else Scorer.load(model, verify_key=verify_key)
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn() if dask else DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not progress,
        transient=True,
    )
    with bar:
        task = bar.add_task("scoring partitions" if dask else "scoring", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result: BatchResult
        if events is not None and scorer is not None:
            from .forecast.score import score_events  # DuckDB is loaded for event tables only

            result, day = score_events(
                scorer,
                events,
                out,
                as_of=as_of,
                mapping=mapping,
                rejects=rejects,
                top=top,
                budget=budget,
                offer_cost=offer_cost,
                explain=explain,
                progress=advance,
            )
            say(console, f"users free on {day} scored from the events dated before it")
        elif scorer is None:
            assert data is not None
            result = score_dataset(
                model,
                data,
                out,
                dask,
                top=top,
                budget=budget,
                offer_cost=offer_cost,
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
                top=top,
                budget=budget,
                offer_cost=offer_cost,
                explain=explain,
                id_column=id,
                progress=advance,
            )
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
    if result.reject_share > max_reject_share:
        fail(
            f"{result.reject_share:.2%} of rows were rejected, over --max-reject-share "
            f"{max_reject_share:.2%}; see {result.rejects}",
            code=1,
        )


@app.command(epilog=EXAMPLES["serve"])
def serve(
    model: Path = typer.Argument(..., help="model bundle (model.zip from a training run)"),
    host: str = typer.Option(config.SERVE_HOST, help="interface to listen on"),
    port: int = typer.Option(config.SERVE_PORT, help="port"),
    max_body_bytes: int = typer.Option(config.SERVE_MAX_BODY_BYTES, help="larger request bodies get 413"),
    workers: int = typer.Option(config.SERVE_WORKERS, help="worker processes (each loads the model)"),
    threads: int | None = typer.Option(
        None, help="scoring threads per process [default: the cores shared among the workers, at least 2]"
    ),
    queue_size: int = typer.Option(
        config.SERVE_QUEUE_SIZE, help="requests per process waiting or in work; more get 503 + Retry-After"
    ),
    verify_key: Path | None = VERIFY_KEY,
) -> None:
    """Serve the model over HTTP: POST /predict, GET /health, GET /model, docs at /docs."""
    config.check_number("--workers", workers, 1, 64)
    config.check_number("--port", port, 1, 65535)
    config.check_number("--max-body-bytes", max_body_bytes, 1)
    config.check_number("--threads", threads, 1, 256)
    config.check_number("--queue-size", queue_size, 1, 1_000_000)
    from .scoring.scorer import Scorer
    from .serving import serve as run_server

    scorer = Scorer.load(model, verify_key=verify_key)
    say(console, f"serving {model} on http://{host}:{port} (docs at /docs)")
    run_server(
        scorer,
        host=host,
        port=port,
        max_body_bytes=max_body_bytes,
        workers=workers,
        model_path=str(model),
        threads=threads,
        queue_size=queue_size,
        verify_key=verify_key,
    )


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
        None, help="check the users still free on --as-of, from a folder of dated event tables"
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="with --events: the day YYYY-MM-DD [default: the day after the last event]"
    ),
    mapping: Path | None = typer.Option(None, help="with --events: TOML mapping [default: the 365 layout]"),
    verify_key: Path | None = VERIFY_KEY,
) -> None:
    """Compare new data with the training reference; exit 1 when a threshold is crossed."""
    from .drift import check_file
    from .files import check_outputs, write_json_atomic
    from .forecast.score import today_features
    from .scoring.scorer import Scorer

    if (data is None) == (events is None):
        raise InputError("give either DATA (a table of users) or --events DIR (dated event tables), not both")
    config.check_number("--psi-alert", psi_alert, 0, above=True)
    config.check_number("--new-category-share", new_category_share, 0, 1, above=True)
    config.check_number("--range-share", range_share, 0, 1, above=True)
    if events is not None:
        out = out or Path("drift.json")
    else:
        assert data is not None  # checked above: DATA or --events
        out = out or Path(data.rstrip("/")).with_name("drift.json")
    check_outputs(
        {"--out": out},
        {"MODEL": model, "DATA": data, "--events": events, "--mapping": mapping, "--verify-key": verify_key},
    )
    scorer = Scorer.load(model, verify_key=verify_key)
    thresholds = {
        "psi_alert": psi_alert,
        "new_category_share": new_category_share,
        "range_share": range_share,
    }
    if events is not None:
        with today_features(scorer, events, as_of, mapping) as (path, day):
            report = check_file(scorer, path, id_column="user_id", **thresholds)
        data = f"{events} (users free on {day})"
    else:
        assert data is not None  # checked above: DATA or --events
        report = check_file(scorer, data, id_column=id, **thresholds)
    write_json_atomic(out, report)
    table = Table(title=plain(f"drift of {data} vs. training ({report['rows']:,} valid rows)"))
    for col in ("feature", "PSI", "level", "new codes", "out of range"):
        table.add_column(col, justify="left" if col in ("feature", "level") else "right")
    for f in report["features"]:
        table.add_row(
            plain(f["feature"]),
            f"{f['psi']:.3f}",
            f["level"],
            f"{f.get('new_category_share', 0):.2%}" if f["kind"] == "categorical" else "",
            f"{f.get('out_of_range_share', 0):.2%}" if f["kind"] == "numeric" else "",
        )
    table.add_row("(score)", f"{report['score']['psi']:.3f}", report["score"]["level"], "", "")
    Console().print(table)  # the table on stdout; messages on stderr
    if report["rows_rejected"]:
        say(console, f"{report['rows_rejected']:,} rows failed validation and were left out")
    if report["duplicate_ids"]:
        n = report["duplicate_ids"]
        rows = f"{n:,} rows repeat" if n != 1 else "1 row repeats"
        warn(console, f"{rows} an earlier row's {report['id_column']}")
    say(console, f"report written to {out}")
    if report["drifted"]:
        for a in report["alerts"]:
            warn(console, f"drift: {a}")
        raise typer.Exit(1)


def main() -> None:
    from .process import run

    sys.exit(run(app, console))


if __name__ == "__main__":
    main()
