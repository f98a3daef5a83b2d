"""The events-run report: self-contained, every section present, and honest wording for a policy that
does not pay and a lift whose interval includes 0.

The run folder is written by the run's own writers (forecast/runs.py, the bundle writer, the
leaderboard, the backtest and survival tables) from chosen numbers, so the report is tested on the
files an events run writes."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from conftest import fit_bundle
from upgrade_predictor.bundle import load_bundle
from upgrade_predictor.evaluation import Scores, scores
from upgrade_predictor.forecast.backtest import backtest_table
from upgrade_predictor.forecast.evaluate import Difference, with_intervals
from upgrade_predictor.forecast.info import EventRunInfo
from upgrade_predictor.forecast.policy import NO_OFFER, Policy
from upgrade_predictor.forecast.runs import Forecast, ForecastMetrics, curve_dict, write_tables
from upgrade_predictor.forecast.survival import km_curve
from upgrade_predictor.reporting.forecast import SECTIONS, build_forecast_report
from upgrade_predictor.reporting.forecast_insights import lift_over_tenure
from upgrade_predictor.runs.folder import RunWriter
from upgrade_predictor.training.candidates import Candidate, CVResult
from upgrade_predictor.training.metrics import Chosen, Tuning
from upgrade_predictor.training.selection import leaderboard

BASELINES = ["base rate", "tenure only", "recency only", "aggregated-table model"]
ORIGINS = [("2022-05-07", "2022-06-03"), ("2022-06-06", "2022-07-03"), ("2022-07-06", "2022-08-02")]
N = 3000  # test rows


def _scores(y: np.ndarray, p: np.ndarray) -> Scores:
    return scores(y, p, 0.05)


def _predictions(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """test_predictions.parquet: the model's scores and every baseline's, with an upgrade signal."""
    tenure = rng.integers(0, 120, N)
    y = (rng.random(N) < np.where(tenure < 7, 0.06, 0.01)).astype(int)
    p = np.clip(0.015 + 0.05 * y + rng.normal(0, 0.01, N), 0.001, 0.9)
    base = {
        "base rate": np.full(N, y.mean()),
        "tenure only": np.where(tenure < 7, 0.05, 0.01) + rng.uniform(0, 1e-3, N),
        "recency only": np.clip(0.02 + 0.02 * y + rng.normal(0, 0.01, N), 0.001, 0.9),
        "aggregated-table model": np.clip(0.2 + 0.2 * y + rng.normal(0, 0.05, N), 0.001, 0.99),
    }
    cutoffs = pd.to_datetime("2022-07-06") + pd.to_timedelta(rng.integers(0, 28, N), "D")
    preds = pd.DataFrame(
        {
            "user_id": rng.integers(1, 900, N).astype(str),
            "cutoff": cutoffs,
            "tenure_days": tenure,
            "y": y,
            "model (none)": p,
            "p": p,
            **base,
        }
    )
    return preds, base


def _backtest(preds: pd.DataFrame, base: dict[str, np.ndarray]) -> pd.DataFrame:
    """backtest.csv: every origin scored on the same rows, keyed as the run keys its origins."""
    y, tenure = preds["y"].to_numpy(), preds["tenure_days"].to_numpy()
    frames = {
        f"{k}|{s}|{name}": (y, q, tenure)
        for k, (s, _) in enumerate(ORIGINS, 1)
        for name, q in {"model": preds["p"].to_numpy(), **base}.items()
    }
    bt = backtest_table(frames, overdispersion=3.0)
    parts = bt["origin"].str.split("|", expand=True)
    bt.insert(0, "model", parts[2])
    bt.insert(0, "test_start", parts[1])
    bt["origin"] = parts[0].astype(int)
    return bt


def _forecasts() -> pd.DataFrame:
    """forecasts.csv: weekly snapshot counts; the aggregated-table model forecasts ten times too many."""
    rows = []
    for k, (s, _) in enumerate(ORIGINS, 1):
        for w in range(4):
            d = date.fromisoformat(s) + timedelta(days=2 + 7 * w)
            for name, expected in (("model", 60.0), ("aggregated-table model", 600.0)):
                rows.append(
                    {
                        "origin": k,
                        "date": d.isoformat(),
                        "model": name,
                        "free_users": 5000,
                        "expected": expected + w,
                        "actual": float(50 + 3 * w),
                        "var": expected * 0.98,
                    }
                )
    return with_intervals(pd.DataFrame(rows), 3.0)


def _survival(rng: np.random.Generator) -> dict[str, Any]:
    durations = rng.integers(0, 200, 1000)
    events = (rng.random(1000) < 0.1).astype(int)
    curves = [
        km_curve(durations, events, "all users"),
        km_curve(durations[:500], events[:500], "student_country=US"),
        km_curve(durations[500:], events[500:], "student_country=NA"),
        km_curve(durations[:400], events[:400], "first_day_activity=active on day 0"),
    ]
    return {"curves": [curve_dict(c) for c in curves]}


def _board(rng: np.random.Generator) -> pd.DataFrame:
    """leaderboard.csv as the comparison builds it, from three folds of two real candidates."""
    results = {}
    for c, signal in ((Candidate("gbm", "none"), 0.3), (Candidate("logreg", "class_weight"), 0.2)):
        y = (rng.random((3, 2000)) < 0.05).astype(int)
        folds = [_scores(f, np.clip(0.04 + signal * f + rng.normal(0, 0.05, 2000), 0.001, 0.99)) for f in y]
        results[c.key] = CVResult(c, folds, np.zeros(0), 1.0, 2000, 2000)
    return leaderboard(results, "pr_auc")


def _policy(state: str) -> Policy:
    """The deployed policy: "pays" (priced under +20%, a cut-off that paid), "loses" (priced, none paid) or
    "unpriced" (no lift given). Audience per campaign: 350 offers reaching 25 upgraders."""
    pays, lift = (
        state == "pays",
        None if state == "unpriced" else {"value": 0.2, "relative": True, "source": "assumed"},
    )
    figures = {"offers": 350.0, "upgraders_reached": 25.0, "incremental_upgrades": 5.0, "profit": 325.0}
    camp = {k: {"value": v, "low": v * 0.8, "high": v * 1.2} for k, v in figures.items()}
    if not pays:
        camp = {k: {"value": 0.0, "low": 0.0, "high": 0.0} for k in camp}
    thousand = {k: {b: x * 1000 / 27000 for b, x in v.items()} for k, v in camp.items()}
    cost = 0.5 if pays else 40.0
    return Policy(
        0.031 if pays else NO_OFFER,
        pays,
        cost,
        100.0,
        0.0,
        lift,
        break_even_lift=cost * 350 / (100 * 25),
        break_even_share=0.0 if pays else 0.1,
        campaigns=4,
        users_per_campaign=27000.0,
        per_campaign=camp,
        per_1000=thousand,
        audience={"offers": 350.0, "upgraders_reached": 25.0},
    )


def _metrics(preds: pd.DataFrame, base: dict[str, np.ndarray], pays: str, tenure_ci: tuple[float, float]):
    y = preds["y"].to_numpy()
    diffs = [
        Difference("pr_auc", "tenure only", 0.07, 0.045, 0.025, *tenure_ci),
        Difference("top_decile_lift", "tenure only", 5.0, 4.8, 0.2, -0.3, 0.7),
        Difference("pr_auc", "aggregated-table model", 0.07, 0.06, 0.01, -0.002, 0.02),
    ]
    return ForecastMetrics(
        chosen=Chosen("gbm/none", "gbm", "none", {"learning_rate": 0.05}, "gradient boosting", True),
        objective="pr_auc",
        horizon=30,
        test_start=ORIGINS[-1][0],
        test_end=ORIGINS[-1][1],
        test=_scores(y, preds["p"].to_numpy()),
        baselines={k: _scores(y, v) for k, v in base.items()},
        differences=diffs,
        calibration="sigmoid",
        calibration_log_loss={"none": 0.04, "sigmoid": 0.038},
        overdispersion=3.0,
        coverage=0.75,
        policy=_policy(pays),
        forecast=Forecast("2022-09-01", 27000, 130.0, 40.0, 220.0, 80 if pays == "pays" else 0),
        cv={"pr_auc_mean": 0.07, "pr_auc_sd": 0.01},
        compare_rows=2000,
        tuning={"gbm": Tuning("none", 0.066, 3, {"learning_rate": 0.0512345, "num_leaves": 31})},
    )


def _design() -> dict[str, Any]:
    origins = [
        {
            "test_start": s,
            "test_end": e,
            "train_cutoff_end": "2022-04-07",
            "train_rows": 1000 * k,
            "fit_rows": 800 * k,
            "test_rows": N,
            "gap_days": 30,
        }
        for k, (s, e) in enumerate(ORIGINS, 1)
    ]
    return {
        "plan": {
            "first_days": "14",
            "calendar_every_days": "7",
            "horizon": "30",
            "calendar_anchor": "2000-01-03",
        },
        "horizon": 30,
        "data_end": "2022-08-31",
        "rows": 50000,
        "users": 2000,
        "positives": 450,
        "excluded": {"upgraded_before": 3000, "horizon_past_end": 9000, "users_without_rows": 120},
        "origins": origins,
        "features": ["tenure_days", "learning_events"],
        "windows": [1, 7, 28],
        "final_fit_rows": 4000,
        "final_sampled": False,
    }


def _audit() -> dict[str, Any]:
    table = {
        "name": "learning",
        "file": "365_student_learning.csv",
        "rows": 500,
        "kept": 497,
        "first_date": "2022-01-01",
        "last_date": "2022-08-31",
        "before_registration": 2,
        "handling": "exact duplicates removed",
    }
    return {
        "tables": [table],
        "data_start": "2022-01-01",
        "data_end": "2022-08-31",
        "users": 2100,
        "converted_users": 140,
        "notes": [
            "not used (a table needs a mapping entry with a date column): 365_quiz_info.csv, "
            "365_student_quizzes.csv"
        ],
    }


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real small bundle of the chosen family (gradient boosting, calibrated)."""
    path, _ = fit_bundle(tmp_path_factory.mktemp("bundle"), family="gbm", calibrate=True, n=400)
    return load_bundle(path)


