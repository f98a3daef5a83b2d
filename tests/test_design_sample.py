"""The row budget of an events run: whole users sampled to train on and to score, the rest never built."""

from __future__ import annotations

import numpy as np
import pytest

from test_forecast_design import synthetic_users
from upgrade_predictor.errors import InputError
from upgrade_predictor.forecast.design import CutoffPlan, backtest_periods, build_design, rolling_origins
from upgrade_predictor.forecast.sample import RowBudget

PLAN = CutoffPlan(first_days=7, horizon=14)
ORIGINS = dict(n_origins=3, step_days=20, test_days=14)


def sampled(fit_rows: int | None, eval_rows: int | None, n: int = 3000, seed: int = 0):
    users, end = synthetic_users(n, seed=1)
    periods = backtest_periods(end, PLAN.horizon, **ORIGINS)
    budget = RowBudget(fit_rows, eval_rows, periods, seed)
    return users, end, build_design(users, end, PLAN, budget)


def test_without_a_budget_every_row_has_both_roles() -> None:
    users, end = synthetic_users(400)
    d = build_design(users, end, PLAN)
    assert d.rows["in_fit"].all() and d.rows["in_eval"].all()
    assert not d.sample.sampled and d.sample.rows == len(d.rows)
    assert d.sample.users == d.rows["user_id"].nunique()


def test_whole_users_are_sampled_and_the_rest_is_never_built() -> None:
    users, end, full = sampled(None, None)
    _, _, d = sampled(full.sample.rows // 4, None)
    s = d.sample
    assert s.rows == full.sample.rows and s.users == full.sample.users
    assert s.fit_share == pytest.approx(0.25, abs=1e-4)
    assert abs(s.fit_rows - s.rows / 4) < 0.1 * s.rows / 4
    # Every row of a training user is a training row: users are kept whole.
    fit_users = set(d.rows.loc[d.rows["in_fit"], "user_id"])
    assert len(fit_users) == s.fit_users
    whole = full.rows[full.rows["user_id"].isin(fit_users)]
    assert len(whole) == s.fit_rows
    # Test periods still score every free user; rows in neither role are not built.
    assert s.eval_share == 1.0
    tested = d.rows["in_eval"]
    assert (d.rows["in_fit"] | tested).all()
    assert s.positives == full.sample.positives == full.rows["label"].sum()
    assert tested.sum() == s.eval_rows == s.eval_rows_all


def test_sampled_training_rows_keep_the_label_rate() -> None:
    """Users drawn uniformly keep the mix of rows: the training rate matches the full design's."""
    _, _, full = sampled(None, None, n=6000)
    _, _, d = sampled(full.sample.rows // 3, None, n=6000)
    y_all = full.rows["label"].to_numpy()
    y_fit = d.rows.loc[d.rows["in_fit"], "label"].to_numpy()
    se = np.sqrt(y_all.mean() * (1 - y_all.mean()) / len(y_fit)) * 3  # rows of a user are correlated
    assert abs(y_fit.mean() - y_all.mean()) < 4 * se
    tenure = d.rows.loc[d.rows["in_fit"], "tenure_days"].mean()
    assert tenure == pytest.approx(full.rows["tenure_days"].mean(), rel=0.05)


def test_splits_train_on_sampled_users_and_test_on_scored_ones() -> None:
    _, _, full = sampled(None, None)
    _, _, d = sampled(full.sample.rows // 3, full.sample.eval_rows_all // 15)
    s = d.sample
    assert s.eval_share < s.fit_share < 1
    fit_users = set(d.rows.loc[d.rows["in_fit"], "user_id"])
    eval_users = set(d.rows.loc[d.rows["in_eval"], "user_id"])
    assert eval_users <= fit_users  # one draw per user: the samples are nested
    for split in rolling_origins(d, **ORIGINS):
        assert d.rows["in_fit"].to_numpy()[split.train].all()
        assert d.rows["in_eval"].to_numpy()[split.test].all()
    # The test periods of the sampled design are the full design's, restricted to the scored users.
    full_tests = rolling_origins(full, **ORIGINS)
    for split, whole in zip(rolling_origins(d, **ORIGINS), full_tests):
        want = full.rows.iloc[whole.test]
        want = want[want["user_id"].isin(eval_users)]
        got = d.rows.iloc[split.test]
        assert sorted(zip(got["user_id"], got["cutoff"])) == sorted(zip(want["user_id"], want["cutoff"]))


def test_the_sample_depends_on_the_seed_only() -> None:
    _, _, a = sampled(20_000, None, seed=3)
    _, _, b = sampled(20_000, None, seed=3)
    _, _, c = sampled(20_000, None, seed=4)
    assert a.rows.equals(b.rows)
    assert set(a.rows["user_id"]) != set(c.rows["user_id"])


def test_a_budget_below_one_row_is_refused() -> None:
    with pytest.raises(InputError, match="fit_rows"):
        RowBudget(0, None)
