"""Shared fixtures: small synthetic frames for unit tests, and one real training run for end-to-end tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from upgrade_predictor import config

REAL_DATA = config.default_data_path()


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
