"""Drift: how far new data has moved from the training data a model saw, checked file by file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .profile import Tally
from .schema import Schema
from .sources.tables import batch_to_frame, iter_batches


def compare(profile: dict, X: pd.DataFrame, scores: np.ndarray, schema: Schema, **thresholds) -> dict:
    """PSI per feature and for the score, new categories and range violations of validated rows."""
    tally = Tally(profile, schema)
    tally.add(X, scores)
    return tally.report(**thresholds)


def check_file(scorer, data: str | Path, **thresholds) -> dict:
    """Validate and score a file with the bundle, batch by batch, and compare it with the training
    profile stored in the bundle."""
    profile = scorer.bundle.metadata.get("reference_profile")
    if not profile:
        raise InputError(
            "this bundle has no training reference profile; retrain it with this version "
            "to enable drift checks"
        )
    tally = Tally(profile, scorer.schema)
    total = rejected = 0
    reasons: dict[str, int] = {}
    for batch in iter_batches(data, scorer.schema.names):
        X, why = scorer.validate(batch_to_frame(batch, scorer.schema))
        valid = (why == "").to_numpy()
        total += len(X)
        rejected += int((~valid).sum())
        for text, c in why[~valid].value_counts().items():
            reasons[str(text)] = reasons.get(str(text), 0) + int(c)
        Xv = X[valid]
        tally.add(Xv, scorer.predict(Xv))
    if total == 0:
        raise InputError(f"{data}: the file has no data rows")
    report = tally.report(**thresholds)
    report.update(source=str(data), rows_read=total, rows_rejected=rejected, reject_reasons=reasons)
    return report
