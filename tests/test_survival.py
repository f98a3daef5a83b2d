"""Kaplan-Meier time to upgrade: a hand-worked example, day-0 upgrades, censoring, the real tables."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from upgrade_predictor.errors import InputError
from upgrade_predictor.forecast.survival import curves_table, km_by_segment, km_curve, time_to_upgrade

# Eight users; event 1 = upgraded on that day, 0 = still free when last seen (at risk through that day).
DURATIONS = np.array([0, 0, 1, 2, 2, 3, 5, 5])
EVENTS = np.array([1, 0, 1, 1, 0, 0, 1, 0])
# By hand, S(t) = product over event days u <= t of (1 - events_u / at_risk_u):
#   day 0: 8 at risk (the user censored at 0 was watched all day), 1 upgrade -> S = 7/8
#   day 1: 6 at risk (both day-0 users gone), 1 upgrade              -> S = 7/8 * 5/6
#   day 2: 5 at risk, 1 upgrade (the other day-2 user censored)      -> S = 7/8 * 5/6 * 4/5
#   days 3-4: only a censoring, S unchanged
#   day 5: 2 at risk, 1 upgrade                                      -> S = 7/8 * 5/6 * 4/5 * 1/2
S0, S1 = 7 / 8, 7 / 8 * 5 / 6
S2 = S1 * 4 / 5
S5 = S2 / 2
HAND_S = np.array([S0, S1, S2, S2, S2, S5])


def test_hand_worked_curve() -> None:
    c = km_curve(DURATIONS, EVENTS, label="hand")
    assert np.array_equal(c.days, np.arange(6))
    np.testing.assert_allclose(c.upgraded_share, 1 - HAND_S)
    assert c.n == 8 and c.events == 4
    assert c.share_day0 == pytest.approx(1 / 8)
    assert np.isnan(c.share_by_day7)  # nobody followed beyond day 5
    assert c.median_days == 5  # S(2) = 0.58 > 0.5, S(5) = 0.29
    assert (c.low <= c.upgraded_share).all() and (c.upgraded_share <= c.high).all()
    assert (c.high - c.low)[0] > 0
    # Censoring matters: the naive share of upgraders (4 of 8) understates the day-5 estimate.
    assert c.upgraded_share[5] > EVENTS.mean()


def test_greenwood_band_at_day0() -> None:
    # Greenwood: var S(0) = S(0)^2 * d / (n (n - d)) = (7/8)^2 / 56; log(-log) band around S(0).
    c = km_curve(DURATIONS, EVENTS, level=0.95)
    se = S0 * np.sqrt(1 / 56)
    theta_se = se / (S0 * abs(np.log(S0)))
    assert 1 - c.high[0] == pytest.approx(S0 ** np.exp(1.959964 * theta_se), rel=1e-5)
    assert 1 - c.low[0] == pytest.approx(S0 ** np.exp(-1.959964 * theta_se), rel=1e-5)


def test_day_zero_upgrades_and_day_zero_censoring() -> None:
    # Two of four upgrade on day 0; the two censored at day 0 still count as at risk that day.
    c = km_curve([0, 0, 0, 0], [1, 1, 0, 0])
    assert c.share_day0 == pytest.approx(0.5)
    assert c.median_days == 0
    nobody = km_curve([3, 9, 4], [0, 0, 0])
    assert (nobody.upgraded_share == 0).all() and nobody.median_days is None and nobody.share_by_day7 == 0


def test_bad_durations_are_refused() -> None:
    with pytest.raises(InputError, match="non-negative"):
        km_curve([-1, 2], [1, 0])
    with pytest.raises(InputError, match="events must be"):
        km_curve([1, 2], [1, 2])


def test_time_to_upgrade_censors_at_data_end() -> None:
    end = date(2022, 1, 31)
    users = pd.DataFrame(
        {
            "user_id": ["day0", "later", "free", "after_end", "last_day"],
            "registered": pd.to_datetime(
                ["2022-01-01", "2022-01-01", "2022-01-11", "2022-01-21", "2022-01-31"]
            ),
            "first_upgrade": pd.to_datetime(
                pd.Series(["2022-01-01", "2022-01-05", None, "2022-02-03", None])
            ),
            "student_country": ["NA", "US", "US", "IN", "IN"],
        }
    )
    t = time_to_upgrade(users, end)
    assert list(t["duration"]) == [0, 4, 20, 10, 0]
    assert list(t["event"]) == [1, 1, 0, 0, 0]  # an upgrade after data_end is not known yet
    assert list(t["student_country"]) == ["NA", "US", "US", "IN", "IN"]  # "NA" is Namibia, not missing


def test_km_by_segment_orders_and_filters_groups() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "duration": rng.integers(0, 30, 700),
            "event": rng.integers(0, 2, 700),
            "country": ["US"] * 300 + ["NA"] * 250 + ["GB"] * 50 + [None] * 100,
        }
    )
    curves = km_by_segment(frame, "country", min_users=80, top=6)
    assert [c.label for c in curves] == ["country=US", "country=NA", "country=(missing)"]
    assert [c.n for c in curves] == [300, 250, 100]
    assert len(km_by_segment(frame, "country", min_users=80, top=1)) == 1
    table = curves_table(curves)
    assert list(table["users"]) == [300, 250, 100] and "by_day_7" in table.columns


@pytest.mark.slow
def test_real_curve(real_users: pd.DataFrame) -> None:
    end = date(2022, 8, 31)
    t = time_to_upgrade(real_users, end)
    c = km_curve(t["duration"], t["event"])
    # Nobody is censored before day 0, so KM's day-0 share is the plain share upgrading on registration day.
    same_day = (real_users["first_upgrade"] == real_users["registered"]).sum() / len(real_users)
    assert c.share_day0 == pytest.approx(same_day, abs=1e-12)
    # By day 7, KM sits above the naive share (which counts censored users as free) and near the share
    # among users watched for at least 8 days.
    delay = (real_users["first_upgrade"] - real_users["registered"]).dt.days
    naive7 = (delay <= 7).mean()
    watched = real_users["registered"] <= pd.Timestamp(end) - pd.Timedelta(days=7)
    cohort7 = (delay[watched] <= 7).mean()
    assert naive7 <= c.share_by_day7 and abs(c.share_by_day7 - cohort7) < 0.005
    assert c.events == int(real_users["first_upgrade"].notna().sum())
    print(
        f"\nKM upgraded share: day 0 {c.share_day0:.4f}, by day 7 {c.share_by_day7:.4f}, "
        f"by day 30 {c.share_by(30):.4f}; naive by day 7 {naive7:.4f}, watched 8+ days {cohort7:.4f}"
    )
    segments = km_by_segment(t, "student_country")
    assert segments and all(s.n >= 200 for s in segments)
