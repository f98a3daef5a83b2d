"""Campaign assignment and power: the target group, its bands, the seeded stratified split, the MDE."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from upgrade_predictor.campaign.assign import BANDS, HOLDOUT, OFFER, assign, to_csv
from upgrade_predictor.campaign.power import CANNOT_TELL, campaign_power, minimum_detectable_effect
from upgrade_predictor.economics import Economics
from upgrade_predictor.errors import InputError


def users(n: int = 5_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"user_id": [f"u{i:06d}" for i in rng.permutation(n)], "p": rng.beta(1.2, 18, n)})


def test_every_band_holds_out_the_share_and_band_one_is_the_most_likely():
    u = users(5_003)
    a = assign(u["user_id"], u["p"], holdout=0.25, seed=1)
    assert len(a) == 5_003 and list(a["rank"]) == list(range(1, 5_004))
    assert a["probability"].is_monotonic_decreasing
    for band in range(1, BANDS + 1):
        rows = a[a["band"] == band]
        assert abs(len(rows) - 5_003 / BANDS) <= 1
        assert abs((rows["arm"] == HOLDOUT).sum() - 0.25 * len(rows)) <= 0.5
    for band in range(1, BANDS):
        worst = a.loc[a["band"] == band, "probability"].min()
        assert worst >= a.loc[a["band"] == band + 1, "probability"].max()
    # The draw is random within a band, not by rank: held-out ranks are spread over the band.
    held = a.loc[(a["band"] == 1) & (a["arm"] == HOLDOUT), "rank"]
    assert held.min() < 100 and held.max() > 900


def test_the_same_seed_gives_the_same_bytes_whatever_the_input_order():
    u = users()
    first = to_csv(assign(u["user_id"], u["p"], seed=7))
    shuffled = u.sample(frac=1, random_state=3)
    assert to_csv(assign(shuffled["user_id"], shuffled["p"], seed=7)) == first
    other = assign(u["user_id"], u["p"], seed=8)
    assert to_csv(other) != first
    assert (other["arm"] == HOLDOUT).sum() == (assign(u["user_id"], u["p"], seed=7)["arm"] == HOLDOUT).sum()


def test_an_arm_below_the_minimum_is_refused_with_the_numbers():
    u = users(100)
    with pytest.raises(InputError, match=r"offer arm would hold 80 and the holdout 20.*at least 30"):
        assign(u["user_id"], u["p"], holdout=0.2)
    assert len(assign(u["user_id"], u["p"], holdout=0.4)) == 100  # 40 held out is enough
    with pytest.raises(InputError, match="--holdout"):
        assign(u["user_id"], u["p"], holdout=1.0)


def test_top_and_budget_select_the_most_likely_users():
    u = users()
    best = set(u.sort_values("p", ascending=False)["user_id"].head(600))
    top = assign(u["user_id"], u["p"], top=600)
    assert len(top) == 600 and set(top["user_id"]) == best
    budget = assign(u["user_id"], u["p"], budget=3_000.0, offer_cost=5.0)
    assert len(budget) == 600 and set(budget["user_id"]) == best
    assert len(assign(u["user_id"], u["p"])) == len(u)  # default: every scored user
    with pytest.raises(InputError, match="--top or --budget"):
        assign(u["user_id"], u["p"], top=10, budget=10.0, offer_cost=1.0)
    with pytest.raises(InputError, match="more than once"):
        assign(pd.concat([u["user_id"], u["user_id"]]), pd.concat([u["p"], u["p"]]))


def test_the_mde_matches_the_closed_form_and_shrinks_with_more_users():
    p0, n1, n0 = 0.06, 8_000, 2_000
    mde = minimum_detectable_effect(n1, n0, p0)
    # Closed form on the arcsine scale: h = (z_.975 + z_.8) * sqrt(1/n1 + 1/n0).
    h = (1.959964 + 0.841621) * math.sqrt(1 / n1 + 1 / n0)
    assert mde == pytest.approx(math.sin(math.asin(math.sqrt(p0)) + h / 2) ** 2 - p0, rel=1e-4)
    assert minimum_detectable_effect(4 * n1, 4 * n0, p0) < mde
    # The normal rule with the variance of both rates (p0 and p0 + mde) agrees to within a few percent (the arcsine scale is an approximation).
    p1 = p0 + mde
    rule = 2.8016 * math.sqrt(p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1)
    assert mde == pytest.approx(rule, rel=0.05)


def test_a_campaign_too_small_to_see_its_break_even_says_so():
    p = np.full(400, 0.05)
    cheap = campaign_power(p, 320, 80, Economics(offer_cost=50, upgrade_value=100))
    assert cheap.break_even == pytest.approx(0.5) and cheap.can_tell and cheap.warning is None
    dear = campaign_power(p, 320, 80, Economics(offer_cost=1, upgrade_value=100))
    assert dear.mde > dear.break_even == pytest.approx(0.01)
    assert dear.warning is not None and dear.warning.startswith(CANNOT_TELL)


def test_offer_and_holdout_are_the_only_arms():
    u = users(1_000)
    a = assign(u["user_id"], u["p"])
    assert set(a["arm"]) == {OFFER, HOLDOUT}
