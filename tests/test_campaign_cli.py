"""`campaign plan` and `campaign readout` end to end on the real event tables: a plan drawn as of a day
inside the data, read out from copies of the tables with injected upgrades, a tampered plan and tables
that end too early refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_cli
from upgrade_predictor.campaign.assign import read_csv

pytestmark = pytest.mark.slow

AS_OF = "2022-07-15"  # horizon 30: the window ends 2022-08-13, inside the tables (cut at 2022-08-31)
PURCHASES = "365_student_purchases.csv"
DATED = {  # every dated table of the 365 layout and its date column
    "365_student_info.csv": "date_registered",
    PURCHASES: "date_purchased",
    "365_student_learning.csv": "date_watched",
    "365_student_engagement.csv": "date_engaged",
    "365_student_exams.csv": "date_exam_completed",
    "365_student_hub_questions.csv": "date_question_asked",
    "365_course_ratings.csv": "date_rated",
}


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=str)


@pytest.fixture(scope="module")
def model(real_events: Path, tmp_path_factory) -> Path:
    """A quick events model of the real tables (one family, time-limited)."""
    out = tmp_path_factory.mktemp("campaign") / "run"
    done = run_cli(
        "train", "--events", str(real_events), "--out", str(out), "--budget", "quick", "--families", "logreg",
        "--strategies", "none", "--no-report", "--jobs", "1", "--time-limit", "20",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out / "model.zip"


@pytest.fixture(scope="module")
def plan(model: Path, real_events: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plan") / "july"
    done = run_cli(
        "campaign", "plan", str(model), "--events", str(real_events), "--as-of", AS_OF, "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    return out


def copy_tables(src: Path, dest: Path, before: str | None = None) -> Path:
    """A copy of the event folder; with `before`, every dated table keeps only rows dated before it."""
    dest.mkdir()
    for f in src.glob("*.csv"):
        if before is None or f.name not in DATED:
            shutil.copy(f, dest / f.name)
        else:
            t = read(f)
            t[t[DATED[f.name]] < before].to_csv(dest / f.name, index=False)
    return dest


def test_the_plan_folder_is_whole_and_consistent(plan: Path, model: Path):
    record = json.loads((plan / "campaign.json").read_text())
    table = read_csv(plan / "assignments.csv")
    assert record["as_of"] == AS_OF and record["horizon"] == 30
    assert record["offer"]["users"] == (table["arm"] == "offer").sum() > 0
    assert record["holdout"]["users"] == (table["arm"] == "holdout").sum() >= 30
    assert abs(record["holdout"]["users"] / len(table) - 0.2) < 0.001
    assert record["holdout"]["expected_upgrades"] == pytest.approx(
        table.loc[table["arm"] == "holdout", "probability"].sum()
    )
    assert record["power"]["break_even"] == pytest.approx(0.05)  # offer 5, upgrade 100, no discount
    send = read(plan / "send.csv")
    assert set(send["user_id"]) == set(table.loc[table["arm"] == "offer", "user_id"])
    html = (plan / "plan.html").read_text()
    assert "<script" not in html and "http" not in html and "Campaign plan" in html


def test_the_same_seed_draws_the_same_plan_and_an_existing_out_needs_force(
    plan: Path, model: Path, real_events, tmp_path
):
    again = tmp_path / "again"
    args = ("campaign", "plan", str(model), "--events", str(real_events), "--as-of", AS_OF)
    assert run_cli(*args, "--out", str(again)).returncode == 0
    assert (again / "assignments.csv").read_bytes() == (plan / "assignments.csv").read_bytes()
    refused = run_cli(*args, "--out", str(again), "--seed", "1")
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert run_cli(*args, "--out", str(again), "--seed", "1", "--force").returncode == 0
    assert (again / "assignments.csv").read_bytes() != (plan / "assignments.csv").read_bytes()


def test_the_readout_finds_the_injected_upgrades_of_the_offer_arm(plan: Path, real_events: Path, tmp_path):
    base = tmp_path / "base"
    assert (
        run_cli("campaign", "readout", str(plan), "--events", str(real_events), "--out", str(base)).returncode
        == 0
    )
    before = json.loads((base / "readout.json").read_text())
    table = read_csv(plan / "assignments.csv")
    buyers = set(read(real_events / PURCHASES)["student_id"])
    won = [u for u in table.loc[table["arm"] == "offer", "user_id"] if u not in buyers][:300]
    newer = copy_tables(real_events, tmp_path / "newer")
    purchases = read(newer / PURCHASES)
    extra = pd.DataFrame({"purchase_id": [f"9{i:06d}" for i in range(len(won))], "student_id": won,
                          "purchase_type": "Annual", "date_purchased": "2022-07-20"})  # fmt: skip
    pd.concat([purchases, extra]).to_csv(newer / PURCHASES, index=False)
    out = tmp_path / "readout"
    done = run_cli("campaign", "readout", str(plan), "--events", str(newer), "--out", str(out))
    assert done.returncode == 0, done.stderr
    r = json.loads((out / "readout.json").read_text())
    assert r["horizon_closed"] is True and r["days_open"] == 0 and r["window_end"] == "2022-08-13"
    assert r["offer"]["upgrades"] == before["offer"]["upgrades"] + 300
    assert r["holdout"] == before["holdout"]
    n1 = r["offer"]["users"]
    gain = 300 / n1
    d = r["effect"]["difference"]
    assert d["value"] == pytest.approx(before["effect"]["difference"]["value"] + gain)
    assert (
        d["low"] < d["value"] < d["high"] and r["effect"]["adjusted"]["low"] < r["effect"]["adjusted"]["high"]
    )
    assert r["incremental_upgrades"]["value"] == pytest.approx(d["value"] * n1)
    assert r["calibration"]["holdout_actual"] == r["holdout"]["upgrades"]
    assert r["srm"]["mismatch"] is False
    assert sum(b["offer"]["upgrades"] for b in r["bands"]) == r["offer"]["upgrades"]
    assert "Campaign readout" in (out / "readout.html").read_text()


def test_a_readout_before_the_horizon_closes_is_interim(model: Path, real_events: Path, tmp_path):
    late = tmp_path / "late"
    args = (
        "campaign",
        "plan",
        str(model),
        "--events",
        str(real_events),
        "--as-of",
        "2022-08-20",
        "--out",
        str(late),
    )
    assert run_cli(*args).returncode == 0
    out = tmp_path / "readout"
    assert (
        run_cli("campaign", "readout", str(late), "--events", str(real_events), "--out", str(out)).returncode
        == 0
    )
    r = json.loads((out / "readout.json").read_text())
    assert r["horizon_closed"] is False and r["interim"] is True and r["days_open"] == 18  # to 2022-09-18


def test_a_tampered_plan_and_tables_ending_before_the_as_of_are_refused(
    plan: Path, real_events: Path, tmp_path
):
    tampered = tmp_path / "tampered"
    shutil.copytree(plan, tampered)
    lines = (tampered / "assignments.csv").read_text().splitlines(keepends=True)
    i = next(k for k, line in enumerate(lines) if line.rstrip().endswith("holdout"))
    lines[i] = lines[i].replace("holdout", "offer")
    (tampered / "assignments.csv").write_text("".join(lines))
    out = tmp_path / "out"
    done = run_cli("campaign", "readout", str(tampered), "--events", str(real_events), "--out", str(out))
    assert done.returncode == 2 and "sha256" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
    early = copy_tables(real_events, tmp_path / "early", before="2022-07-01")
    done = run_cli("campaign", "readout", str(plan), "--events", str(early), "--out", str(out))
    assert done.returncode == 2 and "before the plan's as-of" in done.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.*"))
