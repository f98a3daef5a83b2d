"""Every default of the tool, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parents[1]  # src/upgrade_predictor -> project root (editable install)

DATA_ENV_VAR = "UPGRADE_PREDICTOR_DATA"
DEFAULT_DATA_RELATIVE = Path("..") / "shared" / "data" / "ml_datasource.csv"

TARGET = "purchased"
SEED = 365
TEST_SIZE = 0.2

# Country codes such as "NA" (Namibia) are values, not missing cells: only an empty cell is missing.
NA_VALUES = [""]

# Audit thresholds.
LEAKAGE_AUC = 0.90  # a single feature this predictive on its own is suspicious, not a triumph
HEAVY_TAIL_RATIO = 10.0  # max / 99th percentile
RARE_CATEGORY_ROWS = 20

# Features.
CLIP_QUANTILE = 0.995  # winsorise at training-fold quantiles instead of dropping rows
MIN_CATEGORY_FREQUENCY = 20  # rarer codes share one "infrequent" column; unseen codes land there too

# The course's reference recipe (kept as a baseline row).
REFERENCE_OUTLIER_LIMITS = {
    "minutes_watched": 1000,
    "courses_started": 10,
    "practice_exams_started": 10,
    "minutes_spent_on_exams": 40,
}
REFERENCE_DROPPED = ["practice_exams_started"]

FAMILIES = ["logreg", "knn", "svm", "tree", "forest", "gbm"]
STRATEGIES = ["none", "class_weight", "oversample", "undersample", "smote"]

# Event data: forecasts of "who upgrades in the next HORIZON days" from dated tables.
EVENTS_ENV_VAR = "UPGRADE_PREDICTOR_EVENTS"
DEFAULT_EVENTS_RELATIVE = Path("..") / "shared" / "data" / "365_events"
HORIZON = 30  # days after the cutoff in which a first upgrade counts
FIRST_DAYS = 14  # daily cutoffs over the first days of tenure, where most upgrades happen
CALENDAR_EVERY_DAYS = 7  # then weekly snapshots on a fixed calendar grid
TEST_DAYS = 28  # the latest cutoffs whose horizon ends inside the data form the test period
ORIGINS = 3  # rolling-origin backtest: monthly origins ending with the test period
ORIGIN_STEP_DAYS = 30
CALIBRATION_DAYS = 28  # the most recent labelled cutoffs recalibrate probabilities for the next period

# Training defaults (the command line and TrainConfig take theirs from here).
BUDGET = "standard"
OBJECTIVE = "pr_auc"  # what Optuna maximises (cross-validated mean)
THRESHOLD = "f1"  # how a table run picks its decision threshold; event runs always use "profit"
JOBS = 2  # parallel fits: one per core of the machines this is built for

# Targeting economics (overridable on the command line).
OFFER_COST = 5.0
UPGRADE_VALUE = 100.0


@dataclass(frozen=True)
class Budget:
    """How much work a run may do."""

    name: str
    cv_splits: int
    cv_repeats: int
    tune_families: int  # how many leading families Optuna tunes
    trials: int  # Optuna trials per tuned family
    timeout_s: float  # safety net per tuned family; trial counts keep runs reproducible
    # Event runs: (user, cutoff) rows are many and heavily overlapping, so families and strategies are
    # compared on a stratified sample of this many rows, one repeat of folds grouped by user (stated in
    # the leaderboard and the report); the chosen pipeline is then fitted on every training row.
    compare_rows: int = 40_000


BUDGETS = {
    "quick": Budget(
        "quick", cv_splits=2, cv_repeats=1, tune_families=1, trials=5, timeout_s=60, compare_rows=12_000
    ),
    "standard": Budget(
        "standard", cv_splits=3, cv_repeats=2, tune_families=2, trials=32, timeout_s=180, compare_rows=24_000
    ),
    "thorough": Budget(
        "thorough", cv_splits=5, cv_repeats=3, tune_families=3, trials=60, timeout_s=900, compare_rows=100_000
    ),
}


def default_data_path() -> Path:
    """The bundled real dataset: env var, then ../shared/data beside the working directory or project."""
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env)
    for base in (Path.cwd(), PROJECT_ROOT):
        candidate = (base / DEFAULT_DATA_RELATIVE).resolve()
        if candidate.exists():
            return candidate
    return (PROJECT_ROOT / DEFAULT_DATA_RELATIVE).resolve()


def default_events_path() -> Path:
    """The bundled event tables: env var, then ../shared/data/365_events beside the working directory
    or the project."""
    env = os.environ.get(EVENTS_ENV_VAR)
    if env:
        return Path(env)
    for base in (Path.cwd(), PROJECT_ROOT):
        candidate = (base / DEFAULT_EVENTS_RELATIVE).resolve()
        if candidate.exists():
            return candidate
    return (PROJECT_ROOT / DEFAULT_EVENTS_RELATIVE).resolve()


# Scoring, serving and drift checks (the defaults of `score`, `serve` and `drift`).
MAX_REJECT_SHARE = 0.05  # `score` exits 1 when more of the rows than this are rejected
SCORE_WORKERS = 2  # Arrow batches scored at once by `score`
SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8000
SERVE_MAX_BODY_BYTES = 2 * 1024 * 1024  # larger request bodies get 413
SERVE_MAX_USERS = 10_000  # users per request
SERVE_WORKERS = 1  # service processes, each with its own copy of the model
PSI_WARN = 0.1  # population stability index: the usual rule of thumb (0.1 shift, 0.2 drift)
PSI_ALERT = 0.2
NEW_CATEGORY_SHARE = 0.01  # share of rows with codes never seen in training that is drift
RANGE_SHARE = 0.01  # share of rows outside the training min..max that is drift
