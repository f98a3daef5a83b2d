"""Events runs end to end on small synthetic tables: the run folder, time order, and honest numbers."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli, synthetic_events
from upgrade_predictor.api import TrainConfig, train
from upgrade_predictor.bundle import load_bundle
from upgrade_predictor.forecast.runs import load_forecast_run


def events_config(folder, out, **changes) -> TrainConfig:
    """A quick, one-job events run with a 14-day horizon; `changes` override any field."""
    settings = {
        "budget": "quick",
        "report": False,
        "families": ["logreg", "gbm"],
        "strategies": ["none", "class_weight"],
        "horizon": 14,
        "jobs": 1,
    }
    return TrainConfig(events=folder, out=out, **{**settings, **changes})


@pytest.fixture(scope="module")
def events_run(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("events")
    folder = synthetic_events(root / "tables", n_users=900, seed=3)
    return folder, train(events_config(folder, root / "run")).dir


def test_events_run_writes_a_complete_typed_folder(events_run):
    _, out = events_run
    run = load_forecast_run(out)
    m = run.metrics
    assert m.horizon == 14 and m.chosen.family in {"logreg", "gbm"}
    assert set(m.baselines) >= {"base rate", "tenure only", "recency only", "aggregated-table model"}
    assert 0 <= m.test.pr_auc <= 1 and 0.5 < m.test.roc_auc <= 1  # the synthetic signal is learnable
    assert m.forecast.free_users > 0 and m.forecast.low <= m.forecast.expected <= m.forecast.high
    assert m.overdispersion >= 1 and 0 <= m.coverage <= 1
    assert {"model", "tenure only", "aggregated-table model"} <= set(run.backtest["model"])
    bundle = load_bundle(out / "model.zip")
    assert "tenure_days" in bundle.schema.names
    assert bundle.threshold == pytest.approx(m.policy.threshold)
    # No lift was assumed: the policy is not priced and offers nothing, whatever the ranking.
    assert not m.policy.priced and not m.policy.pays and m.forecast.offers == 0


def test_backtest_origins_are_in_time_order_with_a_gap(events_run):
    _, out = events_run
    design = json.loads((out / "design.json").read_text())
    origins = design["origins"]
    assert len(origins) == 3
    horizon = design["horizon"]
    for o in origins:
        # Every training label window closed before the first test cutoff.
        assert date.fromisoformat(o["train_cutoff_end"]) + timedelta(days=horizon) <= date.fromisoformat(
            o["test_start"]
        )
        assert o["gap_days"] >= horizon
    starts = [date.fromisoformat(o["test_start"]) for o in origins]
    assert starts == sorted(starts)
    # The test period's labels end inside the data.
    last = date.fromisoformat(origins[-1]["test_end"]) + timedelta(days=horizon - 1)
    assert last <= date.fromisoformat(design["data_end"])


def test_the_policy_never_offers_at_a_loss(tmp_path, events_run):
    folder, _ = events_run
    # An offer that costs more than an upgrade is worth can never pay: the run must say "send none".
    cfg = events_config(
        folder,
        tmp_path / "dear",
        families=["gbm"],
        strategies=["none"],
        offer_cost=150.0,
        upgrade_value=100.0,
        assumed_lift="50%",
    )
    m = load_forecast_run(train(cfg).dir).metrics
    assert m.policy.priced and not m.policy.pays and m.forecast.offers == 0
    assert m.policy.per_campaign["offers"]["value"] == 0 and m.policy.campaigns >= 1
    assert m.policy.break_even_lift > 1.5  # 150 / (100 x a rate of at most 100%): more than +150%


def test_features_ignore_the_future(tmp_path, events_run):
    """Point in time: events dated on or after the cutoff change no feature of the run's design rows."""
    from upgrade_predictor.forecast.features import features_as_of
    from upgrade_predictor.sources.events import EventSource

    folder, _ = events_run
    as_of = date(2022, 6, 1)
    with EventSource(folder) as src:
        before = features_as_of(src, as_of)
    cut = tmp_path / "cut"
    cut.mkdir()
    for f in folder.iterdir():
        df = pd.read_csv(f, keep_default_na=False, na_values=[""])
        day_col = next((c for c in df.columns if c.startswith("date_")), None)
        if day_col and f.name != "365_student_info.csv":
            df = df[pd.to_datetime(df[day_col]) < pd.Timestamp(as_of)]
        df.to_csv(cut / f.name, index=False)
    with EventSource(cut) as src:
        after = features_as_of(src, as_of)
    pd.testing.assert_frame_equal(before, after)
    assert np.isfinite(before["tenure_days"]).all()


def _score(model, folder, out, *extra):
    from typer.testing import CliRunner

    from upgrade_predictor.cli import app

    r = CliRunner().invoke(app, ["score", str(model), "--events", str(folder), "--out", str(out), *extra])
    assert r.exit_code == 0, r.output
    return pd.read_csv(out, keep_default_na=False, na_values=[""], dtype={"user_id": str})


