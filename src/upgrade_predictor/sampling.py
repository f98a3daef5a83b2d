"""The one stratified sampler: which rows a sample keeps, in the label's proportions."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def stratified_rows(y: np.ndarray, n: int, seed: int, among: np.ndarray | None = None) -> np.ndarray:
    """Positions of n rows drawn without replacement, in the label's proportions, in ascending order.

    `among`: draw from these positions of `y` only (returned as given when n covers them); else from
    all its rows (all of them when n covers them). A class too rare to stratify (a single row) makes
    it a plain random draw."""
    idx = np.arange(len(y)) if among is None else among
    if n >= len(idx):
        return idx
    labels = y if among is None else y[among]
    try:
        keep, _ = train_test_split(idx, train_size=n, stratify=labels, random_state=seed)
    except ValueError:  # a class with a single row cannot be split in proportion
        keep = np.random.default_rng(seed).choice(idx, n, replace=False)
    return np.sort(keep)
