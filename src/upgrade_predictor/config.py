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


BUDGETS = {
    "quick": Budget("quick", cv_splits=2, cv_repeats=1, tune_families=1, trials=5, timeout_s=60),
    "standard": Budget("standard", cv_splits=3, cv_repeats=2, tune_families=2, trials=32, timeout_s=180),
    "thorough": Budget("thorough", cv_splits=5, cv_repeats=3, tune_families=3, trials=60, timeout_s=900),
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
