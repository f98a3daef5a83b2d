"""The report of an events run: one self-contained HTML file (plots embedded, no network) built from the
run folder alone. Every number shown is read from the folder, or computed from its test predictions with
the same targeting functions the run uses."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .. import config, targeting
from ..forecast.runs import ForecastRun, load_forecast_run
from .forecast_insights import ForecastInsights, build_insights
from .forecast_plots import plot_backtest, plot_profit, plot_snapshots, plot_survival, style
from .page import PageBuild, Section, render_page
from .plots import GainsText, plot_gains

SECTIONS = [
    Section("summary", "Summary"),
    Section("data", "Data"),
    Section("design", "Design"),
    Section("survival", "Time to upgrade"),
    Section("comparison", "Model comparison"),
    Section("backtest", "Backtest"),
    Section("forecast", "Forecast check"),
    Section("targeting", "Targeting"),
    Section("caveats", "Caveats"),
    Section("recommendations", "Recommendations"),
]
GAINS = GainsText("share of upgrades reached", "test period", "rows", log_lift=True)


def figures(run: ForecastRun) -> dict[str, str]:
    """Every plot of the report as a data URI."""
    preds = run.test_predictions
    names = [n for n in run.metrics.baselines if n in preds and n != "base rate"]
    figs = {
        "survival": plot_survival(run.survival),
        "backtest": plot_backtest(run.backtest),
        "snapshots": plot_snapshots(run.forecasts),
        "profit": plot_profit(preds, run),
    }
    y = preds["y"].to_numpy()
    curves = {
        name: targeting.gains_curve(y, preds[col].to_numpy())
        for name, col in [("model", "p")] + [(n, n) for n in names]
    }
    figs["gains"], figs["lift"] = plot_gains(curves, lambda i, name: style(name), GAINS)
    return figs


def render(run: ForecastRun, ins: ForecastInsights, figs: dict[str, str], name: str | None = None) -> str:
    """The page, its build time left for write_report to stamp."""
    return render_page(
        "forecast.html.j2",
        SECTIONS,
        run,
        name,
        design=run.design,
        aud=run.events_audit,
        ins=ins,
        figs=figs,
        timings=dict(run.info.timings),
        calibration_days=config.CALIBRATION_DAYS,
        pol_assumption=run.metrics.policy.assumption(),
    )


def build_forecast_report(run_dir: Path, console: Console | None = None, name: str | None = None) -> Path:
    """Write run_dir/report.html for an events run folder, atomically.

    `name` is the run's published name when the folder is still a temp folder about to be renamed."""
    build = PageBuild.start(run_dir, console, name)
    with build.console.status("building the forecast report"):
        run = load_forecast_run(build.run_dir)
        html = render(run, build_insights(run), figures(run), name)
    return build.write(html)
