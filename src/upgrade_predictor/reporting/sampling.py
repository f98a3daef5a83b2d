"""The test rows the costly driver steps score: stratified samples, the estimated cost of scoring a
model (per row and per call), sample sizes that keep to a time budget, and scoring many equal-length
frames in few calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.neighbors import KNeighborsClassifier

from .. import config
from ..models import inner_pipeline
from ..sampling import stratified_rows

STACK_ROWS = 200_000  # rows scored in one call by permutation importance and partial dependence


def sample_rows(X: pd.DataFrame, y: np.ndarray | None, n: int, seed: int) -> pd.DataFrame:
    """n rows of X, stratified by y (a plain random draw without labels); all of X when n covers it."""
    if y is None:
        return X.sample(min(n, len(X)), random_state=seed) if n < len(X) else X
    return X.iloc[stratified_rows(y, n, seed)]


def final_model(estimator: Any) -> Any:
    """The model at the end of a fitted (and possibly calibrated) pipeline."""
    inner = inner_pipeline(estimator)
    return inner.steps[-1][1] if hasattr(inner, "steps") else inner


@dataclass(frozen=True)
class Cost:
    """Estimated CPU seconds to score with a model: per row, and per call whatever its rows."""

    row: float
    call: float


def scoring_cost(estimator: Any) -> Cost:
    """About the same for every family except k-nearest neighbours, which measures each row against
    every training row and reads its whole training set on every call (constants in config, measured
    on the 2-core machine the report's 15 s bar is set for)."""
    model = final_model(estimator)
    if isinstance(model, KNeighborsClassifier):
        cells = model.n_samples_fit_ * model.n_features_in_
        return Cost(
            config.REPORT_ROW_SECONDS + cells * config.REPORT_KNN_CELL_SECONDS,
            config.REPORT_CALL_SECONDS + cells * config.REPORT_KNN_CALL_CELL_SECONDS,
        )
    return Cost(config.REPORT_ROW_SECONDS, config.REPORT_CALL_SECONDS)


def sample_size(budget_s: float, seconds_each: float, low: int, high: int, n: int) -> int:
    """A sample size that spends about budget_s, within [low, high] and at most n."""
    return int(min(n, high, max(low, int(max(budget_s, 0.0) / seconds_each))))


def stacked_proba(estimator: Any, frames: list[pd.DataFrame]) -> np.ndarray:
    """Positive-class probabilities of equal-length frames (one row each in the result), scored in as
    few calls as memory allows."""
    n = len(frames[0])
    per_call = max(1, STACK_ROWS // max(n, 1))
    out = [
        estimator.predict_proba(pd.concat(frames[i : i + per_call], ignore_index=True))[:, 1]
        for i in range(0, len(frames), per_call)
    ]
    return np.concatenate(out).reshape(len(frames), n)
