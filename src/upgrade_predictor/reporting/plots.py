"""The report's plots, each returned as a data URI so the HTML file needs nothing else."""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .campaign import Targeting  # noqa: E402
from .comparison import ChosenSection, Curves  # noqa: E402
from .partial_dependence import PdpCurve  # noqa: E402
from .segments import Segments  # noqa: E402
from .shap_values import ShapSummary  # noqa: E402

POS, NEG, GREY = "#d95f02", "#1b9e77", "#7f7f7f"
plt.rcParams.update(
    {
        "figure.dpi": 100,
        "savefig.bbox": "tight",
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "svg.fonttype": "none",
        "svg.hashsalt": "upgrade-predictor",
    }
)  # fixed ids: the same run gives the same file


def embed(fig, fmt: str = "svg") -> str:
    """A figure as a data URI: SVG for line and bar charts, PNG for dense scatter plots."""
    buf = io.BytesIO()
    fig.savefig(
        buf, format=fmt, dpi=110 if fmt == "png" else None, metadata={"Date": None} if fmt == "svg" else None
    )
    plt.close(fig)
    mime = "image/svg+xml" if fmt == "svg" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode()}"


def _heavy(values: np.ndarray) -> bool:
    v = values[np.isfinite(values)]
    p99 = np.quantile(v, 0.99) if len(v) else 0
    return (
        v.min() >= 0
        and v.max() > 10 * max(p99, 1e-9)
        or (v.min() >= 0 and v.max() > 50 * max(np.median(v), 1))
    )


# ------------------------------------------------------------------ plots


def plot_distributions(X: pd.DataFrame, y: np.ndarray, columns: list[str]) -> str:
    n = len(columns)
    cols = 3
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(9.5, 2.6 * rows), squeeze=False)
    for ax, c in zip(axes.flat, columns):
        v = X[c].to_numpy(dtype=float)
        keep = np.isfinite(v)
        title = c
        zeros = {k: float(np.mean(v[keep & (y == k)] == 0)) for k in (0, 1)}
        if min(zeros.values()) > 0.5:  # mostly zero: the zero share says more than a spike at 0
            keep &= v != 0
            title += f"\n(non-zero only; zero: {zeros[0]:.0%} no upgrade, {zeros[1]:.0%} upgrade)"
        heavy = _heavy(v[keep])
        data = np.log10(1 + v) if heavy else v
        if heavy:
            title = title.replace(c, c + ", log10(1 + x)", 1)
        bins = np.histogram_bin_edges(data[keep], bins=30)
        for label, color, name in ((0, NEG, "no upgrade"), (1, POS, "upgrade")):
            ax.hist(data[keep & (y == label)], bins=bins, density=True, alpha=0.55, color=color, label=name)
        ax.set_title(title, fontsize=8.5)
        ax.set_yticks([])
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(frameon=False)
    fig.suptitle("Distribution by class (each class scaled to the same area)", y=1.0)
    fig.tight_layout()
    return embed(fig)


def plot_corr(corr: pd.DataFrame) -> str:
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    values = corr.to_numpy(dtype=float)
    im = ax.imshow(values, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(corr)), corr.columns, rotation=40, ha="right")
    ax.set_yticks(range(len(corr)), corr.columns)
    for i in range(len(corr)):
        for j in range(len(corr)):
            r = float(values[i, j])
            ax.text(
                j,
                i,
                f"{r:.2f}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if abs(r) > 0.6 else "black",
            )
    fig.colorbar(im, ax=ax, shrink=0.8, label="Spearman correlation")
    return embed(fig)


def _thin(x: np.ndarray, y: np.ndarray, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    idx = np.unique(np.linspace(0, len(x) - 1, min(n, len(x))).round().astype(int))
    return x[idx], y[idx]


def plot_roc_pr(curves: dict[str, Curves], base_rate: float) -> tuple[str, str]:
    figs = []
    for kind in ("roc", "pr"):
        fig, ax = plt.subplots(figsize=(4.6, 4))
        for key, c in curves.items():
            color, ls = ("black", "--") if key == "reference" else (None, "-")
            if kind == "roc":
                x, yv = _thin(c.fpr, c.tpr)
                ax.plot(x, yv, label=f"{key} (CV AUC {c.roc_auc:.3f})", color=color, ls=ls)
            else:
                x, yv = _thin(c.recall, c.precision)
                ax.plot(x, yv, label=f"{key} (CV AP {c.pr_auc:.3f})", color=color, ls=ls)
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color=GREY, lw=0.8, ls=":")
            ax.set(
                xlabel="false positive rate", ylabel="true positive rate (recall)", title="ROC, out-of-fold"
            )
        else:
            ax.axhline(base_rate, color=GREY, lw=0.8, ls=":", label=f"no skill ({base_rate:.3f})")
            ax.set(xlabel="recall", ylabel="precision", title="Precision-recall, out-of-fold", ylim=(0, 1.02))
        ax.legend(fontsize=7, frameon=False, loc="lower right" if kind == "roc" else "upper right")
        figs.append(embed(fig))
    return figs[0], figs[1]


