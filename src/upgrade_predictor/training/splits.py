"""The hold-out split and the CV folds of a run, and whether a table holds enough of each class for them."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from .. import config
from ..calibration import calibration_folds
from ..data_audit import feature_keys
from ..dataset import Dataset
from ..errors import InputError
from .options import TableOptions

# Rows of each class every CV training fold and the whole training part must hold: the final fit's
# calibration splits the training part 5 ways, the SVM's own Platt scaling splits each fit 3 ways,
# and SMOTE needs neighbours.
MIN_CLASS_PER_FOLD = 5

Folds = list[tuple[int, np.ndarray, np.ndarray]]  # (repeat, training rows, validation rows)


def row_groups(ds: Dataset, cfg: TableOptions) -> np.ndarray | None:
    """The group of every row that must stay on one side of the hold-out and every fold: the --group
    column, or feature-identical rows with --group-duplicates; None when rows split freely."""
    if cfg.group_column:
        return ds.groups
    return feature_keys(ds.X).to_numpy() if cfg.group_duplicates else None


def holdout_split(y: np.ndarray, groups: np.ndarray | None, test_size: float, seed: int):
    """Stratified hold-out; the same rows as train_test_split(test_size, random_state=seed, stratify=y)."""
    idx = np.arange(len(y))
    if groups is None:
        tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=y)
        return np.sort(tr), np.sort(te)
    n_splits = max(2, round(1 / test_size))
    tr, te = next(StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(idx, y, groups))
    return tr, te


def cv_folds(y: np.ndarray, groups: np.ndarray | None, budget: config.Budget, seed: int) -> Folds:
    """Repeated stratified k-fold (grouped when asked), as a list of (repeat, train, validation)."""
    folds: Folds = []
    for r in range(budget.cv_repeats):
        if groups is None:
            splitter = StratifiedKFold(budget.cv_splits, shuffle=True, random_state=seed + r)
            parts = splitter.split(np.zeros(len(y)), y)
        else:
            splitter = StratifiedGroupKFold(budget.cv_splits, shuffle=True, random_state=seed + r)
            parts = splitter.split(np.zeros(len(y)), y, groups)
        folds.extend((r, tr, va) for tr, va in parts)
    return folds


def _minority(y: np.ndarray) -> int:
    return int(min(y.sum(), len(y) - y.sum()))


def fit_class_counts(y: np.ndarray, folds: Folds, seed: int) -> list[tuple[int, int]]:
    """(rows, rows of the smaller class) of every fit a run makes on the training part `y`: each CV
    training fold, and the calibration folds of the final fit."""
    sets = [y[tr] for _, tr, _ in folds]
    if _minority(y) >= MIN_CLASS_PER_FOLD:  # fewer is refused before training
        sets += [y[a] for a, _ in calibration_folds(seed).split(np.zeros(len(y)), y)]
    return [(len(s), _minority(s)) for s in sets]


def _enough_of_each_class(y: np.ndarray, groups, test_size: float, budget: config.Budget, seed: int) -> bool:
    """Whether a run on labels `y` has MIN_CLASS_PER_FOLD rows of each class in every CV training fold
    and the whole training part, and some in the test set and every validation fold (to score them)."""
    tr, te = holdout_split(y, groups, test_size, seed)
    folds = cv_folds(y[tr], None if groups is None else groups[tr], budget, seed)
    held = [y[te], *(y[tr][va] for _, _, va in folds)]
    fitted = [y[tr], *(y[tr][f] for _, f, _ in folds)]
    return min(map(_minority, held)) >= 1 and min(map(_minority, fitted)) >= MIN_CLASS_PER_FOLD


def needed_class_rows(others: int, test_size: float, budget: config.Budget, seed: int) -> int:
    """The fewest rows of the smaller class a table with `others` rows of the larger one needs for
    `budget` (found by running the same splits on made-up labels)."""
    others = min(others, 2_000)  # the split of the small class hardly depends on the large one's size
    for n in range(MIN_CLASS_PER_FOLD, 100_000):
        y = np.r_[np.ones(n, dtype=int), np.zeros(max(others, n), dtype=int)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if _enough_of_each_class(y, None, test_size, budget, seed):
                return n
    raise AssertionError("unreachable: a large enough class always splits")


def check_classes(ds: Dataset, groups: np.ndarray | None, cfg: TableOptions, budget: config.Budget) -> None:
    """Refuse a table too small for the budget's folds: fewer than 50 rows, or fewer than
    MIN_CLASS_PER_FOLD rows of either class in a CV training fold or the whole training part."""
    n_pos = int(ds.y.sum())
    small, label = min((n_pos, ds.schema.positive_label), (ds.n - n_pos, ds.schema.negative_label))
    if ds.n < 50:
        raise InputError(f"too few rows to train and test: {ds.n} rows; need at least 50")
    if small >= MIN_CLASS_PER_FOLD:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                if _enough_of_each_class(ds.y, groups, cfg.test_size, budget, cfg.seed):
                    return
            except ValueError:  # StratifiedGroupKFold: fewer groups than folds
                if groups is None:
                    raise
                what = f"--group {cfg.group_column}" if cfg.group_column else "--group-duplicates"
                raise InputError(
                    f"{what}: {len(np.unique(groups))} groups of rows are too few to hold out "
                    f"{cfg.test_size:.0%} and cross-validate {budget.cv_splits} ways; "
                    "group by a finer column, or leave the option out"
                ) from None
    needs = {
        name: needed_class_rows(ds.n - small, cfg.test_size, b, cfg.seed)
        for name, b in config.BUDGETS.items()
    }
    easiest = min(needs, key=lambda name: needs[name])
    hint = (
        f", or use --budget {easiest} (needs {needs[easiest]})" if needs[easiest] < needs[budget.name] else ""
    )
    raise InputError(
        f"too few rows of one class to train and test: {small} of {ds.n} rows have "
        f"{ds.schema.target} = {label!r}; the {budget.name} budget needs at least {needs[budget.name]} of "
        f"them, so that each of its training folds holds {MIN_CLASS_PER_FOLD} (for calibration, SMOTE's "
        f"neighbours and the SVM's Platt scaling). Add rows of that class{hint}"
    )
