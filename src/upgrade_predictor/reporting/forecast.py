"""The report of an events run: one self-contained HTML file (plots embedded, no network) built from the
run folder alone. Every number shown is read from the folder, or computed from its test predictions with
the same targeting functions the run uses."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import PercentFormatter
from rich.console import Console

from .. import config, targeting
from ..forecast.backtest import TENURE_BANDS
from ..forecast.evaluate import Difference
from ..forecast.runs import ForecastRun, load_forecast_run
from .format import interval, num, signed
from .page import render_page, write_report
from .plots import GREY, NEG, POS, embed

PAIRED_BAR = "tenure only"  # the baseline the model has to beat
AGGREGATED = "aggregated-table model"
BOARD_ROWS = 12
KM_DAYS = 60
_BUILD = "\x00build-seconds\x00"  # replaced by the build time once the page is rendered
Records = list[dict[str, Any]]
_COLORS = {
    "model": POS,
    "tenure only": NEG,
    "recency only": "#7570b3",
    AGGREGATED: GREY,
    "base rate": "black",
}


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str


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


@dataclass(frozen=True)
class Lift:
    """The model against the tenure-only baseline on test PR AUC, as the report states it."""

    beats: bool
    text: str
    difference: Difference | None


@dataclass(frozen=True)
class CountError:
    """Summed weekly snapshot forecasts of one model against what happened (forecasts.csv)."""

    model: str
    dates: int
    expected: float
    actual: float
    ratio: float  # expected / actual: how many times the actual count was forecast
    coverage: float


@dataclass
class ForecastInsights:
    """What the template shows beyond the run folder's own tables; the prose around it is the template's."""

    lift: Lift
    errors: dict[str, CountError]
    snapshots: Records  # one row per (origin, date), the models side by side under "by"
    survival: Records
    board: Records
    backtest_all: Records
    backtest_bands: Records  # the test origin, bands in TENURE_BANDS order
    missed_bands: Records  # the model's bands of the test origin whose count fell outside its interval
    deciles: Records
    origin_labels: dict[int, str]
    undated: list[str]  # per-user tables left out for lack of a date
    dimensions: list[str]  # other files left out: descriptions of courses, exams, quizzes
    tuning: list[str]
    widening: float  # how many times wider than binomial the count intervals are: sqrt(overdispersion)


# ------------------------------------------------------------------ insights


def lift_over_tenure(diffs: list[Difference]) -> Lift:
    """The sentence on PR AUC lift over tenure alone; it claims a win only when the whole interval is > 0."""
    d = next((x for x in diffs if x.metric == "pr_auc" and x.baseline == PAIRED_BAR), None)
    if d is None:
        return Lift(False, "This run holds no paired comparison with the tenure-only baseline.", None)
    span = f"{signed(d.difference)} PR AUC {interval(d.low, d.high)}"
    vs = f"({num(d.model)} against {num(d.other)}; paired bootstrap over users, 95% interval)"
    if d.low > 0:
        return Lift(True, f"The model beats the tenure-only baseline by {span} {vs}.", d)
    why = "includes 0" if d.high >= 0 else "lies below 0"
    text = f"The model does not beat the tenure-only baseline: the difference is {span}, an interval that {why} {vs}."
    return Lift(False, text, d)


def count_errors(forecasts: pd.DataFrame) -> dict[str, CountError]:
    out = {}
    for model, g in forecasts.groupby("model", sort=False):
        expected, actual = float(g["expected"].sum()), float(g["actual"].sum())
        ratio = expected / actual if actual > 0 else math.nan
        out[str(model)] = CountError(str(model), len(g), expected, actual, ratio, float(g["covered"].mean()))
    return out


def _records(df: pd.DataFrame) -> Records:
    return cast(Records, df.to_dict("records"))


def _snapshots(forecasts: pd.DataFrame) -> Records:
    rows = []
    for (origin, date), g in forecasts.groupby(["origin", "date"], sort=True):
        by = {str(r["model"]): r for r in _records(g)}
        first = next(iter(by.values()))
        rows.append({"origin": origin, "date": date, "free_users": first["free_users"], "by": by,
                     "actual": first["actual"]})  # fmt: skip
    return rows


def _survival_rows(survival: dict[str, Any], horizon: int) -> Records:
    rows = []
    for c in survival.get("curves", []):
        share = c["upgraded_share"]
        rows.append({"label": _segment(c["label"]), "n": c["n"], "events": c["events"],
                     "day0": c["share_day0"], "day7": c["share_by_day7"], "median": c["median_days"],
                     "horizon": share[horizon] if len(share) > horizon else None})  # fmt: skip
    return rows


def _tuning(tuning: dict[str, Any]) -> list[str]:
    out = []
    for family, t in tuning.items():
        best = sorted(dict(t.get("best_params") or {}).items())
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best)
        strategy = f" ({t['strategy']})" if t.get("strategy") else ""
        line = f"{family}{strategy}: {t.get('n_trials', '?')} trials, best CV {num(t.get('best_value'))}"
        out.append(line + (f" with {params}" if params else ""))
    return out


def _segment(label: str) -> str:
    return label.replace("_", " ").replace("=", ": ")


def _unused(notes: list[str]) -> tuple[list[str], list[str]]:
    """Files the audit's notes say were not used: per-user tables (named "student") and the rest."""
    files: list[str] = []
    for n in notes:
        if n.startswith("not used") and ":" in n:
            files += [f.strip() for f in n.split(":", 1)[1].split(",") if f.strip()]
    return [f for f in files if "student" in f], [f for f in files if "student" not in f]


