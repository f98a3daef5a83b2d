"""What a run compares: a candidate (family x imbalance strategy, maybe tuned) and its cross-validated result."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import evaluation
from ..models import FAMILIES, SMOTE_K, build_pipeline, build_reference

REFERENCE = "reference"


@dataclass(frozen=True)
class Candidate:
    family: str
    strategy: str
    params: dict = field(default_factory=dict, hash=False, compare=False)
    tuned: bool = False
    fit_rows: int | None = field(default=None, compare=False)  # at most this many rows per fit
    smote_k: int = field(default=SMOTE_K, compare=False)

    @property
    def key(self) -> str:
        if self.family == REFERENCE:
            return REFERENCE
        return f"{self.family}/{self.strategy}" + ("/tuned" if self.tuned else "")

    @property
    def cost(self) -> float:
        """Relative cost of one fit, to run the cheap candidates first under a deadline."""
        family = FAMILIES.get(self.family, FAMILIES["forest"])  # the reference recipe is a forest
        return family.cost * {"oversample": 2.0, "smote": 2.5, "undersample": 0.5}.get(self.strategy, 1.0)

    def build(self, schema, seed: int):
        if self.family == REFERENCE:
            return build_reference(seed, self.fit_rows)
        return build_pipeline(
            schema, self.family, self.strategy, self.params, seed, self.fit_rows, self.smote_k
        )


@dataclass
class CVResult:
    candidate: Candidate
    folds: list[evaluation.Scores]
    oof: np.ndarray  # mean out-of-fold probability over repeats
    fit_seconds: float
    fit_rows: int = 0  # rows each CV fit used (the largest fold; a capped family's sample)
    fold_rows: int = 0  # rows of the largest CV training fold

    @property
    def summary(self) -> dict[str, float]:
        return evaluation.summarise(self.folds)

    def mean(self, metric: str) -> float:
        return self.summary[f"{metric}_mean"]
