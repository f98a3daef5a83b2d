"""The HTML report: one self-contained file (plots embedded, no network) built from a saved run folder."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from threadpoolctl import threadpool_limits

from ..training.runs import Run, load_run
from ..training.summary import progress_bar
from . import insights
from .drivers import DRIVER_STEPS
from .page import PageBuild, Section, render_page
from .plots import (
    GainsText,
    cycle_style,
    plot_calibration,
    plot_corr,
    plot_distributions,
    plot_gains,
    plot_importance,
    plot_leaderboard,
    plot_odds,
    plot_pdp,
    plot_profit,
    plot_roc_pr,
    plot_segments,
    plot_shap,
)

# The report's sections in order: the contents and the heading numbers follow this list.
SECTIONS = [
    Section("data", "Data"),
    Section("comparison", "Model comparison"),
    Section("imbalance", "Imbalance strategies"),
    Section("chosen", "Chosen model"),
    Section("drivers", "What drives upgrades"),
    Section("segments", "Segments"),
    Section("targeting", "Targeting"),
    Section("caveats", "Caveats"),
    Section("recommendations", "Recommendations"),
]
GAINS = GainsText("share of upgraders reached", "test", "users")

# ------------------------------------------------------------------ assembling


def figures(run: Run, ins: insights.Insights) -> dict[str, str | None]:
    """Every plot of the report as a data URI (None where the run has nothing to draw)."""
    d, cmp_, drv, seg, tgt = ins.data, ins.comparison, ins.drivers, ins.segments, ins.targeting
    objective = run.metrics.objective if f"{run.metrics.objective}_mean" in cmp_.board else "pr_auc"
    figs: dict[str, str | None] = {
        "dist": plot_distributions(run.dataset.X, run.dataset.y, d.numeric) if d.numeric else None,
        "corr": plot_corr(d.corr) if len(d.corr) else None,
        "leaderboard": plot_leaderboard(cmp_.board, objective),
        "calibration": plot_calibration(ins.chosen, run.metrics.test.brier),
        "shap": plot_shap(drv.shap),
        "pdp": plot_pdp(drv.pdp) if drv.pdp else None,
        "segments": plot_segments(seg) if seg else None,
        "profit": plot_profit(tgt),
    }
    figs["roc"], figs["pr"] = plot_roc_pr(cmp_.curves, cmp_.base_rate)
    without = "without " + ", ".join(run.leaky)
    imp = {"chosen model": drv.permutation}
    if drv.permutation_no_leak is not None:
        imp[without] = drv.permutation_no_leak
    figs["importance"] = plot_importance(imp)
    odds = {"all numeric columns": drv.logit.table}
    if drv.logit_no_leak is not None:
        odds[without] = drv.logit_no_leak.table
    figs["odds"] = plot_odds(odds) if any(len(t) for t in odds.values()) else None
    figs["gains"], figs["lift"] = plot_gains(tgt.gains, cycle_style, GAINS)
    return figs


def render(run: Run, ins: insights.Insights, name: str | None = None) -> str:
    """The page, its build time left for write_report to stamp."""
    figs = figures(run, ins)
    return render_page(
        "report.html.j2", SECTIONS, run, name, aud=run.audit, ins=ins, figs=figs, leaky=run.leaky
    )


# Reading the run, the insights' steps, the drivers' own steps, then drawing and writing the page.
STEPS = 1 + len(insights.STEPS) + DRIVER_STEPS + 1


def build_report(run_dir: Path, console: Console | None = None, name: str | None = None) -> Path:
    """Compute the insights of a saved run and write run_dir/report.html atomically, with a progress
    bar of its steps and its own elapsed time at the end.

    `name` is the run's published name when the folder is still a temp folder about to be renamed."""
    build = PageBuild.start(run_dir, console, name)
    with progress_bar(build.console) as bar:
        task = bar.add_task("report: reading the run", total=STEPS)
        seen = 0

        def step(label: str) -> None:
            nonlocal seen
            seen += 1
            bar.update(task, completed=min(seen, STEPS), description=f"report: {label}")

        # One thread for BLAS and OpenMP: the report's calls are small, and on a busy machine a second
        # thread spins more than it helps (one call of the SVM on 150 rows: 70 ms with two threads,
        # 21 ms with one; k-nearest neighbours: 68 ms of CPU for one row, 10 ms with one thread).
        # The sample sizes are planned on single-thread costs.
        with threadpool_limits(1):
            run = load_run(build.run_dir)
            ins = insights.build_insights(run, step)
            step("plots and page")
            t0 = time.perf_counter()
            html = render(run, ins, name)
            run.timings["render"] = time.perf_counter() - t0
        bar.update(task, completed=STEPS, description="report: done")
    return build.write(html)
