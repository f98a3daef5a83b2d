"""The comparison's cache of fitted steps replays work, never changes a result, and leaves nothing behind."""

from pathlib import Path

import numpy as np
import pytest

from test_features import _xy
from upgrade_predictor import config
from upgrade_predictor.errors import InputError
from upgrade_predictor.forecast.protocol import events_fit_plan
from upgrade_predictor.models import SMOTE_K
from upgrade_predictor.training.candidates import Candidate
from upgrade_predictor.training.crossval import cross_validate
from upgrade_predictor.training.fitcache import active, fit_cache
from upgrade_predictor.training.splits import MIN_CLASS_PER_FOLD, cv_folds

CANDIDATES = [Candidate(f, s) for f in ("logreg", "gbm") for s in ("none", "smote")]


def _scores(X, y, folds, schema) -> dict[str, tuple[np.ndarray, list[float]]]:
    res = cross_validate(CANDIDATES, X, y, folds, schema, seed=0, jobs=2)
    return {k: (r.oof, [s.pr_auc for s in r.folds]) for k, r in res.items()}


def test_cached_comparison_gives_the_same_scores_and_removes_its_cache():
    X, y, schema = _xy(400)
    folds = cv_folds(y, None, config.BUDGETS["quick"], seed=0)
    plain = _scores(X, y, folds, schema)
    with fit_cache() as memory:
        assert memory is not None and active() is memory
        folder = Path(memory.location)
        cached = _scores(X, y, folds, schema)
        again = _scores(X, y, folds, schema)  # every step replayed from the cache
        assert any(folder.rglob("output.pkl"))
    assert active() is None and not folder.exists()
    for key, (oof, folds_pr) in plain.items():
        for other in (cached, again):
            np.testing.assert_array_equal(other[key][0], oof)
            assert other[key][1] == folds_pr


def test_events_comparison_refuses_folds_with_too_few_upgrades_and_narrows_smote():
    y = np.zeros(600, dtype=int)
    y[:6] = 1
    folds = cv_folds(y, None, config.BUDGETS["quick"], seed=0)
    with pytest.raises(InputError, match="too few to compare models"):
        events_fit_plan(y, folds)
    y[:40] = 1
    folds = cv_folds(y, None, config.BUDGETS["quick"], seed=0)
    fewest = min(int(y[tr].sum()) for _, tr, _ in folds)
    assert fewest >= MIN_CLASS_PER_FOLD
    assert events_fit_plan(y, folds).smote_k == min(SMOTE_K, fewest - 1)