def build_insights(run: ForecastRun) -> ForecastInsights:
    m, bt, preds = run.metrics, run.backtest, run.test_predictions
    order = {b: i for i, b in enumerate(["all", *(b[0] for b in TENURE_BANDS)])}
    last = bt[bt["origin"] == bt["origin"].max()]
    bands = last.sort_values("band", key=lambda c: c.map(order), kind="stable")
    missed = bands[(bands["model"] == "model") & (bands["band"] != "all") & ~bands["covered"].astype(bool)]
    y = preds["y"].to_numpy()
    deciles = targeting.gains_table(y, preds["p"].to_numpy())
    if PAIRED_BAR in preds:
        deciles["tenure_gain"] = targeting.gains_table(y, preds[PAIRED_BAR].to_numpy())["gain"]
    undated, dimensions = _unused(run.events_audit.get("notes", []))
    return ForecastInsights(
        lift=lift_over_tenure(m.differences),
        errors=count_errors(run.forecasts),
        snapshots=_snapshots(run.forecasts),
        survival=_survival_rows(run.survival, m.horizon),
        board=_records(run.leaderboard.head(BOARD_ROWS)),
        backtest_all=_records(bt[bt["band"] == "all"]),
        backtest_bands=_records(bands),
        missed_bands=_records(missed),
        deciles=_records(deciles),
        origin_labels={
            k: f"{o['test_start']} to {o['test_end']}" for k, o in enumerate(run.design["origins"], 1)
        },
        undated=undated,
        dimensions=dimensions,
        tuning=_tuning(m.tuning),
        widening=math.sqrt(m.overdispersion),
    )


# ------------------------------------------------------------------ plots


def _style(name: str) -> dict[str, Any]:
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
        ax.set(xlabel="days since registration", title=f"by {_segment(column)}", xlim=(0, KM_DAYS))
        ax.legend(frameon=False, fontsize=7)
    axes.flat[0].set_ylabel("upgraded (Kaplan-Meier)")
    return embed(fig)


def plot_backtest(backtest: pd.DataFrame) -> str:
    """Test PR AUC of the model and each baseline at every origin."""
    t = backtest[backtest["band"] == "all"]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for name, g in t.groupby("model", sort=False):
        ax.plot(g["test_start"], g["pr_auc"], marker="o", **_style(str(name)))
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


