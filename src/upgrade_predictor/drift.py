"""Drift: how far new data has moved from the training data a model saw, checked batch by batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import config
from .errors import InputError
from .profile import Tally
from .schema import Schema
from .scoring.batch import duplicate_count
from .scoring.scorer import Scorer
from .sources.tables import batch_to_frame, input_files

REJECT_EXAMPLES = 20  # rejected rows listed by number (and id) in the report


def compare(
    profile: dict[str, Any], X: pd.DataFrame, scores: np.ndarray, schema: Schema, **thresholds: float
) -> dict[str, Any]:
    """PSI per feature and for the score, new categories and range violations of validated rows."""
    tally = Tally(profile, schema)
    tally.add(X, scores)
    return tally.report(**thresholds)


def check_file(
    scorer: Scorer,
    data: str | Path,
    *,
    id_column: str | None = None,
    psi_alert: float = config.PSI_ALERT,
    new_category_share: float = config.NEW_CATEGORY_SHARE,
    range_share: float = config.RANGE_SHARE,
) -> dict[str, Any]:
    """Score a file, folder or glob with the bundle (Scorer.score_frame, batch by batch) and compare the
    valid rows with the training profile stored in the bundle. Rows are numbered as `score` numbers them."""
    profile = scorer.bundle.metadata.reference_profile
    if not profile:
        raise InputError(
            "this bundle has no training reference profile; retrain it with this version "
            "to enable drift checks"
        )
    inputs = input_files(data)
    cols = scorer.columns_for(inputs, id_column)
    id_col = cols.id
    inputs.require(cols.read)
    tally = Tally(profile, scorer.schema)
    total = rejected = 0
    reasons: dict[str, int] = {}
    examples: list[dict[str, Any]] = []
    ids: list[pa.Array] = []
    for batch in inputs.batches(cols.read):
        scored = scorer.score_frame(batch_to_frame(batch, scorer.schema))
        tally.add(scored.valid_features, scored.probability)
        bad = np.flatnonzero(~scored.valid)
        batch_ids = pc.cast(batch.column(id_col), pa.string()) if id_col else None
        for i in bad[: max(0, REJECT_EXAMPLES - len(examples))].tolist():
            problem = scored.rows.problem(i)
            entry: dict[str, Any] = {"row": total + i}
            if batch_ids is not None and id_col:
                entry[id_col] = batch_ids[i].as_py()
            if problem is not None:
                entry.update(column=problem.column, reason=problem.message)
            examples.append(entry)
        for text, count in scored.rows.counts().items():
            reasons[text] = reasons.get(text, 0) + count
        if batch_ids is not None:
            ids.append(batch_ids)
        total += batch.num_rows
        rejected += len(bad)
    if total == 0:
        raise InputError(f"{data}: the input has no data rows")
    if rejected == total:  # nothing to compare: a report of empty bins would say "no drift"
        top = sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
        raise InputError(
            f"no row of {data} passed validation ({'; '.join(f'{n:,} x {text}' for text, n in top)}); "
            "fix these cells (score the file for every row's reason) and check drift again"
        )
    report = tally.report(psi_alert=psi_alert, new_category_share=new_category_share, range_share=range_share)
    report.update(
        source=str(data),
        files=len(inputs.files),
        id_column=id_col,
        rows_read=total,
        rows_rejected=rejected,
        reject_reasons=reasons,
        rejected_rows=examples,
        duplicate_ids=duplicate_count(ids) if id_col else 0,
    )
    return report
