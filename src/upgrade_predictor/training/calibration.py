"""The final fit of a candidate: calibrated when its strategy distorts probabilities, its threshold picked
on out-of-fold predictions, refitted on every training row, the test set scored once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from .. import evaluation, targeting
from ..calibration import calibrated, calibration_folds, grouped_calibration_splits
from ..evaluation import Scores
from .candidates import REFERENCE, Candidate
from .crossval import cross_validate
from .options import TableOptions
from .splits import Folds


@dataclass
class FittedModel:
    candidate: Candidate
    estimator: Any
    calibrated: bool
    threshold: float
    oof: np.ndarray
    p_train: np.ndarray
    p_test: np.ndarray
    train: Scores
    test: Scores


def platt_oof(oof: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold scores put on a calibrated model's scale: Platt scaling (a logistic fit on the
    score), itself cross-fitted on the calibration folds so no row's value is fitted on that row.
    This costs no refit of the pipeline, where calibrating it inside every fold costs six."""
    platt = LogisticRegression(C=1e6)  # next to no penalty: Platt's two parameters, as fitted
    scores = oof.reshape(-1, 1)
    return cross_val_predict(platt, scores, y, cv=calibration_folds(seed), method="predict_proba")[:, 1]


def fit_final(
    cand: Candidate,
    X_tr,
    y_tr,
    X_te,
    y_te,
    folds: Folds,
    schema,
    cfg: TableOptions,
    oof: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> FittedModel:
    """Calibrate if resampling or class weights distort probabilities, pick the threshold on
    out-of-fold predictions (Platt-scaled like the model when it is calibrated), refit on all training
    rows, then score the test set once. `groups` (of the training rows) keep calibration folds grouped."""
    pipe = cand.build(schema, cfg.seed)
    needs_calibration = cand.family != REFERENCE and cand.strategy != "none"
    estimator = pipe
    if needs_calibration:
        splits = None if groups is None else grouped_calibration_splits(y_tr, groups, cfg.seed)
        # The final fit runs alone, so calibration's five fits may use every worker.
        estimator = calibrated(pipe, cfg.seed, cfg.jobs, splits)
    if oof is None:
        first = [f for f in folds if f[0] == 0]
        oof = cross_validate([cand], X_tr, y_tr, first, schema, cfg.seed, cfg.jobs)[cand.key].oof
    if needs_calibration:
        oof = platt_oof(oof, y_tr, cfg.seed)
    if cand.family == REFERENCE:
        thr = 0.5  # the course's recipe, as published
    else:
        # "profit": the most expected incremental profit under the stated lift, from the probabilities
        # (calibrated like the model), NO_OFFER when no cut-off pays.
        thr = targeting.choose_threshold(y_tr, oof, cfg.threshold, cfg.economics(), cfg.lift())
    estimator.fit(X_tr, y_tr)
    p_train = estimator.predict_proba(X_tr)[:, 1]
    p_test = estimator.predict_proba(X_te)[:, 1]
    return FittedModel(
        cand,
        estimator,
        needs_calibration,
        thr,
        oof,
        p_train,
        p_test,
        evaluation.scores(y_tr, p_train, thr),
        evaluation.scores(y_te, p_test, thr),
    )
