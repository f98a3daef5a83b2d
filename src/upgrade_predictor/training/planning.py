"""The fit plan of a run: what the data and the budget let each family do (row caps, SMOTE's neighbours,
families left out), decided once from the folds, each decision stated in a note."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import config
from ..errors import InputError
from ..models import FAMILIES, KNN_MAX_NEIGHBOURS, SMOTE_K, row_caps
from ..runs.options import RunOptions
from .candidates import REFERENCE, Candidate
from .splits import MIN_CLASS_PER_FOLD, Folds, fit_class_counts


@dataclass(frozen=True)
class FitPlan:
    """What the data and the budget let each family do, decided once per run from its folds."""

    train_rows: int
    fold_rows: int  # rows of the largest CV training fold
    fit_rows: dict[str, int] = field(default_factory=dict)  # family -> at most this many rows per fit
    smote_k: int = SMOTE_K
    left_out: dict[str, str] = field(default_factory=dict)  # family or "family/strategy" -> why
    notes: list[str] = field(default_factory=list)

    def candidate(self, family: str, strategy: str, params: dict | None = None, tuned: bool = False):
        cap = self.fit_rows.get(family)
        return Candidate(family, strategy, dict(params or {}), tuned, cap, self.smote_k)

    def allows(self, family: str, strategy: str) -> bool:
        return family not in self.left_out and f"{family}/{strategy}" not in self.left_out


def plan_fits(
    y: np.ndarray, folds: Folds, cfg: RunOptions, budget: config.Budget, reference: bool = True
) -> FitPlan:
    """Row caps of costly families, families too costly for this many rows, SMOTE's neighbours, and
    KNN where its fits hold fewer rows than it may take neighbours; every decision gets a note.
    `reference`: whether the course recipe runs too (its forest has a cap of its own)."""
    n, fold_rows = len(y), max(len(tr) for _, tr, _ in folds)
    fams = [f for f in cfg.families if f in FAMILIES]
    left_out = _too_costly(fams, n, budget)
    runs = [f for f in fams if f not in left_out] + ([REFERENCE] if reference else [])
    caps = {f: cap for f in runs if 0 < (cap := row_caps(budget.fit_rows).get(f, 0)) < n}
    counts = fit_class_counts(y, folds, cfg.seed)

    def smallest(family: str) -> tuple[int, int]:
        """Rows and smaller-class rows of the poorest fit of `family` (after its cap)."""
        cap = caps.get(family)
        return (
            min(min(r, cap) if cap else r for r, _ in counts),
            min(m * cap // r if cap and r > cap else m for r, m in counts),
        )

    notes = [
        f"{FAMILIES[f].label if f in FAMILIES else 'the course reference'} fits on a stratified sample "
        f"of at most {cap:,} rows ({fold_rows:,} rows per training fold, {n:,} in the final fit)"
        for f, cap in caps.items()
    ]
    fewest = min(smallest(f)[1] for f in fams) if fams else MIN_CLASS_PER_FOLD
    smote_k = max(1, min(SMOTE_K, fewest - 1))
    if "smote" in cfg.strategies and smote_k < SMOTE_K:
        notes.append(
            f"SMOTE interpolates between {smote_k} nearest neighbour(s) instead of {SMOTE_K}: the smallest "
            f"fit holds {fewest} rows of the smaller class"
        )
    if "knn" in fams and "knn" not in left_out:
        left_out.update(_knn_left_out(*smallest("knn"), "undersample" in cfg.strategies))
    if fams and all(f in left_out for f in fams):
        raise InputError(
            f"--families {','.join(fams)}: none can train on this table ({'; '.join(left_out.values())}); "
            "add another family, e.g. --families logreg,gbm"
        )
    return FitPlan(n, fold_rows, caps, smote_k, left_out, notes + list(left_out.values()))


def _too_costly(families: list[str], n: int, budget: config.Budget) -> dict[str, str]:
    """The families the budget runs only up to fewer training rows than `n`, each with why."""
    left_out: dict[str, str] = {}
    for f in families:
        most = budget.max_rows.get(f)
        if most is not None and n > most:
            left_out[f] = (
                f"{FAMILIES[f].label} left out: the {budget.name} budget runs it up to {most:,} training "
                f"rows ({n:,} here): beyond that its cost outgrows the budget"
            )
    return left_out


def _knn_left_out(rows: int, minority: int, undersample: bool) -> dict[str, str]:
    """KNN, or KNN with undersampling, left out when its smallest fit holds fewer rows than it may
    take neighbours (`rows` and `minority`: that fit's rows and rows of the smaller class)."""
    if rows < KNN_MAX_NEIGHBOURS:
        return {
            "knn": f"{FAMILIES['knn'].label} left out: the smallest fit holds {rows} rows, fewer than the "
            f"{KNN_MAX_NEIGHBOURS} neighbours it may use"
        }
    if undersample and 2 * minority < KNN_MAX_NEIGHBOURS:
        return {
            "knn/undersample": f"{FAMILIES['knn'].label} with random undersampling left out: the smallest "
            f"fit keeps {2 * minority} rows, fewer than the {KNN_MAX_NEIGHBOURS} neighbours it may use"
        }
    return {}
