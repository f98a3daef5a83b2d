"""`campaign readout` of a plain `score --events` list, end to end on the real event tables: last month's
list checked against the upgrades that followed (and logged to MLflow), and each refusal with exit 2
and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import run_cli
from test_campaign_cli import PURCHASES, copy_tables, read

pytestmark = pytest.mark.slow

AS_OF = "2022-07-15"  # horizon 30: the window ends 2022-08-13, inside the tables (cut at 2022-08-31)
WINDOW_END = "2022-08-13"


@pytest.fixture(scope="module")
def scored(real_events: Path, tmp_path_factory) -> Path:
    """The plain list of a quick events model of the real tables (one family, time-limited), scored as
    of AS_OF."""
    d = tmp_path_factory.mktemp("list")
    done = run_cli(
        "train", "--events", str(real_events), "--out", str(d / "run"), "--budget", "quick", "--families",
        "logreg", "--strategies", "none", "--no-report", "--jobs", "1", "--time-limit", "20",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = run_cli("score", str(d / "run" / "model.zip"), "--events", str(real_events), "--as-of", AS_OF,
                   "--out", str(d / "july.csv"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return d / "july.csv"


def first_purchase(tables: Path) -> pd.Series:
    p = read(tables / PURCHASES)
    return p.groupby("student_id")["date_purchased"].min()


def in_window(listed: pd.DataFrame, first: pd.Series) -> np.ndarray:
    day = listed["user_id"].map(first)
    return ((day >= AS_OF) & (day <= WINDOW_END)).to_numpy(dtype=bool)


def test_last_months_list_is_checked_against_what_happened(scored: Path, real_events: Path, tmp_path):
    listed = read(scored)
    listed["probability"] = listed["probability"].astype(float)
    out = tmp_path / "readout"
    store = tmp_path / "mlruns"
    done = run_cli("campaign", "readout", str(scored), "--events", str(real_events), "--horizon", "30",
                   "--out", str(out), "--mlflow", "--tracking-uri", str(store))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "needs a holdout" in done.stderr and "logged to MLflow" in done.stderr
    r = json.loads((out / "readout.json").read_text())
    assert r["holdout"] is False and r["as_of"] == AS_OF and r["as_of_source"] == "tenure_days"
    assert r["window_end"] == WINDOW_END and r["horizon_closed"] is True
    hit = in_window(listed, first_purchase(real_events))
    assert r["users"] == len(listed) and r["actual_upgrades"] == hit.sum() > 0
    assert r["expected_upgrades"]["value"] == pytest.approx(listed["probability"].sum())
    assert r["upgraded_before_as_of"] == 0  # the list is of users free on the as-of
    assert [b["users"] for b in r["bands"]] == list(
        np.bincount(1 + np.arange(len(listed)) * 5 // len(listed))[1:]
    )
    assert sum(b["actual_upgrades"] for b in r["bands"]) == r["actual_upgrades"]
    assert 0.5 < r["roc_auc"] <= 1  # the forecast ranks the upgraders above the rest
    html = (out / "readout.html").read_text()
    assert "<script" not in html and "http" not in html and "needs a holdout" in html
    runs = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}").search_experiments()
    assert [e.name for e in runs if e.name == "upgrade-predictor-campaigns"]


def test_injected_upgrades_land_in_their_bands(scored: Path, real_events: Path, tmp_path):
    listed = read(scored)
    buyers = set(read(real_events / PURCHASES)["student_id"])
    band = 1 + np.arange(len(listed)) * 5 // len(listed)
    won = listed.loc[~listed["user_id"].isin(buyers) & (band == 5), "user_id"].head(50).tolist()
    newer = copy_tables(real_events, tmp_path / "newer")
    purchases = read(newer / PURCHASES)
    extra = pd.DataFrame({"purchase_id": [f"9{i:06d}" for i in range(len(won))], "student_id": won,
                          "purchase_type": "Annual", "date_purchased": "2022-07-20"})  # fmt: skip
    pd.concat([purchases, extra]).to_csv(newer / PURCHASES, index=False)
    base, more = tmp_path / "base", tmp_path / "more"
    args = ("campaign", "readout", str(scored), "--horizon", "30", "--as-of", AS_OF)
    assert run_cli(*args, "--events", str(real_events), "--out", str(base)).returncode == 0
    done = run_cli(*args, "--events", str(newer), "--out", str(more))
    assert done.returncode == 0, done.stderr
    before, after = (json.loads((f / "readout.json").read_text()) for f in (base, more))
    assert after["actual_upgrades"] == before["actual_upgrades"] + 50
    assert after["bands"][4]["actual_upgrades"] == before["bands"][4]["actual_upgrades"] + 50
    assert [b["actual_upgrades"] for b in after["bands"][:4]] == [
        b["actual_upgrades"] for b in before["bands"][:4]
    ]


def test_refusals_exit_2_and_write_nothing(scored: Path, real_events: Path, tmp_path):
    out = tmp_path / "out"

    def refused(source: Path, events: Path, text: str, *extra: str) -> None:
        done = run_cli("campaign", "readout", str(source), "--events", str(events), "--out", str(out), *extra)
        assert done.returncode == 2 and text in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and not out.exists() and not list(tmp_path.glob(".out.*"))

    refused(scored, real_events, "--horizon is needed")
    early = copy_tables(real_events, tmp_path / "early", before="2022-07-01")
    refused(scored, early, "before the list's as-of", "--horizon", "30")
    listed = read(scored)
    listed.drop(columns="probability").to_csv(tmp_path / "bare.csv", index=False)
    refused(tmp_path / "bare.csv", real_events, "no column 'probability'", "--horizon", "30")
    fewer = copy_tables(real_events, tmp_path / "fewer")
    info = read(fewer / "365_student_info.csv")
    info[~info["student_id"].isin(listed["user_id"].head(3))].to_csv(
        fewer / "365_student_info.csv", index=False
    )
    refused(scored, fewer, "3 of the list's", "--horizon", "30")
