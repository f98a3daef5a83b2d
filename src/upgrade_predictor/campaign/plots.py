"""The campaign pages' plots, drawn with the run report's helpers: each a data URI (SVG, fixed ids), so a
page needs no other file and no network."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..reporting.plots import GREY, NEG, POS, embed, plt
from .assign import OFFER
from .records import Interval, ListReadout, Plan, Readout


def _intervals(ax: Any, rows: Sequence[tuple[str, Interval]], color: str = POS, scale: float = 1.0) -> None:
    """Horizontal 95% intervals, one row each, the first on top."""
    y = np.arange(len(rows))[::-1]
    for yi, (_, i) in zip(y, rows):
        ax.errorbar(
            i.value * scale,
            yi,
            xerr=[[(i.value - i.low) * scale], [(i.high - i.value) * scale]],
            fmt="o",
            color=color,
            ecolor=GREY,
            capsize=3,
        )
    ax.set_yticks(y, [name for name, _ in rows])
    ax.axvline(0, color="black", lw=0.8, ls=":")
    ax.set_ylim(-0.7, len(rows) - 0.3)


def band_effects(r: Readout, break_even: float | None) -> str | None:
    """The effect in each band (offer rate - holdout rate, percentage points) with its 95% interval."""
    rows = [(f"band {b.band}", b.difference) for b in r.bands if b.difference is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(rows) + 1.3))
    _intervals(ax, [(n, i) for n, i in rows if i is not None], scale=100)
    if break_even is not None and math.isfinite(break_even):
        ax.axvline(break_even * 100, color=NEG, lw=1, ls="--", label=f"break-even {break_even * 100:.2f}pp")
        ax.legend(frameon=False, fontsize=7, loc="lower right")
    ax.set(
        xlabel="offer rate - holdout rate (percentage points), 95% interval",
        title="Effect per score band (band 1: highest forecast)",
    )
    return embed(fig)


def overall_effect(r: Readout, break_even: float | None) -> str:
    rows = [
        ("difference", r.effect.difference),
        ("regression-adjusted", r.effect.adjusted),
    ]
    fig, ax = plt.subplots(figsize=(6.4, 2.2))
    _intervals(ax, rows, scale=100)
    if break_even is not None and math.isfinite(break_even):
        ax.axvline(break_even * 100, color=NEG, lw=1, ls="--", label=f"break-even {break_even * 100:.2f}pp")
        ax.legend(frameon=False, fontsize=7, loc="lower right")
    ax.set(xlabel="effect on the upgrade rate (percentage points), 95% interval", title="Overall effect")
    return embed(fig)


def profit(r: Readout) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 1.7))
    _intervals(ax, [("incremental profit", r.profit.incremental)], color=NEG)
    ax.set(xlabel=f"profit over the {r.offer.users:,} offered users, 95% interval", title="Profit")
    return embed(fig)


def plan_bands(plan: Plan, table: pd.DataFrame) -> str:
    """Mean forecast per band in each arm: a fair draw puts the two bars of a band level."""
    offer = table["arm"].to_numpy() == OFFER
    means = table.assign(offer=offer).groupby(["band", "offer"])["probability"].mean().unstack()
    x = means.index.to_numpy()
    fig, ax = plt.subplots(figsize=(6.4, 3))
    for shift, col, color, name in ((-0.2, True, POS, "offer"), (0.2, False, GREY, "holdout")):
        if col in means.columns:
            ax.bar(x + shift, means[col].to_numpy() * 100, width=0.38, color=color, label=name)
    ax.set_xticks(x, [f"band {b}" for b in x])
    ax.set(ylabel="mean forecast probability (%)", title=f"Forecast per band and arm ({plan.horizon} days)")
    ax.legend(frameon=False, fontsize=7)
    return embed(fig)


def list_bands(r: ListReadout) -> tuple[str, str]:
    """Expected against actual upgrades per band, and the realized lift against the forecast's."""
    x = np.array([b.band for b in r.bands])
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    ax.bar(x - 0.2, [b.expected_upgrades for b in r.bands], width=0.38, color=GREY, label="expected")
    ax.bar(x + 0.2, [b.actual_upgrades for b in r.bands], width=0.38, color=POS, label="actual")
    ax.set_xticks(x, [f"band {b}" for b in x])
    ax.set(ylabel="upgrades", title=f"Upgrades within {r.horizon} days per band")
    ax.legend(frameon=False, fontsize=7)
    counts = embed(fig)
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    ax.plot(x, [b.expected_lift for b in r.bands], marker="o", color=GREY, ls="--", label="forecast")
    ax.plot(x, [b.lift for b in r.bands], marker="o", color=POS, label="realized")
    ax.axhline(1, color="black", lw=0.8, ls=":")
    ax.set_xticks(x, [f"band {b}" for b in x])
    ax.set(ylabel="lift over the whole list", title="Lift per band (band 1: best ranked)")
    ax.legend(frameon=False, fontsize=7)
    return counts, embed(fig)
