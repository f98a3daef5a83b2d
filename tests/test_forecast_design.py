"""Rows, labels and time-ordered splits of the (user, cutoff) design."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from upgrade_predictor import config
from upgrade_predictor.errors import InputError
from upgrade_predictor.forecast.design import (
    CutoffPlan,
    build_design,
    label_rows,
    rolling_origins,
    time_split,
    users_from_tables,
)
from upgrade_predictor.training.splits import cv_folds

REG = date(2022, 3, 1)


def users_frame(spec: list[tuple[str, date, date | None]]) -> pd.DataFrame:
    """Users from (id, registered, first upgrade or None)."""
    return pd.DataFrame(
        {
            "user_id": [u for u, _, _ in spec],
            "registered": pd.to_datetime(pd.Series([r for _, r, _ in spec])).astype("datetime64[ns]"),
            "first_upgrade": pd.to_datetime(pd.Series([f for _, _, f in spec])).astype("datetime64[ns]"),
            "student_country": "NA",
        }
    )


def rows_of(design, user: str) -> pd.DataFrame:
    return design.rows[design.rows["user_id"] == user].set_index("tenure_days")


def synthetic_users(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, date]:
    rng = np.random.default_rng(seed)
    start, span = date(2022, 1, 1), 200
    reg = [start + timedelta(days=int(d)) for d in rng.integers(0, span, n)]
    delay = rng.geometric(0.08, n) - 1
    upgrade = [r + timedelta(days=int(d)) if rng.random() < 0.3 else None for r, d in zip(reg, delay)]
    users = users_frame([(f"u{i}", r, u) for i, (r, u) in enumerate(zip(reg, upgrade))])
    return users, start + timedelta(days=span - 1)


# ---------------------------------------------------------------- labels at the edges


def test_purchase_on_registration_day_is_a_positive_tenure_zero_row_and_then_no_more_rows() -> None:
    plan = CutoffPlan(first_days=5, horizon=10)
    d = build_design(users_frame([("a", REG, REG)]), REG + timedelta(days=60), plan)
    a = rows_of(d, "a")
    assert list(a.index) == [0]
    assert a.loc[0, "label"] == 1 and a.loc[0, "upgrade_in_days"] == 0
    # REG is a Tuesday. Dropped as already upgraded: tenures 1-4, and the Mondays at tenures 6, 13, ..., 55
    # (8 of them, up to data_end at tenure 60), even those whose window would also run past data_end.
    assert d.excluded.upgraded_before == 4 + 8
    assert d.excluded.horizon_past_end == 0


def test_purchase_on_the_cutoff_counts_and_the_day_before_removes_the_row() -> None:
    plan = CutoffPlan(first_days=6, horizon=10, calendar_every_days=1000)  # no calendar rows in range
    d = build_design(users_frame([("a", REG, REG + timedelta(days=3))]), REG + timedelta(days=60), plan)
    a = rows_of(d, "a")
    assert list(a.index) == [0, 1, 2, 3]  # tenure 3 is the purchase day: still free at its start
    assert a.loc[3, "label"] == 1 and a.loc[3, "upgrade_in_days"] == 0
    assert list(a["upgrade_in_days"]) == [3, 2, 1, 0]
    assert d.excluded.upgraded_before == 2  # tenures 4 and 5: the purchase was the day before or earlier
    assert d.excluded.horizon_past_end == 0


def test_horizon_edges() -> None:
    h = 10
    plan = CutoffPlan(first_days=3, horizon=h, calendar_every_days=1000)
    d = build_design(users_frame([("a", REG, REG + timedelta(days=h))]), REG + timedelta(days=60), plan)
    a = rows_of(d, "a")
    assert a.loc[0, "label"] == 0 and a["upgrade_in_days"].isna().loc[0]  # purchase on cutoff + horizon
    assert a.loc[1, "label"] == 1 and a.loc[1, "upgrade_in_days"] == h - 1  # on cutoff + horizon - 1


def test_cutoffs_whose_window_runs_past_data_end_are_left_out_and_counted() -> None:
    h = 10
    plan = CutoffPlan(first_days=14, horizon=h, calendar_anchor=REG)  # grid on REG + 7k
    end = REG + timedelta(days=20)
    d = build_design(users_frame([("a", REG, None)]), end, plan)
    a = rows_of(d, "a")
    assert list(a.index) == list(range(12))  # REG + 11 + h - 1 == end
    assert all(c + pd.Timedelta(days=h - 1) <= pd.Timestamp(end) for c in a["cutoff"])
    # Tenures 12 and 13 and the calendar cutoff at tenure 14; tenure 21 is after data_end, not a candidate.
    assert d.excluded.horizon_past_end == 3
    assert d.excluded.users_without_rows == 0


def test_a_user_registered_too_late_has_no_rows_and_is_counted() -> None:
    end = REG + timedelta(days=40)
    users = users_frame([("a", REG, None), ("late", end - timedelta(days=5), None)])
    d = build_design(users, end, CutoffPlan(horizon=30))
    assert set(d.rows["user_id"]) == {"a"}
    assert d.excluded.users_without_rows == 1


def test_calendar_grid() -> None:
    users, end = synthetic_users()
    plan = CutoffPlan(first_days=14, calendar_every_days=7, horizon=30)
    d = build_design(users, end, plan)
    cal = d.rows[d.rows["kind"] == "calendar"]
    ten = d.rows[d.rows["kind"] == "tenure"]
    assert len(cal) and len(ten)
    assert set(cal["cutoff"].dt.day_of_week) == {0}  # the default anchor is a Monday
    assert cal["tenure_days"].min() >= plan.first_days
    assert ten["tenure_days"].between(0, plan.first_days - 1).all()
    for _, g in cal.groupby("user_id"):
        assert (np.diff(g["cutoff"].sort_values().to_numpy()) == np.timedelta64(7, "D")).all()
        assert g["tenure_days"].min() < plan.first_days + 7
    assert not d.rows.duplicated(["user_id", "cutoff"]).any()


def test_label_rows_matches_the_design_and_refuses_bad_rows() -> None:
    users, end = synthetic_users()
    d = build_design(users, end, CutoffPlan(horizon=20))
    again = label_rows(d.rows[["user_id", "cutoff"]], users, 20, data_end=end)
    pd.testing.assert_series_equal(again["label"], d.rows["label"])
    pd.testing.assert_series_equal(again["upgrade_in_days"], d.rows["upgrade_in_days"])
    upgraded = users.dropna(subset=["first_upgrade"]).iloc[0]
    after = pd.DataFrame(
        {"user_id": [upgraded["user_id"]], "cutoff": [upgraded["first_upgrade"] + pd.Timedelta(days=1)]}
    )
    with pytest.raises(InputError, match="upgraded before their cutoff"):
        label_rows(after, users, 20)
    late = pd.DataFrame({"user_id": ["u0"], "cutoff": [pd.Timestamp(end)]})
    with pytest.raises(InputError, match="past data_end"):
        label_rows(
            late,
            users.assign(first_upgrade=pd.Series(pd.NaT, index=users.index, dtype="datetime64[ns]")),
            20,
            data_end=end,
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda u: u.drop(columns="first_upgrade"), "missing column"),
        (lambda u: pd.concat([u, u]), "unique"),
        (lambda u: u.assign(registered=pd.Timestamp("2023-01-01")), "registered after data_end"),
        (lambda u: u.assign(first_upgrade=u["registered"] - pd.Timedelta(days=1)), "before registering"),
        (lambda u: u.assign(registered=u["registered"].astype(str)), "must hold dates"),
    ],
)
def test_bad_users_tables_are_refused(change, message: str) -> None:
    users = users_frame([("a", REG, None)])
    with pytest.raises(InputError, match=message):
        build_design(change(users), date(2022, 8, 31))


def test_users_from_tables_takes_the_first_purchase_and_keeps_namibia() -> None:
    info = pd.DataFrame(
        {
            "student_id": [1, 2, 3],
            "student_country": ["NA", "US", "IN"],
            "date_registered": ["2022-01-01", "2022-01-02", "2022-01-03"],
        }
    )
    purchases = pd.DataFrame(
        {
            "purchase_id": [10, 11, 12],
            "student_id": [2, 2, 3],
            "date_purchased": ["2022-02-01", "2022-01-05", "2022-01-03"],
        }
    )
    users = users_from_tables(info, purchases)
    assert list(users["user_id"]) == ["1", "2", "3"]
    assert list(users["student_country"]) == ["NA", "US", "IN"]
    assert users["first_upgrade"].isna().iloc[0]
    assert users.loc[1, "first_upgrade"] == pd.Timestamp("2022-01-05")
    with pytest.raises(InputError, match="missing from student info"):
        users_from_tables(info, purchases.assign(student_id=[2, 2, 9]))


# ---------------------------------------------------------------- time-ordered splits


def test_time_split_leaves_a_horizon_gap_and_tests_only_observed_windows() -> None:
    users, end = synthetic_users()
    h, test_days = 21, 28
    d = build_design(users, end, CutoffPlan(horizon=h))
    s = time_split(d, test_days=test_days)
    cut = d.rows["cutoff"]
    train_cut, test_cut = cut.iloc[s.train], cut.iloc[s.test]
    assert train_cut.max() + pd.Timedelta(days=h) <= test_cut.min()
    assert (test_cut + pd.Timedelta(days=h - 1)).max() == pd.Timestamp(end)
    assert test_cut.min() == pd.Timestamp(s.test_start)
    assert (test_cut.max() - test_cut.min()).days == test_days - 1
    assert s.gap_days >= h and s.train_label_end < s.test_start
    # Train is every row whose window closes before the test, not a subset.
    assert len(s.train) == int((cut + pd.Timedelta(days=h) <= pd.Timestamp(s.test_start)).sum())
    assert set(s.train).isdisjoint(s.test)


def test_rolling_origins_are_ordered_and_each_has_a_gap() -> None:
    users, end = synthetic_users()
    h = 14
    d = build_design(users, end, CutoffPlan(horizon=h))
    origins = rolling_origins(d, n_origins=4, step_days=30, test_days=28)
    assert len(origins) == 4
    starts = [o.test_start for o in origins]
    assert all((b - a).days == 30 for a, b in itertools.pairwise(starts))
    last = time_split(d, test_days=28)
    assert origins[-1].test_start == last.test_start and np.array_equal(origins[-1].test, last.test)
    cut = d.rows["cutoff"]
    for o in origins:
        assert cut.iloc[o.train].max() + pd.Timedelta(days=h) <= cut.iloc[o.test].min()
    assert [len(o.train) for o in origins] == sorted(len(o.train) for o in origins)
    with pytest.raises(InputError, match="too short"):
        rolling_origins(d, n_origins=12, step_days=30)


def test_user_folds_never_split_a_user() -> None:
    users, end = synthetic_users()
    d = build_design(users, end)
    budget = config.Budget("t", cv_splits=3, cv_repeats=2, tune_families=1, trials=1, timeout_s=1)
    # The events protocol folds its rows with the training code's grouped folds, grouped by user.
    folds = cv_folds(d.rows["label"].to_numpy(), d.rows["user_id"].to_numpy(), budget, seed=1)
    assert [r for r, _, _ in folds] == [0, 0, 0, 1, 1, 1]
    ids = d.rows["user_id"].to_numpy()
    for r in (0, 1):
        valid = np.concatenate([va for rr, _, va in folds if rr == r])
        assert np.array_equal(np.sort(valid), np.arange(len(d.rows)))
    for _, tr, va in folds:
        assert set(ids[tr]).isdisjoint(ids[va])


# ---------------------------------------------------------------- the real tables


@pytest.mark.slow
def test_real_design(real_users: pd.DataFrame) -> None:
    end, h = date(2022, 8, 31), 30
    d = build_design(real_users, end, CutoffPlan(horizon=h))
    rows = d.rows
    last = pd.Timestamp(end) - pd.Timedelta(days=h - 1)
    reg = real_users.set_index("user_id")["registered"]
    upg = real_users.set_index("user_id")["first_upgrade"]
    print(
        f"\nrows {len(rows):,}, positives {int(rows['label'].sum()):,}, users {rows['user_id'].nunique():,}, "
        f"excluded {d.excluded.as_dict()}"
    )
    assert rows["cutoff"].max() <= last
    assert not (upg.reindex(rows["user_id"]).to_numpy() < rows["cutoff"].to_numpy()).any()
    # Everyone registered by the last labelable cutoff has a tenure-0 row; nobody later has any row.
    assert d.excluded.users_without_rows == int((reg > last).sum())
    assert int((rows["tenure_days"] == 0).sum()) == int((reg <= last).sum())
    # Tenure-0 positives are the upgrades within the horizon of registration, counted with plain pandas.
    early = ((upg - reg).dt.days < h) & (reg <= last)
    assert int(rows.loc[rows["tenure_days"] == 0, "label"].sum()) == int(early.sum())
    assert d.excluded.upgraded_before > 0 and d.excluded.horizon_past_end > 0
    assert 0 < rows["label"].mean() < 0.1
    s = time_split(d)
    print(
        f"time split: train to {s.train_cutoff_end} (labels to {s.train_label_end}), "
        f"test {s.test_start}..{s.test_end}, {len(s.train):,} / {len(s.test):,} rows"
    )
    assert s.test_end == last.date() and s.train_label_end < s.test_start
