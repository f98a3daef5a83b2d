"""A table run as a tracking record: its options, split, scores, reference and no-leak model."""

from __future__ import annotations

from pathlib import Path

from ..runs.tracked import Tracked, prefixed, scores
from .runs import read_results


def tracked(run_dir: Path) -> Tracked:
    """Read with the typed readers of run.json and metrics.json (the data file is not reloaded:
    logging needs none of it, and it may have moved since)."""
    r = read_results(run_dir)
    info, m = r.info, r.metrics
    params = {
        "data": info.data,
        "target": info.target,
        "id_column": info.id_column,
        "positive": info.positive,
        "numeric": info.numeric,
        "categorical": info.categorical,
        "exclude": info.exclude,
        "seed": info.seed,
        "test_size": info.test_size,
        "group_duplicates": info.group_duplicates,
        "group_column": info.group_column,
        "budget": info.budget,
        "families": info.families,
        "strategies": info.strategies,
        "objective": m.objective,
        "threshold_objective": info.threshold_objective,
        "offer_cost": info.offer_cost,
        "upgrade_value": info.upgrade_value,
        "discount": info.discount,
        "assumed_lift": info.assumed_lift or "none (not priced)",
        "time_limit": info.time_limit,
        "data_fingerprint": info.fingerprint,
        "rows_train": m.split.n_train,
        "rows_test": m.split.n_test,
        "cv_splits": m.split.cv_splits,
        "cv_repeats": m.split.cv_repeats,
    }
    metrics = {
        **scores("test_", m.test),
        **scores("train_", m.train),
        **prefixed("cv_", m.cv),
        "threshold": m.threshold.value,
    }
    if m.reference is not None:
        metrics |= scores("reference_test_", m.reference.test) | prefixed("reference_cv_", m.reference.cv)
    if m.no_leak is not None:
        metrics |= scores("no_leak_test_", m.no_leak.test) | prefixed("no_leak_cv_", m.no_leak.cv)
    calibrated = str(m.chosen.calibrated).lower()
    return Tracked(
        "table", params, metrics, m.chosen, calibrated, m.test.pr_auc, info.started, info.duration_s
    )
