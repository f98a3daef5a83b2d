"""The plots of the events report: survival curves, the backtest per origin, the weekly snapshot
counts and the profit curve, each as a data URI; gains and lift use the table report's plot."""

from __future__ import annotations

from typing import Any, cast

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import PercentFormatter

from .. import targeting
from ..forecast.runs import ForecastRun
from .forecast_insights import AGGREGATED, PAIRED_BAR, segment_label
from .plots import GREY, NEG, POS, embed

KM_DAYS = 60
_COLORS = {
    "model": POS,
    "tenure only": NEG,
    "recency only": "#7570b3",
    AGGREGATED: GREY,
    "base rate": "black",
}


def style(name: str) -> dict[str, Any]:
    """The model drawn bold and solid, each baseline thin and dashed in its own colour."""
    main = name == "model"
    return {
        "color": _COLORS.get(name, GREY),
        "lw": 2 if main else 1.1,
        "ls": "-" if main else "--",
        "label": name,
    }


def plot_survival(survival: dict[str, Any]) -> str:
    """Upgraded share by day since registration: overall with its band, one panel per segment column."""
    curves = survival["curves"]
    overall, groups = curves[0], cast(dict[str, list[dict[str, Any]]], {})
    for c in curves[1:]:
        groups.setdefault(c["label"].split("=", 1)[0], []).append(c)
    panels = list(groups.items()) or [("all users", [])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.6), squeeze=False, sharey=True)
    for ax, (column, cs) in zip(axes.flat, panels):
        keep = np.asarray(overall["days"]) <= KM_DAYS
        days = np.asarray(overall["days"])[keep]
        low, high = np.asarray(overall["low"])[keep], np.asarray(overall["high"])[keep]
        ax.fill_between(days, low, high, color=GREY, alpha=0.25, step="post", lw=0)
        share = np.asarray(overall["upgraded_share"])[keep]
        ax.step(
            days,
            share,
            where="post",
            color="black",
            lw=1.6,
            label=f"all users (n={overall['n']:,}), 95% band",
        )
        for i, c in enumerate(cs):
            k = np.asarray(c["days"]) <= KM_DAYS
            label = f"{c['label'].split('=', 1)[-1]} (n={c['n']:,})"
            color = plt.get_cmap("Dark2")(i % 8)
            ax.step(np.asarray(c["days"])[k], np.asarray(c["upgraded_share"])[k], where="post", lw=1, color=color,
                    label=label)  # fmt: skip
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set(xlabel="days since registration", title=f"by {segment_label(column)}", xlim=(0, KM_DAYS))
        ax.legend(frameon=False, fontsize=7)
    axes.flat[0].set_ylabel("upgraded (Kaplan-Meier)")
    return embed(fig)


def plot_backtest(backtest: pd.DataFrame) -> str:
    """Test PR AUC of the model and each baseline at every origin."""
    t = backtest[backtest["band"] == "all"]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for name, g in t.groupby("model", sort=False):
        ax.plot(g["test_start"], g["pr_auc"], marker="o", **style(str(name)))
    ax.set(xlabel="test period starting", ylabel="PR AUC (test)", title="Backtest: PR AUC per origin")
    ax.set_ylim(0, None)
    ax.legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    return embed(fig)


def plot_snapshots(forecasts: pd.DataFrame) -> str:
    """Forecast count with its interval against the actual count on each weekly snapshot date."""
    models = [m for m in ("model", AGGREGATED) if m in set(forecasts["model"])]
    fig, axes = plt.subplots(len(models), 1, figsize=(8, 2.6 * len(models)), squeeze=False, sharex=True)
    for ax, name in zip(axes.flat, models):
        g = forecasts[forecasts["model"] == name].sort_values("date")
        x = pd.to_datetime(g["date"])
        for _, o in g.groupby("origin"):  # one band per origin: the periods are not contiguous
            xo = pd.to_datetime(o["date"])
            ax.fill_between(xo, o["low"], o["high"], color=_COLORS[name], alpha=0.2, lw=0)
        ax.plot(
            x, g["expected"], marker="o", ms=3, color=_COLORS[name], label=f"{name}: expected, 95% interval"
        )
        ax.plot(x, g["actual"], "s", ms=4, color="black", label="actual")
        ax.set(ylabel="upgrades within horizon", ylim=(0, None))
        ax.legend(frameon=False, fontsize=7)
    axes.flat[-1].set_xlabel("snapshot date (all users free that day)")
    fig.autofmt_xdate()
    return embed(fig)


def plot_profit(preds: pd.DataFrame, run: ForecastRun) -> str:
    """Profit per 1,000 rows of offering to the top share, at the run's economics; the policy marked."""
    cost, value = float(run.info.offer_cost), float(run.info.upgrade_value)
    y, scale = preds["y"].to_numpy(), 1000.0 / max(len(preds), 1)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    best = 0.0
    for name, col in (("model", "p"), (PAIRED_BAR, PAIRED_BAR)):
        if col not in preds:
            continue
        c = targeting.profit_curve(y, preds[col].to_numpy(), cost, value)
        best = max(best, float(c["profit"].max()) * scale)
        keep = np.unique(np.linspace(0, len(c) - 1, min(len(c), 600)).round().astype(int))
        ax.plot(c["share_offered"].iloc[keep], c["profit"].iloc[keep] * scale, **style(name))
    pol = run.metrics.policy
    # The curve falls far below zero once offers go to everyone; the range that matters is near the top.
    top = max(best, pol.test["profit"]["high"] if pol.pays else 0.0)
    ax.set_ylim(*((-1.5 * top, 1.5 * top) if top > 0 else (-2 * value, 0.5 * value)))
    if pol.pays:
        r = pol.test["profit"]
        ax.errorbar(
            pol.test["share_offered"]["value"],
            r["value"],
            yerr=[[r["value"] - r["low"]], [r["high"] - r["value"]]],
            fmt="o",
            color="black",
            capsize=3,
            label=f"policy: score >= {pol.threshold:.3f}",
        )
    ax.axhline(0, color=GREY, lw=0.8)
    ax.set_xscale("symlog", linthresh=0.01)  # the cut-offs that pay offer to a few percent of rows
    ax.set(
        xlabel="share of test rows offered, best scores first (log scale above 1%)",
        ylabel="profit per 1,000 rows",
        title=f"Profit at offer cost {cost:g}, upgrade value {value:g}",
    )
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.legend(frameon=False, fontsize=7)
    return embed(fig)
