"""One standard events run on the real tables: the forecasting bars, checked end to end."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from upgrade_predictor.forecast.runs import load_forecast_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def events_run(real_events: Path, tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    from upgrade_predictor.cli import app

    out = tmp_path_factory.mktemp("events") / "run"
    result = CliRunner().invoke(
        app, ["train", "--events", str(real_events), "--out", str(out), "--budget", "standard"]
    )
    assert result.exit_code == 0, result.output
    return out


def test_forecast_beats_tenure_alone_and_the_report_says_by_how_much(events_run):
    run = load_forecast_run(events_run)
    diffs = {(d.metric, d.baseline): d for d in run.metrics.differences}
    pr = diffs["pr_auc", "tenure only"]
    lift = diffs["top_decile_lift", "tenure only"]
    assert pr.low > 0, pr  # better than tenure alone beyond the bootstrap interval
    assert lift.difference > 0, lift
    html = (events_run / "report.html").read_text()
    assert "beats the tenure-only baseline" in html
    assert f"{pr.difference:+.3f}" in html or f"{pr.difference:.3f}" in html


def test_backtest_has_three_origins_every_baseline_and_counts(events_run):
    run = load_forecast_run(events_run)
    assert sorted(run.backtest["origin"].unique()) == [1, 2, 3]
    assert {"model", "base rate", "tenure only", "recency only", "aggregated-table model"} <= set(
        run.backtest["model"]
    )
    counts = run.forecasts
    assert set(counts["origin"]) == {1, 2, 3}
    mine = counts[counts["model"] == "model"]
    agg = counts[counts["model"] == "aggregated-table model"]
    # The leaky table's model forecasts several times the upgrades that happen; ours stays near them.
    assert agg["expected"].sum() > 3 * agg["actual"].sum()
    assert 0.5 < mine["expected"].sum() / mine["actual"].sum() < 2
    design = json.loads((events_run / "design.json").read_text())
    for o in design["origins"]:
        start = date.fromisoformat(o["test_start"])
        assert date.fromisoformat(o["train_cutoff_end"]) + timedelta(days=design["horizon"]) <= start


def test_time_to_upgrade_matches_the_published_day_zero_share(events_run, real_events):
    run = load_forecast_run(events_run)
    overall = run.survival["curves"][0]
    info = pd.read_csv(real_events / "365_student_info.csv", keep_default_na=False, na_values=[""])
    buys = pd.read_csv(real_events / "365_student_purchases.csv", keep_default_na=False, na_values=[""])
    first = buys.groupby("student_id")["date_purchased"].min()
    same_day = (
        info.set_index("student_id")["date_registered"] == first.reindex(info["student_id"]).values
    ).sum()
    assert overall["share_day0"] == pytest.approx(same_day / len(info), abs=1e-9)


def test_scores_on_the_real_tables_ignore_everything_dated_on_or_after_the_day(
    events_run, real_events, tmp_path
):
    """Point in time on the real tables: the list for 2022-07-01 is the same whether or not the tables hold
    the events (lessons, exams, purchases, ...) dated on or after that day."""
    from typer.testing import CliRunner

    from upgrade_predictor.cli import app

    as_of = pd.Timestamp("2022-07-01")
    cut = tmp_path / "cut"
    cut.mkdir()
    for f in real_events.glob("*.csv"):
        df = pd.read_csv(f, keep_default_na=False, na_values=[""], dtype=str)
        dated = [c for c in df.columns if c.startswith("date_") and c != "date_registered"]
        if dated:
            df = df[pd.to_datetime(df[dated[0]]) < as_of]
        df.to_csv(cut / f.name, index=False)
    lists = []
    for folder, name in ((real_events, "full.csv"), (cut, "cut.csv")):
        r = CliRunner().invoke(
            app,
            [
                "score",
                str(events_run / "model.zip"),
                "--events",
                str(folder),
                "--as-of",
                "2022-07-01",
                "--out",
                str(tmp_path / name),
            ],
        )
        assert r.exit_code == 0, r.output
        lists.append(pd.read_csv(tmp_path / name, dtype={"user_id": str}))
    assert len(lists[0]) > 10_000
    pd.testing.assert_frame_equal(lists[0], lists[1])


def test_the_report_of_the_real_run_is_whole_and_offline(events_run):
    import re

    from upgrade_predictor.reporting.forecast import SECTIONS

    html = (events_run / "report.html").read_text()
    metrics = json.loads((events_run / "metrics.json").read_text())
    assert f"{metrics['forecast']['free_users']:,}" in html
    for s in SECTIONS:
        assert f'id="{s.anchor}"' in html
    assert all(s.startswith("data:image/") for s in re.findall(r'<img src="([^"]+)"', html))
    assert "http" not in re.sub(r'"data:[^"]*"', '""', html).lower()
    assert (events_run / "report.html").stat().st_size < 5_000_000
