"""Terminal tables of a training run: the audit, the leaderboard and the chosen model."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..console import plain, say, warn
from ..data_audit import AuditReport
from ..economics import Economics, Lift
from .metrics import RunMetrics


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def show_audit(console: Console, report: AuditReport) -> None:
    t = Table(
        title=plain(
            f"data audit: {report.rows:,} rows, {report.columns} features, "
            f"{report.class_balance.positive_share:.1%} positive "
            f"({report.target} = {report.positive_label!r})"
        ),
        title_justify="left",
    )
    for col in ("feature", "kind", "missing", "univariate ROC AUC", "flags"):
        t.add_column(col, justify="right" if col in ("missing", "univariate ROC AUC") else "left")
    for c in report.feature_columns:
        flags = [
            f
            for f, on in (
                ("LEAKAGE?", c.leakage_flag),
                ("heavy tail", c.heavy_tail),
                (f"{c.rare_categories} rare codes", c.rare_categories > 0),
            )
            if on
        ]
        t.add_row(
            plain(c.name),
            c.kind,
            str(c.missing),
            f"{c.univariate_auc:.3f}",
            plain(", ".join(flags)),
        )
    console.print(t)
    for w in report.warnings:
        warn(console, w)


def show_results(console: Console, board: pd.DataFrame, metrics: RunMetrics) -> None:
    """The leaderboard, then the chosen model's scores beside the reference's and the leak-free model's."""
    show_leaderboard(console, board)
    if not metrics.limits.repeatable:
        warn(console, metrics.limits.time_limit_note(metrics.limits.time_limit or 0))
    show_chosen(console, metrics)


def show_leaderboard(console: Console, board: pd.DataFrame) -> None:
    t = Table(title="leaderboard (cross-validated on the training part; mean ± sd)", title_justify="left")
    rows = "fit_rows" in board.columns  # runs written before row caps have no such column
    for col in (
        "#",
        "model",
        "imbalance",
        "PR AUC",
        "ROC AUC",
        "F1@0.5",
        "recall@0.5",
        "precision@0.5",
        "s/fit",
        *(["rows/fit"] if rows else []),
    ):
        t.add_column(col, justify="left" if col in ("model", "imbalance") else "right")
    for _, r in board.iterrows():
        style = "dim" if r["is_reference"] else ("bold" if r["rank"] == 1 else None)
        t.add_row(
            str(r["rank"]),
            r["model"] + (" (tuned)" if r["tuned"] else ""),
            r["strategy_label"],
            *(
                f"{r[m + '_mean']:.3f} ± {r[m + '_sd']:.3f}"
                for m in ("pr_auc", "roc_auc", "f1", "recall", "precision")
            ),
            f"{r['fit_seconds']:.2f}",
            *(
                [f"{int(r['fit_rows']):,}" + ("*" if r["fit_rows"] < board["fit_rows"].max() else "")]
                if rows
                else []
            ),
            style=style,
        )
    console.print(t)
    if rows and (board["fit_rows"] < board["fit_rows"].max()).any():
        say(
            console,
            "* fitted on a stratified sample of each training fold (the budget's cap for that family)",
        )


def show_chosen(console: Console, metrics: RunMetrics) -> None:
    rule = "F1" if metrics.threshold.objective == "f1" else "expected incremental profit"
    sends = "" if metrics.threshold.value <= 1 else ": no cut-off pays, no offer is sent"
    t = Table(
        title=f"chosen model: {metrics.chosen.label}; threshold {metrics.threshold.value:.3f} "
        f"(best {rule} on out-of-fold predictions{sends})",
        title_justify="left",
    )
    blocks = [("train", metrics.train), ("test", metrics.test)]
    if metrics.reference is not None:
        blocks.append(("reference, test", metrics.reference.test))
    if metrics.no_leak is not None:
        blocks.append((f"without {', '.join(metrics.no_leak.excluded)}, test", metrics.no_leak.test))
    t.add_column("metric")
    for name, _ in blocks:
        t.add_column(plain(name), justify="right")
    for m in ("pr_auc", "roc_auc", "f1", "precision", "recall", "accuracy", "balanced_accuracy", "brier"):
        t.add_row(m, *(f"{b[m]:.4f}" for _, b in blocks))
    console.print(t)
    if metrics.no_leak is not None:
        warn(
            console,
            f"{', '.join(metrics.no_leak.excluded)} was flagged as a likely leak; the model without "
            "it (model_no_leak.zip) is the one to trust for today's free users.",
        )


def show_economics(console: Console, econ: Economics, lift: Lift | None) -> None:
    """What the run's offer decisions rest on: the stated lift, or that nothing is priced."""
    prices = (
        f"offer cost {econ.offer_cost:g}, upgrade value {econ.upgrade_value:g}, discount {econ.discount:g}"
    )
    if lift is None:
        say(
            console,
            f"offers unpriced ({prices}): what an offer causes is unknown; give --assumed-lift (e.g. 20% or "
            "1.5pp) to price them, or measure the lift with campaign plan and campaign readout",
        )
    else:
        say(console, f"offers priced by what they cause, under {lift.describe()} ({prices})")
