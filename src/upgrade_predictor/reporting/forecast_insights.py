"""What the report of an events run shows beyond the run folder's own tables: the lift over tenure
alone, the count errors of the weekly snapshots, the survival rows, the backtest by tenure band and the
deciles, computed from the folder with the same targeting functions the run uses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import pandas as pd

from .. import targeting
from ..forecast.backtest import TENURE_BANDS
from ..forecast.evaluate import Difference
from ..forecast.runs import ForecastRun
from ..training.metrics import Tuning
from .format import interval, num, signed

PAIRED_BAR = "tenure only"  # the baseline the model has to beat
AGGREGATED = "aggregated-table model"
BOARD_ROWS = 12
Records = list[dict[str, Any]]


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
        rows.append({"label": segment_label(c["label"]), "n": c["n"], "events": c["events"],
                     "day0": c["share_day0"], "day7": c["share_by_day7"], "median": c["median_days"],
                     "horizon": share[horizon] if len(share) > horizon else None})  # fmt: skip
    return rows


def _tuning(tuning: dict[str, Tuning]) -> list[str]:
    out = []
    for family, t in tuning.items():
        best = sorted(t.best_params.items())
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best)
        strategy = f" ({t.strategy})" if t.strategy else ""
        line = f"{family}{strategy}: {t.n_trials} trials, best CV {num(t.best_value)}"
        out.append(line + (f" with {params}" if params else ""))
    return out


def segment_label(label: str) -> str:
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