def write_run(
    folder: Path,
    bundle: Any,
    *,
    pays: str = "pays",
    tenure_ci: tuple[float, float] = (0.01, 0.04),
    seed: int = 0,
) -> Path:
    """A small events run folder, written by the writers an events run uses."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    preds, base = _predictions(rng)
    bt, counts, survival = _backtest(preds, base), _forecasts(), _survival(rng)
    metrics = _metrics(preds, base, pays, tenure_ci)
    info = EventRunInfo(
        events="events",
        budget="quick",
        seed=365,
        horizon=30,
        offer_cost=metrics.policy.offer_cost,
        upgrade_value=100.0,
        data_end="2022-08-31",
        timings={"read and design": 3.0, "features": 20.0},
    )
    out = RunWriter(folder)
    write_tables(out, info, metrics, _design(), _audit(), _board(rng), bt, counts, survival, preds)
    out.bundle("model.zip", bundle.pipeline, bundle.metadata)
    return folder


def _build(folder: Path) -> tuple[Path, str, str]:
    buf = io.StringIO()
    path = build_forecast_report(folder, Console(file=buf, width=200))
    return path, path.read_text(), buf.getvalue()


@pytest.fixture(scope="module")
def paying(tmp_path_factory: pytest.TempPathFactory, bundle: Any) -> tuple[Path, str, str]:
    return _build(write_run(tmp_path_factory.mktemp("run"), bundle))


def test_report_is_written_whole_and_self_contained(paying: tuple[Path, str, str]) -> None:
    path, html, said = paying
    assert path == path.parent / "report.html" and "report written in" in said and str(path) in said
    assert not list(path.parent.glob(".report.html.*"))  # the temp file was renamed into place
    for i, s in enumerate(SECTIONS, 1):
        assert f'id="{s.anchor}"' in html and f"{i}. {s.title}</h2>" in html and f'href="#{s.anchor}"' in html
    imgs = re.findall(r'<img src="([^"]+)"', html)
    assert len(imgs) >= 6 and all(s.startswith("data:image/") for s in imgs)
    outside = re.sub(r'"data:[^"]*"', '""', html)
    assert "http" not in outside.lower() and "<script" not in outside and "<link" not in outside


def test_report_states_the_forecast_policy_and_timings(paying: tuple[Path, str, str]) -> None:
    _, html, _ = paying
    assert "27,000" in html and "[40, 220]" in html and "2022-09-01" in html
    assert (
        "Offer to users scoring" in html and "0.031" in html and "[260, 390]" in html
    )  # 325 per campaign +- 20%
    assert "an assumed lift of +20% of each user&#39;s upgrade probability" in html and "+7.0%" in html
    assert "Policy: not priced" not in html and "per 1,000 rows" not in html
    assert "365_student_quizzes.csv</code> holds users" in html  # the undated table, and why
    assert "learning_rate=0.05123" in html and "features 20 s" in html and "Report built in" in html
    # the aggregated-table model forecast about 10 times the actual snapshot counts
    assert re.search(r"<strong>1[01]\.\d times</strong> the actual count", html)


def test_no_paying_policy_is_stated_plainly(tmp_path: Path, bundle: Any) -> None:
    _, html, _ = _build(write_run(tmp_path / "run", bundle, pays="loses"))
    assert (
        "No cut-off paid on the most recent campaigns" in html and "+560.0%" in html
    )  # 40 x 350 / (100 x 25)
    assert "Offer to users scoring" not in html and "Send the offer" not in html  # no least-bad cut-off
    assert "Send no offer" in html and "top 10% of a campaign" in html


def test_an_unpriced_policy_says_what_would_price_it(tmp_path: Path, bundle: Any) -> None:
    _, html, _ = _build(write_run(tmp_path / "run", bundle, pays="unpriced"))
    assert "Policy: not priced" in html and "--assumed-lift" in html and "campaign readout" in html
    assert (
        "Offer to users scoring" not in html
        and "incremental profit per campaign"
        not in html.lower().replace("incremental profit per campaign against", "")
    )
    assert "Run a campaign with a randomized holdout" in html


def test_lift_is_not_claimed_when_its_interval_includes_zero(tmp_path: Path, bundle: Any) -> None:
    _, html, _ = _build(write_run(tmp_path / "run", bundle, tenure_ci=(-0.004, 0.03)))
    assert "does not beat the tenure-only baseline" in html and "includes 0" in html
    assert "beats the tenure-only baseline by" not in html
    assert "Until it beats tenure alone" in html  # the recommendation follows the interval


def test_lift_below_zero_is_said_so() -> None:
    lift = lift_over_tenure([Difference("pr_auc", "tenure only", 0.04, 0.06, -0.02, -0.03, -0.01)])
    assert not lift.beats and "does not beat" in lift.text and "lies below 0" in lift.text


def test_lift_sentence_without_a_tenure_comparison() -> None:
    lift = lift_over_tenure([Difference("pr_auc", "base rate", 0.07, 0.01, 0.06, 0.05, 0.07)])
    assert not lift.beats and lift.difference is None and "no paired comparison" in lift.text
