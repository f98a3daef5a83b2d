"""Platt scaling of a whole pipeline, and the folds inside which the pipeline is fitted for it."""

from __future__ import annotations

import numpy as np
from imblearn.pipeline import Pipeline
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from . import config


def calibrated(
    pipeline: Pipeline,
    seed: int = config.SEED,
    n_jobs: int | None = None,
    splits: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> CalibratedClassifierCV:
    """Undo the probability distortion of resampling or class weights (Platt scaling keeps the ranking).

    ensemble=False: one model refitted on all rows, the calibrator fitted on its cross-validated
    scores, so scoring costs one model, not five. `n_jobs` spreads those fits (only where no outer
    loop runs in parallel already). `splits` (from grouped_calibration_splits) replace the folds when
    rows are grouped."""
    cv = calibration_folds(seed) if splits is None else splits
    return CalibratedClassifierCV(pipeline, method="sigmoid", ensemble=False, cv=cv, n_jobs=n_jobs)


def calibration_folds(seed: int = config.SEED) -> StratifiedKFold:
    """The folds inside which calibrated() fits the pipeline (the run's class-count checks use them too)."""
    return StratifiedKFold(5, shuffle=True, random_state=seed)


def grouped_calibration_splits(
    y: np.ndarray, groups: np.ndarray, seed: int = config.SEED
) -> list[tuple[np.ndarray, np.ndarray]]:
    """calibration_folds with each group on one side, so the calibrator never learns from scores of
    rows whose group the model saw (CalibratedClassifierCV passes no groups to its splitter)."""
    splitter = StratifiedGroupKFold(5, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y, groups))
