"""The command line: a thin layer over the stage modules. Input errors exit 2 with one message."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from . import config
from .errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Predict which free users will upgrade, and decide whom to target.")
console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _split(values: Optional[str]) -> list[str]:
    return [v.strip() for v in values.split(",") if v.strip()] if values else []


@app.callback()
def root() -> None:
    """Predict which free users will upgrade, and decide whom to target."""


@app.command()
def train(
    data: Optional[Path] = typer.Option(None, help="CSV or Parquet file [default: ../shared/data/ml_datasource.csv]"),
    target: str = typer.Option(config.TARGET, help="the binary label column"),
    out: Optional[Path] = typer.Option(None, help="run folder [default: runs/<timestamp>]; never overwritten"),
    budget: str = typer.Option("standard", help="quick | standard | thorough"),
    seed: int = typer.Option(config.SEED, help="seed of the split, folds, samplers and tuning"),
    id: Optional[str] = typer.Option(None, "--id", help="an id column: carried through, never a feature"),
    positive: Optional[str] = typer.Option(None, help="the target value that counts as positive"),
    numeric: Optional[str] = typer.Option(None, help="comma-separated columns to treat as numeric"),
    categorical: Optional[str] = typer.Option(None, help="comma-separated columns to treat as categorical"),
    exclude: Optional[str] = typer.Option(None, help="comma-separated columns to leave out"),
    test_size: float = typer.Option(config.TEST_SIZE, help="share of rows held out for the final test"),
    group_duplicates: bool = typer.Option(False, help="keep feature-identical rows on one side of every split"),
    families: Optional[str] = typer.Option(None, help=f"comma-separated subset of {','.join(config.FAMILIES)}"),
    strategies: Optional[str] = typer.Option(None, help=f"comma-separated subset of {','.join(config.STRATEGIES)}"),
    objective: str = typer.Option("pr_auc", help="metric Optuna maximises (CV mean): pr_auc, roc_auc, f1, ..."),
    threshold: str = typer.Option("f1", help="how the decision threshold is chosen: f1 | profit"),
    offer_cost: float = typer.Option(config.OFFER_COST, help="cost of one offer (profit threshold, report)"),
    upgrade_value: float = typer.Option(config.UPGRADE_VALUE, help="value of one upgrade reached"),
    jobs: int = typer.Option(2, help="parallel fits"),
    report: bool = typer.Option(True, help="write report.html at the end"),
    force: bool = typer.Option(False, help="replace an existing --out folder"),
    dask: Optional[str] = typer.Option(None, help="run the fits on a Dask cluster: a scheduler address, or 'local'"),
) -> None:
    """Audit the data, compare models and imbalance strategies, tune, and save a model bundle."""
    from .training import TrainConfig, run_training

    cfg = TrainConfig(
        data=data, target=target, out=out, budget=budget, seed=seed, id_column=id, positive=positive,
        numeric=_split(numeric), categorical=_split(categorical), exclude=_split(exclude),
        test_size=test_size, group_duplicates=group_duplicates,
        families=_split(families) or list(config.FAMILIES),
        strategies=_split(strategies) or list(config.STRATEGIES),
        objective=objective, threshold=threshold, offer_cost=offer_cost, upgrade_value=upgrade_value,
        jobs=jobs, report=report, force=force, dask=dask,
    )
    run_training(cfg, console)


# --- report command (insights and report modules) ---
@app.command("report")
def report_cmd(run_dir: Path = typer.Argument(..., help="a run folder written by 'train'")) -> None:
    """Rebuild RUN_DIR/report.html from a saved run (reloads the data file named in run.json)."""
    from .report import build_report

    build_report(run_dir, console)


# --- scoring, serving and drift commands (scoring, serving and drift modules) ---


def main() -> None:
    try:
        app()
    except InputError as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(InputError.exit_code)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; nothing half-written was left behind[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
