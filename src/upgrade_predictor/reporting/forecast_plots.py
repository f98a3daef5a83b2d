"""The plots of the events report: survival curves, the backtest per origin, the weekly snapshot
counts and the profit curve, each as a data URI; gains and lift use the table report's plot."""

from __future__ import annotations

from typing import Any, cast

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import PercentFormatter

from ..forecast.runs import ForecastRun
from .forecast_insights import AGGREGATED, segment_label
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
    """Incremental profit per test campaign of the policy's audience against the offer's lift: the
    break-even lift where it crosses zero, and the assumed lift (if any) with the profit's interval."""
    pol = run.metrics.policy
    relative = pol.lift is None or bool(pol.lift["relative"])
    marks = [
        x for x in (pol.break_even_lift, float(pol.lift["value"]) if pol.lift else None) if x is not None
    ]
    finite = [x for x in marks if np.isfinite(x)]
    top = 2.5 * max(finite) if finite else (1.0 if relative else 0.05)
    lift = np.linspace(0, top, 200)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    who = (
        "policy's audience"
        if not pol.break_even_share
        else f"top {pol.break_even_share:.0%} of each campaign"
    )
    ax.plot(lift * 100, pol.profit_at(lift, relative), **{**style("model"), "label": f"offer to the {who}"})
    if np.isfinite(pol.break_even_lift):
        ax.axvline(pol.break_even_lift * 100, color=GREY, ls="--", lw=0.8)
        ax.annotate(
            "break-even",
            (pol.break_even_lift * 100, 0),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    if pol.lift is not None and pol.pays:
        r, at = pol.per_campaign["profit"], float(pol.lift["value"]) * 100
        ax.errorbar(
            at,
            r["value"],
            yerr=[[r["value"] - r["low"]], [r["high"] - r["value"]]],
            fmt="o",
            color="black",
            capsize=3,
            label="assumed lift: the test campaigns' profit",
        )
    ax.axhline(0, color=GREY, lw=0.8)
    unit = "% of each user's upgrade probability" if relative else " percentage points"
    ax.set(
        xlabel=f"the offer's lift (+{unit})",
        ylabel="incremental profit per campaign",
        title=f"Profit against the lift: offer cost {pol.offer_cost:g}, upgrade value {pol.upgrade_value:g}, "
        f"discount {pol.discount:g}",
    )
    ax.legend(frameon=False, fontsize=7)
    return embed(fig)
