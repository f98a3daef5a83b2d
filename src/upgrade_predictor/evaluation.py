"""Metrics, their summaries across folds, and the choice of a decision threshold."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from .records import check_keys

METRICS = [
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
]
LOWER_IS_BETTER = {"brier", "log_loss"}


@dataclass(frozen=True)
class Scores:
    """Every metric of one set of predictions at one threshold (class 1 is the positive class)."""

    accuracy: float
    balanced_accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float
    pr_auc: float
    brier: float
    log_loss: float
    threshold: float

    @classmethod
    def from_dict(cls, d: Any, where: str = "scores") -> Scores:
        """Read a stored set of scores; an unknown or missing metric is refused naming it."""
        check_keys(d, where, [f.name for f in fields(cls)])
        return cls(**{f.name: float(d[f.name]) for f in fields(cls)})

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def __getitem__(self, name: str) -> float:  # the report template reads metrics by name
        return float(getattr(self, name))

    def get(self, name: str, default: float | None = None) -> float | None:
        return float(getattr(self, name)) if hasattr(self, name) else default

    def __contains__(self, name: str) -> bool:
        return name in {f.name for f in fields(self)}


def scores(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> Scores:
    """All metrics of probabilities p for labels y; class 1 is the positive class."""
    y = np.asarray(y)
    p = np.clip(np.asarray(p, dtype="float64"), 0.0, 1.0)
    pred = (p >= threshold).astype(int)
    out = {
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": balanced_accuracy_score(y, pred),
        "precision": precision_score(y, pred, zero_division=0),
        "recall": recall_score(y, pred, zero_division=0),
        "f1": f1_score(y, pred, zero_division=0),
        "roc_auc": roc_auc_score(y, p) if len(np.unique(y)) == 2 else float("nan"),
        "pr_auc": average_precision_score(y, p) if y.any() else float("nan"),
        "brier": brier_score_loss(y, p),
        "log_loss": log_loss(y, p, labels=[0, 1]),
        "threshold": float(threshold),
    }
    return Scores(**{k: float(v) for k, v in out.items()})


def summarise(fold_scores: list[Scores]) -> dict[str, float]:
    """Mean and sample standard deviation of each metric across folds."""
    df = pd.DataFrame([s.to_dict() for s in fold_scores])[METRICS]
    out = {}
    for m in METRICS:
        out[f"{m}_mean"] = float(df[m].mean())
        out[f"{m}_sd"] = float(df[m].std(ddof=1)) if len(df) > 1 else 0.0
    return out