def plot_gains(preds: pd.DataFrame, names: list[str]) -> tuple[str, str]:
    y = preds["y"].to_numpy()
    curves = {"model": targeting.gains_curve(y, preds["p"].to_numpy())}
    curves.update({n: targeting.gains_curve(y, preds[n].to_numpy()) for n in names})
    out = []
    for kind in ("gain", "lift"):
        fig, ax = plt.subplots(figsize=(4.6, 3.6))
        for label, g in curves.items():
            if kind == "lift":  # the first few rows make the lift swing wildly
                g = g[g["share_targeted"] >= 0.01]
            ax.plot(g["share_targeted"], g[kind], **_style(label))
        if kind == "gain":
            ax.plot([0, 1], [0, 1], color=GREY, lw=0.8, ls=":", label="random")
            ax.set(ylabel="share of upgrades reached", title="Cumulative gains (test period)")
        else:
            ax.axhline(1, color=GREY, lw=0.8, ls=":")
            ax.set(ylabel="lift over random", title="Lift (test period)", xscale="log")
        ax.set_xlabel("share of rows targeted, best scores first")
        ax.legend(frameon=False, fontsize=7)
        out.append(embed(fig))
    return out[0], out[1]


def plot_profit(preds: pd.DataFrame, run: ForecastRun) -> str:
    """Profit per 1,000 rows of offering to the top share, at the run's economics; the policy marked."""
    cost, value = float(run.info["offer_cost"]), float(run.info["upgrade_value"])
    y, scale = preds["y"].to_numpy(), 1000.0 / max(len(preds), 1)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    best = 0.0
    for name, col in (("model", "p"), (PAIRED_BAR, PAIRED_BAR)):
        if col not in preds:
            continue
        c = targeting.profit_curve(y, preds[col].to_numpy(), cost, value)
        best = max(best, float(c["profit"].max()) * scale)
        keep = np.unique(np.linspace(0, len(c) - 1, min(len(c), 600)).round().astype(int))
        ax.plot(c["share_offered"].iloc[keep], c["profit"].iloc[keep] * scale, **_style(name))
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


def figures(run: ForecastRun) -> dict[str, str]:
    preds = run.test_predictions
    names = [n for n in run.metrics.baselines if n in preds and n != "base rate"]
    figs = {
        "survival": plot_survival(run.survival),
        "backtest": plot_backtest(run.backtest),
        "snapshots": plot_snapshots(run.forecasts),
        "profit": plot_profit(preds, run),
    }
    figs["gains"], figs["lift"] = plot_gains(preds, names)
    return figs


# ------------------------------------------------------------------ page


def render(run: ForecastRun, ins: ForecastInsights, figs: dict[str, str], name: str | None = None) -> str:
    return render_page(
        "forecast.html.j2",
        SECTIONS,
        run=run,
        info=run.info,
        m=run.metrics,
        design=run.design,
        aud=run.events_audit,
        ins=ins,
        figs=figs,
        run_name=name or run.dir.name,
        timings=dict(run.info.get("timings") or {}),
        calibration_days=config.CALIBRATION_DAYS,
        build_seconds=_BUILD,
    )


def build_forecast_report(run_dir: Path, console: Console | None = None, name: str | None = None) -> Path:
    """Write run_dir/report.html for an events run folder, atomically.

    `name` is the run's published name when the folder is still a temp folder about to be renamed."""
    console = console or Console(stderr=True)
    started = time.perf_counter()
    run_dir = Path(run_dir)
    with console.status("building the forecast report"):
        run = load_forecast_run(run_dir)
        ins = build_insights(run)
        html = render(run, ins, figures(run), name)
    seconds = time.perf_counter() - started
    html = html.replace(_BUILD, f"{seconds:.1f}")
    return write_report(run_dir, html, console, started, name)