def test_scores_of_today_ignore_events_dated_on_or_after_the_day(tmp_path, events_run):
    """The point-in-time test: adding events dated on or after --as-of changes not a single score."""
    folder, out = events_run
    as_of = "2022-07-15"
    plus = tmp_path / "plus"
    plus.mkdir()
    rng = np.random.default_rng(0)
    for f in folder.iterdir():
        df = pd.read_csv(f, keep_default_na=False, na_values=[""])
        if f.name == "365_student_learning.csv":  # heavy later activity for every user
            later = df.sample(frac=1.0, replace=True, random_state=1).copy()
            later["date_watched"] = (
                pd.Timestamp(as_of) + pd.to_timedelta(rng.integers(0, 40, len(later)), "D")
            ).strftime("%Y-%m-%d")
            later["minutes_watched"] *= 10
            df = pd.concat([df, later.drop_duplicates(["student_id", "course_id", "date_watched"])])
        if f.name == "365_student_purchases.csv":  # and a purchase on the day itself for a free user
            df = pd.concat(
                [
                    df,
                    pd.DataFrame(
                        {
                            "purchase_id": [99_999],
                            "student_id": [100_001],
                            "purchase_type": ["Annual"],
                            "date_purchased": [as_of],
                        }
                    ),
                ]
            )
        df.to_csv(plus / f.name, index=False)
    a = _score(out / "model.zip", folder, tmp_path / "a.csv", "--as-of", as_of)
    b = _score(out / "model.zip", plus, tmp_path / "b.csv", "--as-of", as_of)
    assert len(a) > 100 and {"user_id", "tenure_days", "probability", "decision", "rank"} <= set(a.columns)
    pd.testing.assert_frame_equal(a, b)
    assert (a["rank"].to_numpy() == np.arange(1, len(a) + 1)).all()
    assert a["probability"].is_monotonic_decreasing


def test_a_table_bundle_cannot_score_events(tmp_path, events_run, synthetic_csv):
    folder, _ = events_run
    table_run = train(
        TrainConfig(
            data=synthetic_csv,
            out=tmp_path / "t",
            budget="quick",
            report=False,
            families=["logreg"],
            strategies=["none"],
            jobs=1,
        )
    )
    r = run_cli("score", str(table_run.model_path), "--events", str(folder), "--out", str(tmp_path / "o.csv"))
    assert r.returncode == 2 and "trained on one table" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o.csv").exists()


def test_drift_checks_todays_free_users_from_the_events(tmp_path, events_run):
    folder, out = events_run
    report = tmp_path / "drift.json"
    r = run_cli(
        "drift",
        str(out / "model.zip"),
        "--events",
        str(folder),
        "--as-of",
        "2022-06-01",
        "--out",
        str(report),
    )
    assert r.returncode in (0, 1), r.stderr  # 1 means drift was found, which is allowed here
    d = json.loads(report.read_text())
    assert d["rows"] > 50 and d["rows_rejected"] == 0 and d["id_column"] == "user_id"
    assert {f["feature"] for f in d["features"]} >= {"tenure_days", "learning_events"}


def test_a_time_limited_events_run_compares_less_and_says_results_may_vary(tmp_path, events_run):
    folder, _ = events_run
    cfg = events_config(
        folder,
        tmp_path / "run",
        report=True,
        strategies=["none", "class_weight", "smote"],
        time_limit=0.01,  # spent on reading the tables: one candidate is compared, none tuned
    )
    run = load_forecast_run(train(cfg).dir)
    assert 1 <= len(run.leaderboard) < 2 * 3 and not run.leaderboard["tuned"].any()
    notes = run.metrics.notes
    assert "may vary between machines" in notes[0]
    assert any("no time was left to tune" in n for n in notes)
    assert (run.dir / "model.zip").exists() and run.info.time_limit == 0.01
    assert "may vary between machines" in (run.dir / "report.html").read_text()


def test_a_row_budget_trains_on_whole_sampled_users_and_says_so(tmp_path, events_run, capsys):
    """--design-rows: the run trains on every row of a random share of users, scores the test period on
    every free user, and states both in design.json and in its plan line."""
    folder, full_out = events_run
    full = json.loads((full_out / "design.json").read_text())
    budget = full["rows"] // 3
    out = train(events_config(folder, tmp_path / "run", design_rows=budget)).dir
    design = json.loads((out / "design.json").read_text())
    s = design["sample"]
    assert s["rows"] == full["rows"] and s["users"] == full["users"]
    assert s["fit_share"] == pytest.approx(budget / full["rows"]) and s["fit_rows"] < full["rows"]
    assert s["eval_share"] == 1.0  # the test periods are still scored on every free user
    assert design["final_fit_rows"] < full["final_fit_rows"]
    # Test periods are the same rows as the full run's: whole populations, not the sample.
    assert [o["test_rows"] for o in design["origins"]] == [o["test_rows"] for o in full["origins"]]
    assert [o["train_rows"] for o in design["origins"]] < [o["train_rows"] for o in full["origins"]]
    bundle = load_bundle(out / "model.zip")
    assert bundle.metadata.training.rows == s["fit_rows"]
    err = capsys.readouterr().err
    assert f"random {s['fit_share']:.1%} of users" in err and "every free user" in err
