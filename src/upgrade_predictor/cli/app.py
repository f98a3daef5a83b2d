"""The command line's application: the Typer app, the shared console, examples and options."""

from __future__ import annotations

import typer
from rich.console import Console

from ..console import error, say

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


def split_names(values: str | None) -> list[str]:
    return [v.strip() for v in values.split(",") if v.strip()] if values else []


def _version(value: bool) -> None:
    if value:
        from ..version import __version__

        say(Console(), f"upgrade-predictor {__version__}")  # stdout: scripts read it
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Predict which free users will upgrade, and decide whom to target."""
