"""Shared fixtures: small synthetic frames for unit tests, and one real training run for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from upgrade_predictor import config

REAL_DATA = config.default_data_path()


# The mapping of the small event folders the source and feature tests write (users, purchases, lessons).
SMALL_MAPPING = """
[users]
file = "users.csv"
id = "user_id"
time = "signup"
attributes = ["country"]

[conversions]
file = "purchases.csv"
id = "user_id"
time = "paid_on"

[[activity]]
name = "learning"
file = "learning.csv"
id = "user_id"
time = "day"
measures = ["minutes"]
item = "course"
"""


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The command line in a child process, as a user runs it (exit codes and stderr as they see them)."""
    return subprocess.run(
        [sys.executable, "-m", "upgrade_predictor.cli", *args], cwd=cwd, capture_output=True, text=True
    )


def synthetic_frame(n: int = 600, seed: int = 0, positive_share: float = 0.2) -> pd.DataFrame:
    """A frame shaped like the real table, with an upgrade signal in minutes and exams."""
    rng = np.random.default_rng(seed)
    minutes = rng.gamma(0.6, 40, n)
    exams = rng.poisson(0.4, n)
    passed = np.minimum(exams, rng.poisson(0.3, n))
    logit = -3 + 0.02 * minutes + 0.8 * passed + rng.normal(0, 1, n)
    y = (logit > np.quantile(logit, 1 - positive_share)).astype(int)
    return pd.DataFrame(
        {
            "student_country": rng.choice(
                ["US", "IN", "GB", "NA", "DE", "NG", "ZW"], n, p=[0.3, 0.25, 0.15, 0.1, 0.1, 0.07, 0.03]
            ),
            "days_on_platform": rng.integers(0, 300, n),
            "minutes_watched": minutes.round(1),
            "courses_started": rng.integers(1, 5, n),
            "practice_exams_started": exams,
            "practice_exams_passed": passed,
            "minutes_spent_on_exams": (exams * rng.gamma(1, 8, n)).round(2),
            "purchased": y,
        }
    )


@pytest.fixture
def synthetic_csv(tmp_path: Path) -> Path:
    path = tmp_path / "synthetic.csv"
    synthetic_frame().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.exists():
        msg = f"the real dataset is missing at {REAL_DATA} (set {config.DATA_ENV_VAR})"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return REAL_DATA


@pytest.fixture(scope="session")
def real_events() -> Path:
    """The real event tables (../shared/data/365_events or $UPGRADE_PREDICTOR_EVENTS); missing under CI
    is a failure, elsewhere a skip."""
    path = config.default_events_path()
    if not (path / "365_student_info.csv").exists():
        msg = f"the real event tables are missing at {path} (set {config.EVENTS_ENV_VAR})"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def real_users(real_events: Path) -> pd.DataFrame:
    """user_id, registered, first_upgrade (and country) of the real tables, read with plain pandas."""
    from upgrade_predictor.forecast.design import users_from_tables

    info = pd.read_csv(real_events / "365_student_info.csv", keep_default_na=False, na_values=[""])
    purchases = pd.read_csv(real_events / "365_student_purchases.csv", keep_default_na=False, na_values=[""])
    return users_from_tables(info, purchases)


@pytest.fixture(scope="session")
def real_run(real_data: Path, tmp_path_factory) -> Path:
    """One `train --budget standard` run on the real file, shared by every end-to-end test."""
    from typer.testing import CliRunner

    from upgrade_predictor.cli import app

    out = tmp_path_factory.mktemp("real") / "run"
    result = CliRunner().invoke(
        app, ["train", "--data", str(real_data), "--out", str(out), "--budget", "standard"]
    )
    assert result.exit_code == 0, result.output
    return out


def fit_bundle(
    folder: Path,
    family: str = "gbm",
    strategy: str = "none",
    calibrate: bool = False,
    n: int = 800,
    threshold: float = 0.4,
    id_column: str | None = None,
    rename: dict[str, str] | None = None,
):
    """Fit a small pipeline on a synthetic frame and save it as training does (metadata as a dict);
    return the bundle's path and the fitted estimator."""
    from upgrade_predictor import bundle, calibration, dataset, models, profile

    folder.mkdir(parents=True, exist_ok=True)
    frame = synthetic_frame(n, seed=1).rename(columns=rename or {})
    if id_column:
        frame.insert(0, id_column, [f"u{i}" for i in range(n)])
    csv = folder / "train.csv"
    frame.to_csv(csv, index=False)
    ds = dataset.load_dataset(csv, id_column=id_column)
    pipe = models.build_pipeline(ds.schema, family, strategy)
    est = calibration.calibrated(pipe) if calibrate else pipe
    est.fit(ds.X, ds.y)
    p = est.predict_proba(ds.X)[:, 1]
    meta = {
        "schema": ds.schema.to_dict(),
        "threshold": threshold,
        "key": f"{family}/{strategy}",
        "family": family,
        "strategy": strategy,
        "calibrated": calibrate,
        "training": {
            "source": ds.source,
            "fingerprint": ds.fingerprint,
            "rows": ds.n,
            "positive_share": float(ds.y.mean()),
        },
        "reference_profile": profile.reference_profile(ds.X, p, ds.schema).to_dict(),
    }
    name = f"{family}_{strategy}{'_cal' if calibrate else ''}.zip"
    return bundle.save_bundle(folder / name, est, meta, ""), est


