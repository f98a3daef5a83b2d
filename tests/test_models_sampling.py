"""The pipelines' random samplers draw imbalanced-learn's rows without its object-array copy; fits that run
alone get every core; logistic regression's solver fallback is not printed."""

from __future__ import annotations

import re
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler
from sklearn.linear_model import LogisticRegression
from sklearn.utils.parallel import Parallel, delayed

from upgrade_predictor.cli import NEWTON_FALLBACK
from upgrade_predictor.forecast.threads import side_by_side, threads_each, with_threads
from upgrade_predictor.models import build_pipeline
from upgrade_predictor.models_sampling import random_oversample, random_undersample
from upgrade_predictor.schema import Column, Schema


def _frame(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "minutes": rng.gamma(1.0, 30.0, n).astype("float32"),
            "days": rng.integers(0, 90, n),
            "country": pd.Series(rng.choice(["US", "IN", "GB"], n), dtype="object"),
        }
    )
    X.loc[rng.random(n) < 0.1, "country"] = np.nan
    X.loc[rng.random(n) < 0.05, "minutes"] = np.nan
    return X, (rng.random(n) < 0.08).astype(int)


@pytest.mark.parametrize(
    ("ours", "theirs"), [(random_oversample, RandomOverSampler), (random_undersample, RandomUnderSampler)]
)
def test_random_samplers_return_imbalanced_learns_rows_and_types(ours, theirs):
    X, y = _frame(3000)
    want_X, want_y = theirs(random_state=7).fit_resample(X, y)
    got_X, got_y = ours(X, y, 7)
    pd.testing.assert_frame_equal(got_X, want_X)
    np.testing.assert_array_equal(got_y, want_y)
    assert got_y.mean() == pytest.approx(0.5)


def test_oversampling_copies_the_rows_it_draws_and_no_more():
    # 200k rows of 20 float32 columns and a category: stacked into one object array first, as the
    # library sampler does, each cell would cost a pointer and a float object (11 times the output).
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.random((200_000, 20), dtype="float32"), columns=[f"c{i}" for i in range(20)])
    X["plan"] = rng.choice(["free", "trial"], len(X)).astype(object)
    y = (rng.random(len(X)) < 0.08).astype(int)
    tracemalloc.start()
    out, _ = random_oversample(X, y, 0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(out) == 2 * int((y == 0).sum())
    assert peak < 3 * out.memory_usage(index=False).sum()


def test_an_oversampled_pipeline_fits_and_scores_every_row():
    X, y = _frame(2000)
    schema = Schema(
        [Column("minutes", "numeric"), Column("days", "numeric"), Column("country", "categorical")],
        "label",
        "1",
        "0",
        None,
    )
    pipe = build_pipeline(schema, "gbm", "oversample", params={"n_estimators": 20}).fit(X, y)
    p = pipe.predict_proba(X)[:, 1]
    assert len(p) == len(X) and 0 < p.min() < p.max() < 1


def test_a_fit_running_alone_gets_every_core_and_the_deployed_model_one():
    assert side_by_side(2, 10**9) == 1 and threads_each(2, 1) == 2
    assert threads_each(2, 2) == 1 and threads_each(1, 4) == 1
    X, y = _frame(500)
    schema = Schema([Column("minutes", "numeric"), Column("days", "numeric")], "label", "1", "0", None)
    pipe = with_threads(build_pipeline(schema, "gbm", "none"), 2)
    assert pipe.named_steps["model"].n_jobs == 2
    assert with_threads(pipe, 1).named_steps["model"].n_jobs == 1
    linear = with_threads(build_pipeline(schema, "logreg", "none"), 2)  # no threads of its own to set
    assert linear.named_steps["model"].get_params()["n_jobs"] is None


def _ill_conditioned_fit() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    y = np.ones(2000, dtype=int)
    y[:5] = 0
    LogisticRegression(solver="newton-cholesky", C=1e30, max_iter=500).fit(np.c_[x, x, 2 * x] * 1e8, y)


def test_the_solver_fallback_warning_is_the_one_the_command_line_silences(capfd):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _ill_conditioned_fit()
    assert any(re.match(NEWTON_FALLBACK, str(w.message)) for w in seen)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=NEWTON_FALLBACK)
        Parallel(n_jobs=2)(delayed(_ill_conditioned_fit)() for _ in range(2))  # in worker processes
    assert "stumbled" not in capfd.readouterr().err
