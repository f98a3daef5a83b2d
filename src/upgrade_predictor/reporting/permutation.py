"""Permutation importance: the drop in test PR AUC when one input column is shuffled."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score
from sklearn.utils import check_random_state

from ..sampling import stratified_rows
from .sampling import stacked_proba

PERMUTATION_REPEATS = 3


def permutation_table(
    estimator: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    seed: int,
    repeats: int = PERMUTATION_REPEATS,
    rows: int | None = None,
) -> pd.DataFrame:
    """Drop in test PR AUC when one input column is shuffled (the pipeline takes the original columns),
    on a stratified sample of `rows` rows (all rows when None).

    The numbers are sklearn.inspection.permutation_importance's (the same shuffles, drawn the way it
    draws them, and the same scores; a test holds them equal), but every shuffled copy is scored in
    one call: sklearn calls the model once per column and repeat, and a model whose every call reads
    its whole training set (k-nearest neighbours) spent seconds on the calls alone."""
    keep = stratified_rows(y, len(y) if rows is None else rows, seed)
    Xs, ys = X.iloc[keep].reset_index(drop=True), np.asarray(y)[keep]
    column_seed = check_random_state(seed).randint(np.iinfo(np.int32).max + 1)
    frames = [Xs]
    for c in Xs.columns:
        rng, order, values = check_random_state(column_seed), np.arange(len(Xs)), Xs[c].to_numpy()
        for _ in range(repeats):  # as sklearn does: each repeat reshuffles the shuffled column
            rng.shuffle(order)
            values = values[order]
            frames.append(Xs.assign(**{c: values}))
    p = stacked_proba(estimator, frames)
    base = average_precision_score(ys, p[0])
    drops = np.array([base - average_precision_score(ys, q) for q in p[1:]]).reshape(Xs.shape[1], repeats)
    return (
        pd.DataFrame({"name": Xs.columns, "importance": drops.mean(axis=1), "sd": drops.std(axis=1)})
        .sort_values("importance", ascending=False)
        .reset_index(drop=True)
    )
