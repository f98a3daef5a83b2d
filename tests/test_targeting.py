"""Hand-written gains, lift and profit curves, checked against examples worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from upgrade_predictor import targeting

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


def test_profit_curve_keeps_ties_together_and_finds_the_best_cutoff():
    c = targeting.profit_curve(Y, P, offer_cost=1.0, upgrade_value=10.0)
    # The two users at 0.8 are offered together, so there is no row for "2 offers".
    assert c["offers"].tolist() == [0, 1, 3, 4, 5, 6, 7, 8]
    assert c["upgraders_reached"].tolist() == [0, 1, 2, 2, 3, 3, 3, 3]
    assert c["profit"].tolist() == [0, 9, 17, 16, 25, 24, 23, 22]
    best = c.loc[c["profit"].idxmax()]
    assert best["threshold"] == 0.4 and best["share_offered"] == 5 / 8


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


def test_policy_outcome_point_values_and_interval():
    out = targeting.policy_outcomes(Y, P, threshold=0.4, offer_cost=1.0, upgrade_value=10.0, n_boot=500)
    assert out["offers"]["value"] == 5 and out["upgraders_reached"]["value"] == 3
    assert out["profit"]["value"] == 25
    assert out["share_of_upgraders"]["value"] == 1.0 and out["precision"]["value"] == 0.6
    for f in ("offers", "upgraders_reached", "profit", "share_offered"):
        assert out[f]["low"] <= out[f]["value"] <= out[f]["high"]
    assert out["profit"]["high"] > out["profit"]["low"]


def test_policy_interval_covers_the_expected_profit_about_95_percent_of_the_time():
    # Scores are true probabilities; offering to p >= 0.5 yields, per user, 0.5 offers and
    # E[p; p >= 0.5] = 0.375 upgrades, so expected profit = n * (0.375 * 4 - 0.5 * 1).
    rng = np.random.default_rng(1)
    n, hits = 300, 0
    for i in range(120):
        p = rng.random(n)
        y = (rng.random(n) < p).astype(int)
        out = targeting.policy_outcomes(y, p, 0.5, offer_cost=1.0, upgrade_value=4.0, n_boot=200, seed=i)
        hits += out["profit"]["low"] <= n * (0.375 * 4.0 - 0.5) <= out["profit"]["high"]
    assert 0.85 <= hits / 120 <= 0.995


def test_policy_interval_narrows_with_more_users():
    rng = np.random.default_rng(2)
    widths = []
    for n in (500, 20000):
        p = rng.random(n)
        y = (rng.random(n) < p).astype(int)
        out = targeting.policy_outcomes(y, p, 0.5, offer_cost=1.0, upgrade_value=4.0, n_boot=300)
        widths.append((out["profit"]["high"] - out["profit"]["low"]) / n)
    assert widths[1] < widths[0] / 3


def test_recommend_policies_uses_the_fit_scores_for_cutoffs():
    r = targeting.recommend_policies(Y, P, Y, P, offer_cost=1.0, upgrade_value=10.0, n_boot=200)
    assert r["policy"].tolist() == ["recommended", "half the offers", "double the offers"]
    assert r["threshold"].tolist() == [0.4, 0.8, 0.1]
    assert r["profit"].tolist() == [25, 17, 22]
    assert r.loc[0, "budget"] == pytest.approx(5.0)