def make_bundle(folder: Path, **kw) -> Path:
    """A bundle fitted as fit_bundle does (same keywords); only its path."""
    return fit_bundle(folder, **kw)[0]


def users_frame(n: int = 500, seed: int = 7, ids: str | None = None) -> pd.DataFrame:
    """Users to score: a synthetic frame without its label, with an id column first when named."""
    df = synthetic_frame(n, seed=seed).drop(columns="purchased")
    if ids:
        df.insert(0, ids, [f"id{i:05d}" for i in range(n)])
    return df


def synthetic_events(folder: Path, n_users: int = 600, seed: int = 0, end: str = "2022-08-31") -> Path:
    """A small folder in the 365 layout: users who are more active upgrade more, many on day 0.

    Every dated table the built-in mapping reads is written (CSV), plus the undated quizzes table."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    last = pd.Timestamp(end)
    reg = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 213, n_users), unit="D")
    ids = np.arange(100_000, 100_000 + n_users)
    drive = rng.gamma(1.0, 1.0, n_users)  # engagement propensity
    upgrades = rng.random(n_users) < 1 / (1 + np.exp(-(drive - 3.0)))
    wait = np.where(rng.random(n_users) < 0.45, 0, rng.exponential(12, n_users).astype(int))
    bought = reg + pd.to_timedelta(wait, unit="D")
    bought_ok = upgrades & (bought <= last)
    info = pd.DataFrame(
        {
            "student_id": ids,
            "student_country": rng.choice(["IN", "US", "NA", "GB"], n_users),
            "date_registered": reg.strftime("%Y-%m-%d"),
        }
    )
    purchases = pd.DataFrame(
        {
            "purchase_id": np.arange(bought_ok.sum()),
            "student_id": ids[bought_ok],
            "purchase_type": "Annual",
            "date_purchased": bought[bought_ok].strftime("%Y-%m-%d"),
        }
    )
    rows = []
    for i in range(n_users):
        span = max((last - reg[i]).days, 0)
        k = rng.poisson(1 + 4 * drive[i])
        days = np.sort(np.minimum(rng.exponential(8 + 10 * drive[i], k).astype(int), span))
        rows += [
            (
                ids[i],
                int(rng.integers(1, 6)),
                round(float(rng.gamma(2, 5)), 1),
                (reg[i] + pd.Timedelta(days=int(d))).strftime("%Y-%m-%d"),
            )
            for d in days
        ]
    rows.append((ids[0], 1, 1.0, end))  # the data run to `end`
    learning = pd.DataFrame(rows, columns=["student_id", "course_id", "minutes_watched", "date_watched"])
    learning = learning.drop_duplicates(["student_id", "course_id", "date_watched"])
    eng = learning.drop_duplicates(["student_id", "date_watched"]).reset_index(drop=True)
    engagement = pd.DataFrame(
        {
            "engagement_id": np.arange(len(eng)),
            "student_id": eng["student_id"],
            "engagement_quizzes": rng.integers(0, 2, len(eng)),
            "engagement_exams": rng.integers(0, 2, len(eng)),
            "engagement_lessons": 1,
            "date_engaged": eng["date_watched"],
        }
    )
    ex = eng.sample(frac=0.2, random_state=seed).reset_index(drop=True)
    exams = pd.DataFrame(
        {
            "exam_attempt_id": np.arange(len(ex)),
            "student_id": ex["student_id"],
            "exam_id": rng.integers(1, 30, len(ex)),
            "exam_result": rng.integers(0, 101, len(ex)),
            "exam_completion_time": rng.gamma(2, 4, len(ex)).round(2),
            "date_exam_completed": ex["date_watched"],
        }
    )
    hub = eng.sample(frac=0.02, random_state=seed + 1).reset_index(drop=True)
    questions = pd.DataFrame(
        {
            "hub_question_id": np.arange(len(hub)),
            "student_id": hub["student_id"],
            "date_question_asked": hub["date_watched"],
        }
    )
    rt = eng.sample(frac=0.03, random_state=seed + 2).reset_index(drop=True)
    ratings = pd.DataFrame(
        {
            "course_id": rng.integers(1, 6, len(rt)),
            "student_id": rt["student_id"],
            "course_rating": rng.integers(1, 6, len(rt)),
            "date_rated": rt["date_watched"],
        }
    )
    quizzes = pd.DataFrame({"student_id": ids[:50], "quiz_id": 1, "question_id": 2, "answer_id": 3})
    for name, df in [
        ("365_student_info", info),
        ("365_student_purchases", purchases),
        ("365_student_learning", learning),
        ("365_student_engagement", engagement),
        ("365_student_exams", exams),
        ("365_student_hub_questions", questions),
        ("365_course_ratings", ratings),
        ("365_student_quizzes", quizzes),
    ]:
        df.to_csv(folder / f"{name}.csv", index=False)
    return folder


CHROMIUM = Path("/usr/bin/chromium")  # Debian's; `make test` installs it when missing
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.contextmanager
def headless_chromium() -> Iterator[Any]:
    """A Playwright browser on Debian's Chromium: a failure in CI, a skip elsewhere when it is missing."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if os.environ.get("CI"):
        from playwright.sync_api import sync_playwright
    else:
        sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
