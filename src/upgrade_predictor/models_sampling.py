"""The pipelines' samplers: the imbalance strategies and the row sample of a costly family's fit.

Every sampler here is an imbalanced-learn sampler, so it acts on the rows a pipeline is fitted on and
never on the rows it scores."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from imblearn import FunctionSampler
from imblearn.over_sampling import SMOTE, SMOTEN, SMOTENC, RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler
from sklearn.utils import _safe_indexing

from . import config
from .sampling import stratified_rows
from .schema import Schema

SMOTE_K = 5  # imbalanced-learn's default number of neighbours SMOTE interpolates between


def _drawn_rows(sampler: RandomOverSampler | RandomUnderSampler, X: Any, y: Any) -> tuple[Any, Any]:
    """The rows imbalanced-learn's own random sampler draws, taken from X by position.

    The sampler is shown a column of row numbers instead of X: its draw depends on the labels and
    the seed alone, so these are the very rows (in the same order) it would return for X. Given X
    itself it first stacks a frame of numbers and category codes into one object array, a Python
    object per cell: 7 GB for one fit of 1.5M events rows, twice the frame it resamples."""
    y = np.asarray(y)
    sampler.fit_resample(np.arange(len(y)).reshape(-1, 1), y)
    keep = sampler.sample_indices_
    out = _safe_indexing(X, keep)
    if isinstance(out, pd.DataFrame) and isinstance(sampler, RandomOverSampler):
        out = out.reset_index(drop=True)  # repeated rows get labels of their own, as imblearn gives them
    return out, y[keep]


def random_oversample(X: Any, y: Any, seed: int) -> tuple[Any, Any]:
    """Minority rows repeated at random until the classes are even (imblearn's RandomOverSampler)."""
    return _drawn_rows(RandomOverSampler(random_state=seed), X, y)


def random_undersample(X: Any, y: Any, seed: int) -> tuple[Any, Any]:
    """Majority rows dropped at random until the classes are even (imblearn's RandomUnderSampler)."""
    return _drawn_rows(RandomUnderSampler(random_state=seed), X, y)


def _function_sampler(func: Any, **kw: Any) -> FunctionSampler:
    return FunctionSampler(func=func, kw_args=kw, validate=False)


def make_sampler(strategy: str, schema: Schema, seed: int, smote_k: int = SMOTE_K) -> Any:
    """The imbalance strategy's sampler: it resamples the data a pipeline is fitted on, never what it
    scores.

    `smote_k`: SMOTE's neighbours; it needs more minority rows than that in every fit it sees."""
    if strategy in ("none", "class_weight"):
        return "passthrough"
    if strategy == "oversample":
        return _function_sampler(random_oversample, seed=int(seed))
    if strategy == "undersample":
        return _function_sampler(random_undersample, seed=int(seed))
    if strategy == "smote":
        if schema.categorical and schema.numeric:
            # Categories stay categorical up to this step, so SMOTE-NC never invents half a country.
            return SMOTENC(categorical_features=schema.categorical, k_neighbors=smote_k, random_state=seed)
        if schema.categorical:
            return SMOTEN(k_neighbors=smote_k, random_state=seed)
        return SMOTE(k_neighbors=smote_k, random_state=seed)
    raise ValueError(f"unknown imbalance strategy {strategy!r}; choose from {config.STRATEGIES}")


def stratified_sample(X: Any, y: Any, max_rows: int, seed: int) -> tuple[Any, Any]:
    """At most `max_rows` of the rows, stratified by label: as a pipeline's first step (a sampler) it
    thins the rows the pipeline is fitted on, in every fold and in the final fit, and never the rows
    it scores."""
    y = np.asarray(y)
    if len(y) <= max_rows:
        return X, y
    keep = stratified_rows(y, max_rows, seed)
    return _safe_indexing(X, keep), y[keep]


def subsample_step(max_rows: int, seed: int) -> FunctionSampler:
    """The sampler step that fits a costly family on a stratified sample of its training rows."""
    return _function_sampler(stratified_sample, max_rows=int(max_rows), seed=int(seed))
