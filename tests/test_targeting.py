"""Hand-written gains, lift and profit curves, checked against examples worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from upgrade_predictor import targeting
from upgrade_predictor.economics import Economics, Lift

# Eight users; scores shuffled on purpose so the functions must rank them. In score order:
# score 0.9 0.8 0.8 0.5 0.4 0.3 0.2 0.1
# label   1   1   0   0   1   0   0   0      (3 upgraders)
ORDER = [5, 2, 7, 0, 4, 1, 6, 3]
P_SORTED = np.array([0.9, 0.8, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1])
Y_SORTED = np.array([1, 1, 0, 0, 1, 0, 0, 0])
P, Y = P_SORTED[ORDER], Y_SORTED[ORDER]


def test_gains_table_by_quarter_matches_hand_computation():
    g = targeting.gains_table(Y, P, bins=4)
    # The tie at 0.8 is broken pessimistically (the non-upgrader first): ranked labels 1 0 1 0 1 0 0 0.
    # Top 2 hold 1 of 3 upgraders, top 4 hold 2, top 6 all 3.
    assert g["users"].tolist() == [2, 4, 6, 8]
    assert g["upgraders_reached"].tolist() == [1, 2, 3, 3]
    np.testing.assert_allclose(g["gain"], [1 / 3, 2 / 3, 1, 1])
    # lift = (reached / targeted) / (3 / 8)
    np.testing.assert_allclose(g["lift"], [4 / 3, 4 / 3, 4 / 3, 1])


def test_ranking_does_not_depend_on_input_order():
    a = targeting.gains_table(Y, P, bins=8)
    b = targeting.gains_table(Y_SORTED, P_SORTED, bins=8)
    pd.testing.assert_frame_equal(a, b)


def test_cutoffs_keep_ties_together():
    c = targeting.cutoffs(Y, P)
    # The two users at 0.8 are offered together, so there is no row for "2 offers".
    assert c["offers"].tolist() == [0, 1, 3, 4, 5, 6, 7, 8]
    assert c["upgraders_reached"].tolist() == [0, 1, 2, 2, 3, 3, 3, 3]
    np.testing.assert_allclose(
        c["expected_upgraders"], np.r_[0, np.cumsum(P_SORTED)][[0, 1, 3, 4, 5, 6, 7, 8]]
    )
    assert "profit" not in c  # counting upgraders reached is not a price


def test_priced_curve_counts_only_what_the_offer_causes():
    # Lift +50% of p (capped so p + tau <= 1): tau = 0.1, 0.2, 0.2, 0.25, 0.2, 0.15, 0.1, 0.05 in
    # score order; at offer cost 1 and upgrade value 10 each offer earns 10 tau - 1:
    # 0, 1, 1, 1.5, 1, 0.5, 0, -0.5. Upgraders reached earn nothing by themselves.
    c = targeting.priced_curve(Y, P, Economics(1.0, 10.0), Lift.parse("50%"))
    np.testing.assert_allclose(c["profit"], [0, 0, 2, 3.5, 4.5, 5, 5, 4.5], atol=1e-12)
    np.testing.assert_allclose(c["incremental_upgrades"], [0, 0.1, 0.5, 0.75, 0.95, 1.1, 1.2, 1.25])
    # The realized check: each user's observed upgrade in place of p, tau = 0.5 y, so 5 y - 1 an offer
    # (ranked labels 1 0 1 0 1 0 0 0).
    np.testing.assert_allclose(c["realized_profit"], [0, 4, 7, 6, 10, 9, 8, 7])
    best = targeting.best_policy(c)
    assert best["threshold"] == 0.3 and best["share_offered"] == 6 / 8  # fewest offers among equal profits


def test_a_discount_is_given_to_every_upgrader_who_redeems():
    # Absolute lift 10pp: tau = 0.1 for everyone; discount 2 on p + tau: 10 * 0.1 - 1 - 2 (p + 0.1).
    econ, lift = Economics(1.0, 10.0, discount=2.0), Lift.parse("10pp")
    c = targeting.priced_curve(Y, P, econ, lift)
    expected = np.cumsum(-2 * (P_SORTED + 0.1))[[0, 2, 3, 4, 5, 6, 7]]
    np.testing.assert_allclose(c["profit"].iloc[1:], expected, atol=1e-12)


def test_gains_curve_at_every_user():
    g = targeting.gains_curve(Y, P, points=100)
    np.testing.assert_allclose(g["share_targeted"], np.r_[0, np.arange(1, 9) / 8])
    ranked_labels = np.array([1, 0, 1, 0, 1, 0, 0, 0])
    np.testing.assert_allclose(g["gain"], np.r_[0, np.cumsum(ranked_labels) / 3])
    np.testing.assert_allclose(g["lift"].iloc[1:], (np.cumsum(ranked_labels) / np.arange(1, 9)) / (3 / 8))


def test_gains_curve_is_thinned_but_keeps_both_ends():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 5000), rng.random(5000)
    g = targeting.gains_curve(y, p, points=50)
    assert len(g) <= 52
    assert g["share_targeted"].iloc[-1] == 1.0 and g["gain"].iloc[-1] == 1.0


def test_threshold_for_share():
    assert targeting.threshold_for_share(P, 0.5) == 0.5  # 4th highest score
    assert targeting.threshold_for_share(P, 1.0) == 0.1
    assert targeting.threshold_for_share(P, 0.0) == float("inf")


ECON = Economics(1.0, 10.0)
HALF = Lift.parse("50%")


def test_policy_outcome_point_values_and_interval():
    out = targeting.policy_outcomes(Y, P, threshold=0.3, econ=ECON, lift=HALF, n_boot=500)
    assert out["offers"]["value"] == 6 and out["upgraders_reached"]["value"] == 3
    assert out["profit"]["value"] == pytest.approx(5.0) and out["realized_profit"]["value"] == pytest.approx(
        9.0
    )  # 3 upgraders x 5 - 6
    assert out["share_of_upgraders"]["value"] == 1.0 and out["precision"]["value"] == 0.5
    for f in ("offers", "upgraders_reached", "profit", "realized_profit", "share_offered"):
        assert out[f]["low"] <= out[f]["value"] <= out[f]["high"]
    assert out["profit"]["high"] > out["profit"]["low"]


def test_without_a_lift_nothing_is_priced():
    out = targeting.policy_outcomes(Y, P, 0.3, ECON, None, n_boot=100)
    assert out["offers"]["value"] == 6
    assert all(math.isnan(out[f][k]) for f in targeting.PRICED_FIELDS for k in ("value", "low", "high"))
    r = targeting.recommend_policies(Y, P, Y, P, ECON, None, n_boot=0)
    # No recommendation: audiences of the ranking, each with its break-even lift.
    assert r["policy"].tolist() == ["top 5%", "top 10%", "top 20%"] and not r["priced"].any()
    assert r["profit"].isna().all() and r["realized_profit"].isna().all()
    assert r["threshold"].tolist() == [0.9, 0.9, 0.8]
    # The top user (p = 0.9) breaks even when tau = cost / value = 0.1, a lift of 0.1 / 0.9.
    assert r.loc[1, "break_even_lift"] == pytest.approx(0.1 / 0.9)
    w = targeting.what_if(Y, P, Y, P, ECON, None)
    assert not w.sends_offers and w.assumption().startswith("unpriced: give --assumed-lift")


def test_policy_interval_covers_the_expected_profit_about_95_percent_of_the_time():
    # Scores are true probabilities, lift +1pp absolute at cost 1, value 100: an offer to p >= 0.5
    # earns 100 * 0.01 - 1 - 2 * (p + 0.01) with discount 2, so per user E = 0.5 * (-2 * (0.75 + 0.01)).
    rng = np.random.default_rng(1)
    econ, lift = Economics(1.0, 100.0, 2.0), Lift.parse("1pp")
    n, hits = 300, 0
    for i in range(120):
        p = rng.random(n)
        y = (rng.random(n) < p).astype(int)
        out = targeting.policy_outcomes(y, p, 0.5, econ, lift, n_boot=200, seed=i)
        hits += out["realized_profit"]["low"] <= n * 0.5 * (-2 * 0.76) <= out["realized_profit"]["high"]
    assert 0.85 <= hits / 120 <= 0.995


def test_policy_interval_narrows_with_more_users():
    rng = np.random.default_rng(2)
    widths = []
    for n in (500, 20000):
        p = rng.random(n)
        y = (rng.random(n) < p).astype(int)
        out = targeting.policy_outcomes(y, p, 0.5, ECON, HALF, n_boot=300)
        widths.append((out["profit"]["high"] - out["profit"]["low"]) / n)
    assert widths[1] < widths[0] / 3


def test_recommend_policies_uses_the_fit_scores_for_cutoffs():
    r = targeting.recommend_policies(Y, P, Y, P, ECON, HALF, n_boot=200)
    assert r["policy"].tolist() == ["recommended", "half the offers", "double the offers"]
    assert r["threshold"].tolist() == [0.3, 0.8, 0.1]
    np.testing.assert_allclose(r["profit"], [5.0, 2.0, 4.5], atol=1e-12)
    assert r["priced"].all() and r.loc[0, "budget"] == pytest.approx(6.0)
    # Break-even of the recommended audience (p >= 0.3, mean 3.7 / 6): tau = 1 / 10, relative to the mean.
    assert r.loc[0, "break_even_lift"] == pytest.approx(0.1 / (3.7 / 6))


def test_a_policy_that_loses_money_is_never_recommended():
    # At cost 5 and value 10 a +20% lift adds at most 2 * p < 5 an offer: every cut-off loses.
    loses = Economics(5.0, 10.0)
    curve = targeting.priced_curve(Y, P, loses, Lift.parse("20%"))
    assert (curve["profit"].iloc[1:] < 0).all()
    r = targeting.recommend_policies(Y, P, Y, P, loses, Lift.parse("20%"), n_boot=0)
    assert r["policy"].tolist() == ["recommended"] and r.loc[0, "offers"] == 0
    assert r.loc[0, "threshold"] == targeting.NO_OFFER and r.loc[0, "profit"] == 0
    assert targeting.choose_threshold(Y, P, "profit", loses, Lift.parse("20%")) == targeting.NO_OFFER
    # A discount on p + tau makes even the likeliest upgraders a loss under an absolute lift.
    r = targeting.recommend_policies(Y, P, Y, P, Economics(1.0, 10.0, 2.0), Lift.parse("10pp"), n_boot=0)
    assert r.loc[0, "offers"] == 0
