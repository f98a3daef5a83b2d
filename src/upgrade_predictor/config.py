"""Every default of the tool, in one place."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parents[1]  # src/upgrade_predictor -> project root (editable install)

DATA_ENV_VAR = "UPGRADE_PREDICTOR_DATA"
DEFAULT_DATA_RELATIVE = Path("..") / "shared" / "data" / "ml_datasource.csv"

TARGET = "purchased"
SEED = 365
MAX_SEED = 2**32 - 1  # NumPy's and scikit-learn's seeds are 32-bit
TEST_SIZE = 0.2

# Country codes such as "NA" (Namibia) are values, not missing cells: only an empty cell is missing.
NA_VALUES = [""]

# Audit thresholds.
LEAKAGE_AUC = 0.90  # a single feature this predictive on its own is suspicious, not a triumph
HEAVY_TAIL_RATIO = 10.0  # max / 99th percentile
RARE_CATEGORY_ROWS = 20

# Features.
CLIP_QUANTILE = 0.995  # winsorise at training-fold quantiles instead of dropping rows
# Medians and clipping quantiles of a training fit are estimated on at most this many random rows of it
# (the bundled table is used whole; an events design of 600k+ rows is sampled).
FIT_STAT_ROWS = 100_000
# Yeo-Johnson lambdas cost dozens of passes over a column each: they are fitted on a smaller sample.
POWER_FIT_ROWS = 30_000
MIN_CATEGORY_FREQUENCY = 20  # rarer codes share one "infrequent" column; unseen codes land there too
# An events design repeats a user's country on each of their ~26 (user, cutoff) rows, so 20 rows can be
# one user: the backtest's and final fits give a code its own column only when it covers this share of
# their rows too (0.05%: about 10 users of the real tables' fits), which bounds the one-hot width, and
# with it a fit's memory, by the design's spread of countries rather than by its size.
EVENTS_CATEGORY_SHARE = 0.0005

# The course's reference recipe (kept as a baseline row).
REFERENCE_OUTLIER_LIMITS = {
    "minutes_watched": 1000,
    "courses_started": 10,
    "practice_exams_started": 10,
    "minutes_spent_on_exams": 40,
}
REFERENCE_DROPPED = ["practice_exams_started"]

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
    # Event runs: the model trains on the design rows of a random sample of users holding at most this
    # many rows (all rows of a sampled user, so probabilities stay calibrated without any correction);
    # each backtest period scores every free user, or a random sample of users holding at most
    # `eval_rows` of its rows. Both are stated in the run's plan line and the report.
    design_rows: int = 1_500_000
    eval_rows: int = 1_000_000
    # Table runs: a family whose fit costs grow faster than its rows (neighbour search, kernels, deep
    # trees) fits on a stratified sample of at most this many of the rows of each fit (every CV fold,
    # every tuning trial and the final model alike; stated in the leaderboard); cheaper families get
    # caps only far beyond the real table's size. Keyed by a family's row-cap class
    # (models.Family.row_cap: "neighbours", "costly", "cheap"); "reference" is the course recipe's
    # forest. A class not named here fits on every row.
    fit_rows: dict[str, int] = field(default_factory=dict)
    # Table runs: above this many training rows a family is left out (a printed note says so): KNN
    # scores each validation row against all its fit rows, a cost no sample of fit rows bounds.
    max_rows: dict[str, int] = field(default_factory=dict)
    # Table runs: above this many rows per training fold, tuning runs proportionally fewer trials
    # (at least 3), so its time stays bounded as data grow; the count depends only on the data size.
    tune_rows: int = 1_000_000_000


BUDGETS = {
    "quick": Budget(
        "quick",
        cv_splits=2,
        cv_repeats=1,
        tune_families=1,
        trials=5,
        timeout_s=60,
        compare_rows=12_000,
        design_rows=300_000,
        eval_rows=300_000,
        # Quick also fits the cheap families on at most 20,000 rows: beyond that its final fit, not the
        # comparison, would dominate the run.
        fit_rows={"neighbours": 3_000, "costly": 5_000, "cheap": 20_000, "reference": 20_000},
        max_rows={"knn": 100_000},
        tune_rows=10_000,
    ),
    "standard": Budget(
        "standard",
        cv_splits=3,
        cv_repeats=2,
        tune_families=2,
        trials=32,
        timeout_s=180,
        compare_rows=12_000,
        design_rows=1_500_000,
        eval_rows=1_000_000,
        fit_rows={"neighbours": 5_000, "costly": 10_000, "cheap": 100_000, "reference": 20_000},
        max_rows={"knn": 200_000},
        tune_rows=10_000,
    ),
    "thorough": Budget(
        "thorough",
        cv_splits=5,
        cv_repeats=3,
        tune_families=3,
        trials=60,
        timeout_s=900,
        compare_rows=100_000,
        design_rows=5_000_000,
        eval_rows=3_000_000,
        fit_rows={"neighbours": 20_000, "costly": 40_000, "cheap": 500_000, "reference": 40_000},
        max_rows={"knn": 500_000},
        tune_rows=50_000,
    ),
}

# Events runs: every fit of a family of these row-cap classes (KNN, SVM, forests) uses a stratified
# sample of at most this many rows, whatever the budget; cheap families fit on every row.
EVENTS_FIT_ROWS = {"neighbours": 60_000, "costly": 60_000}
# The tenure-only and recency-only baselines of a backtest origin are fitted on at most this many rows.
BASELINE_FIT_ROWS = 100_000
# The backtest's and selection's fits run side by side (threads sharing the design) up to this many
# training rows, one at a time beyond: two fits of a 1.5M-row design with their intermediate matrices
# exceeded 20 GB, and two of the real tables' ~500k-row fits side by side took the run to 2.9 GB (1.8 GB
# one at a time, for 17 s more).
PARALLEL_FIT_ROWS = 300_000
# Point-in-time features are built and scored this many (user, cutoff) rows at a time, so memory follows
# the chunk, not the number of users.
FEATURE_CHUNK_ROWS = 500_000

# A time-limited run (--time-limit) shares its wall clock: the comparison ends by this share of the
# limit, tuning by the next, and the rest is kept for the final fit, the files and the report.
TIME_SHARES = {"comparison": 0.45, "tuning": 0.70}


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
SERVE_QUEUE_SIZE = 256  # requests per process admitted (waiting or in work); more get 503
PSI_WARN = 0.1  # population stability index: the usual rule of thumb (0.1 shift, 0.2 drift)
PSI_ALERT = 0.2
NEW_CATEGORY_SHARE = 0.01  # share of rows with codes never seen in training that is drift
RANGE_SHARE = 0.01  # share of rows outside the training min..max that is drift

# Exit codes: 0 done; 1 a finding (drift, too many rejects); 2 bad input; 70 an internal error (the
# trace goes to a log file, sysexits' EX_SOFTWARE); 130 interrupted (Ctrl-C); 143 stopped by SIGTERM.
EXIT_FINDING = 1
EXIT_INPUT = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
LOG_DIR_ENV = "UPGRADE_PREDICTOR_LOG_DIR"  # where internal-error traces go [default: ~/.cache/...]


def log_dir() -> Path:
    """Folder for internal-error traces."""
    return Path(os.environ.get(LOG_DIR_ENV) or Path.home() / ".cache" / "upgrade-predictor")


def check_number(
    option: str,
    value: float | None,
    low: float | None = None,
    high: float | None = None,
    *,
    above: bool = False,
) -> None:
    """Refuse a numeric option that is NaN, infinite or out of [low, high] ((low, high] with `above`)."""
    from .errors import InputError  # errors imports nothing; kept local so config stays a leaf

    if value is None:
        return
    if not math.isfinite(value):
        raise InputError(f"{option} {value:g}: give a finite number")
    if low is not None and (value <= low if above else value < low):
        raise InputError(f"{option} {value:g}: must be {'above' if above else 'at least'} {low:g}")
    if high is not None and value > high:
        raise InputError(f"{option} {value:g}: must be at most {high:g}")


# The option values that are choices, as types: the command line shows and checks them as choices.
BudgetName = Literal["quick", "standard", "thorough"]
# The model families' names, for the command line's choices without loading the model stack;
# models.FAMILIES is the registry of what each family is, and refuses to load unless its names are these.
FamilyName = Literal["logreg", "knn", "svm", "tree", "forest", "gbm"]
ThresholdRule = Literal["f1", "profit"]
Objective = Literal["accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"]

# The report: steps that call the model many times run on stratified samples of the test rows, sized
# from the model's estimated cost so the report takes seconds for any family on up to 100,000 rows
# (every size is stated in the report). Budgets are CPU seconds of one thread, measured on the 2-core
# machine the report's 15 s bar is set for.
REPORT_PERMUTATION_ROWS = 5000  # permutation importance, at most (at least the MIN, whatever the cost)
REPORT_PERMUTATION_MIN_ROWS = 100
REPORT_PERMUTATION_SECONDS = 3.0  # for the chosen model and the one without the leaky columns together
REPORT_PDP_ROWS = 500  # partial dependence averages
REPORT_PDP_MIN_ROWS = 30
REPORT_PDP_SECONDS = 1.5
REPORT_SHAP_ROWS = 2000  # SHAP summary where exact values are cheap (LightGBM, logistic regression, trees)
REPORT_SHAP_MIN_ROWS = 10
REPORT_SHAP_SECONDS = 5.0  # exact TreeSHAP: bounds the sample for forests of deep trees
REPORT_AGNOSTIC_ROWS = 200  # the model-agnostic explainer (k-nearest neighbours, SVM), at most
REPORT_AGNOSTIC_SECONDS = 3.0
REPORT_AGNOSTIC_BACKGROUND = 5  # rows standing in for "column unknown"
REPORT_AGNOSTIC_COALITIONS = 32  # column subsets per row (all when fewer; at least 4 per column)
REPORT_ROW_SECONDS = 3e-5  # scoring one row (pipeline and model), every family but KNN
REPORT_CALL_SECONDS = 1.5e-2  # one call of the pipeline, whatever its rows
REPORT_KNN_CELL_SECONDS = 5e-11  # KNN, per training row x encoded column: for each row scored,
REPORT_KNN_CALL_CELL_SECONDS = 1e-9  # and for each call (one thread: the report runs on one)
REPORT_TREESHAP_NODE_SECONDS = 5e-7  # path-dependent TreeSHAP: per tree node, for each row explained