def plot_leaderboard(board: pd.DataFrame, objective: str) -> str:
    b = board.sort_values(f"{objective}_mean")
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(b) + 1))
    colors = ["black" if r else POS for r in b["is_reference"].astype(bool)]
    ax.errorbar(b[f"{objective}_mean"], range(len(b)), xerr=b[f"{objective}_sd"], fmt="none", ecolor=GREY)
    ax.scatter(b[f"{objective}_mean"], range(len(b)), c=colors, s=14, zorder=3)
    ax.set_yticks(range(len(b)), b["key"], fontsize=7)
    ax.set_xlabel(f"CV {objective} (mean ± sd across folds)")
    return embed(fig)


def plot_calibration(chosen: ChosenSection, brier: float) -> str:
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], color=GREY, ls=":", lw=0.8, label="perfect calibration")
    ax.plot(
        chosen.predicted, chosen.observed, marker="o", color=POS, label=f"chosen model (Brier {brier:.4f})"
    )
    ax.set(
        xlabel="mean predicted probability (test, 10 equal-size bins)",
        ylabel="observed upgrade rate",
        title="Reliability on the test set",
    )
    ax.legend(frameon=False, fontsize=7)
    return embed(fig)


def plot_importance(tables: dict[str, pd.DataFrame]) -> str:
    fig, axes = plt.subplots(1, len(tables), figsize=(4.5 * len(tables), 3), squeeze=False)
    for ax, (title, t) in zip(axes.flat, tables.items()):
        t = t.iloc[::-1]
        ax.barh(t["name"], t["importance"], xerr=t["sd"], color=POS, ecolor=GREY)
        ax.set(title=title, xlabel="drop in test PR AUC when shuffled")
    fig.tight_layout()
    return embed(fig)


def plot_shap(summary: ShapSummary) -> str:
    import shap  # here, not at the top: it adds about 0.4 s to every command of the CLI

    Xs = summary.X
    # Colour by feature value; a category column has no order, so it is drawn grey (NaN).
    feats = np.column_stack(
        [
            Xs[c].to_numpy(dtype=float) if Xs[c].dtype.kind in "fiu" else np.full(len(Xs), np.nan)
            for c in summary.columns
        ]
    )
    with warnings.catch_warnings():  # the all-NaN (category) colour column makes shap warn; grey is intended
        warnings.simplefilter("ignore", RuntimeWarning)
        shap.summary_plot(
            summary.values,
            feats,
            feature_names=summary.columns,
            show=False,
            plot_size=(7, 3.6),
            color_bar_label="feature value (grey: category)",
        )
    fig = plt.gcf()
    fig.axes[0].set_xlabel(f"SHAP value ({summary.units}), per original column")
    return embed(fig, "png")


def plot_odds(tables: dict[str, pd.DataFrame]) -> str:
    tables = {k: t[t["name"] != "const"] for k, t in tables.items() if len(t)}
    names = list(dict.fromkeys(n for t in tables.values() for n in t["name"]))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1))
    for i, (label, t) in enumerate(tables.items()):
        pos = np.array([names.index(n) for n in t["name"]]) + (i - (len(tables) - 1) / 2) * 0.25
        ax.errorbar(
            t["odds_ratio"],
            pos,
            xerr=[t["odds_ratio"] - t["low"], t["high"] - t["odds_ratio"]],
            fmt="o",
            ms=4,
            capsize=2,
            label=label,
            color=[POS, NEG][i % 2],
        )
    ax.axvline(1, color=GREY, lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("odds ratio per doubling of (1 + value), 95% CI (log scale)")
    ax.legend(frameon=False, fontsize=7)
    return embed(fig)


def plot_pdp(pdp: list[PdpCurve]) -> str:
    fig, axes = plt.subplots(1, len(pdp), figsize=(3.1 * len(pdp), 2.6), squeeze=False)
    for ax, d in zip(axes.flat, pdp):
        ax.plot(d.grid, d.average, color=POS)
        ax.set(xlabel=d.feature, ylabel="average P(upgrade)")
    fig.tight_layout()
    return embed(fig)


def plot_segments(seg: Segments) -> str:
    t = seg.table.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(t) + 1))
    ax.errorbar(
        t["rate"],
        range(len(t)),
        xerr=[t["rate"] - t["low"], t["high"] - t["rate"]],
        fmt="o",
        color=POS,
        ecolor=GREY,
        capsize=2,
    )
    ax.axvline(seg.overall, color="black", lw=0.8, ls=":", label=f"overall {seg.overall:.1%}")
    ax.set_yticks(range(len(t)), [f"{s} (n={n:,})" for s, n in zip(t["segment"], t["rows"])])
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel("upgrade rate, Wilson 95% interval")
    ax.legend(frameon=False, fontsize=7)
    return embed(fig)


@dataclass(frozen=True)
class GainsText:
    """How a gains plot names what it ranks: a table run's test users, an events run's (user, day) rows."""

    reached: str  # the gains panel's y label
    period: str  # the held-out part the curves are drawn on, in both titles
    rows: str  # what is targeted, on the x axis
    log_lift: bool = False  # the lift over a log axis of the share targeted


def cycle_style(i: int, label: str) -> dict[str, Any]:
    """The first curve bold and coloured, the next ones grey dashed and black dotted."""
    return {"label": label, "color": [POS, GREY, "black"][i % 3], "ls": ["-", "--", ":"][i % 3]}


def plot_gains(
    curves: dict[str, pd.DataFrame], style: Callable[[int, str], dict[str, Any]], text: GainsText
) -> tuple[str, str]:
    """Cumulative gains and lift of each curve (targeting.gains_curve), best scores first."""
    out = []
    for kind in ("gain", "lift"):
        fig, ax = plt.subplots(figsize=(4.6, 3.6))
        for i, (label, g) in enumerate(curves.items()):
            if kind == "lift":  # the first few rows make the lift swing wildly
                g = g[g["share_targeted"] >= 0.01]
            ax.plot(g["share_targeted"], g[kind], **style(i, label))
        if kind == "gain":
            ax.plot([0, 1], [0, 1], color=GREY, lw=0.8, ls=":", label="random")
            ax.set(ylabel=text.reached, title=f"Cumulative gains ({text.period})")
        else:
            ax.axhline(1, color=GREY, lw=0.8, ls=":")
            log = {"xscale": "log"} if text.log_lift else {}
            ax.set(ylabel="lift over random", title=f"Lift ({text.period})", **log)
        ax.set_xlabel(f"share of {text.rows} targeted, best scores first")
        ax.legend(frameon=False, fontsize=7)
        out.append(embed(fig))
    return out[0], out[1]


def plot_profit(tgt: Targeting) -> str:
    """Expected incremental profit on the test users of the policy's audience against the offer's lift:
    the break-even lift where it crosses zero, and the stated lift (if any) with the profit's interval."""
    c, rel = tgt.lift_curve, tgt.relative
    fig, ax = plt.subplots(figsize=(7, 3.2))
    who = f"policy: {tgt.first['policy']}" if tgt.sends_offers else "offer to the top 10% of test users"
    ax.plot(c["lift"] * 100, c["profit"], color=POS, label=who)
    be = tgt.break_even_lift
    if np.isfinite(be):
        ax.axvline(be * 100, color=GREY, ls="--", lw=0.8)
        ax.annotate("break-even", (be * 100, 0), fontsize=7, xytext=(4, 4), textcoords="offset points")
    if tgt.lift is not None and tgt.sends_offers:
        r = tgt.first
        ax.errorbar(
            tgt.lift.value * 100,
            r["profit"],
            yerr=[[r["profit"] - r["profit_low"]], [r["profit_high"] - r["profit"]]],
            fmt="o",
            color="black",
            capsize=3,
            label="stated lift: expected profit, bootstrap 95%",
        )
    ax.axhline(0, color=GREY, lw=0.8)
    unit = "% of each user's upgrade probability" if rel else " percentage points"
    ax.set(
        xlabel=f"the offer's lift (+{unit})",
        ylabel=f"incremental profit on {tgt.n_test:,} test users",
        title=f"Profit against the lift: offer cost {tgt.offer_cost:g}, upgrade value {tgt.upgrade_value:g}, "
        f"discount {tgt.econ.discount:g}",
    )
    ax.legend(frameon=False, fontsize=7)
    return embed(fig)
