"""The events run's offer policy: priced by what the offer adds, per campaign, never at a loss."""

from __future__ import annotations

import numpy as np
import pytest

from upgrade_predictor.economics import Economics, Lift
from upgrade_predictor.forecast.policy import NO_OFFER, break_even, choose_threshold, judge

ECON = Economics(offer_cost=5.0, upgrade_value=100.0, discount=10.0)


def _campaigns(n_users: int = 400, weeks: int = 4, seed: int = 0):
    """Users free on `weeks` dates, scored p, upgrading at rate p."""
    rng = np.random.default_rng(seed)
    users = np.tile(np.arange(n_users), weeks)
    dates = np.repeat(np.arange(weeks).astype("datetime64[D]"), n_users)
    p = rng.beta(0.5, 8, len(users))
    y = (rng.random(len(users)) < p).astype(int)
    return y, p, users, dates


def test_profit_counts_only_what_the_lift_adds():
    y, p, users, dates = _campaigns()
    lift = Lift.parse("20%")
    thr = float(np.quantile(p, 0.8))
    pol = judge(y, p, users, dates, thr, ECON, lift, scale=1.0, seed=1)
    sel = p >= thr
    offers, reached = sel.sum() / 4, (sel & (y == 1)).sum() / 4
    # (V - D) x 0.2 x reached - C x offers - D x reached, per campaign, by hand
    assert pol.per_campaign["profit"]["value"] == pytest.approx(
        90 * 0.2 * reached - 5 * offers - 10 * reached
    )
    assert pol.per_campaign["incremental_upgrades"]["value"] == pytest.approx(0.2 * reached)
    lo, hi = pol.per_campaign["profit"]["low"], pol.per_campaign["profit"]["high"]
    assert lo < pol.per_campaign["profit"]["value"] < hi
    assert pol.per_1000["offers"]["value"] == pytest.approx(sel.sum() * 1000 / len(y))
    assert pol.campaigns == 4 and pol.users_per_campaign == 400
    # at the break-even lift the audience's profit is zero
    assert pol.profit_at(np.array([pol.break_even_lift]), True)[0] == pytest.approx(0, abs=1e-9)


def test_an_absolute_lift_prices_every_offer_alike():
    t = np.array([100.0, 8.0, 0.0])
    # 100 offers reaching 8: (C x 100 + D x 8) / ((V - D) x 100)
    assert break_even(t, ECON, relative=False) == pytest.approx((500 + 80) / 9000)
    assert break_even(t, ECON, relative=True) == pytest.approx((500 + 80) / (90 * 8))


def test_no_lift_prices_nothing_and_a_loss_is_never_picked():
    y, p, users, dates = _campaigns()
    assert choose_threshold(y, p, ECON, None) == NO_OFFER
    assert choose_threshold(y, p, Economics(150.0, 100.0), Lift.parse("50%")) == NO_OFFER
    thr = choose_threshold(y, p, Economics(0.5, 100.0), Lift.parse("50%"))
    assert thr < NO_OFFER
    pol = judge(y, p, users, dates, NO_OFFER, ECON, None, 1.0, 0)
    assert not pol.priced and not pol.pays and pol.break_even_share == 0.1
    assert "not priced" in pol.assumption() and np.isfinite(pol.break_even_lift)


def test_a_bad_lift_is_refused_with_the_option_named():
    from upgrade_predictor.errors import InputError
    from upgrade_predictor.forecast.options import EventOptions

    with pytest.raises(InputError, match="--assumed-lift"):
        EventOptions(assumed_lift="twenty").check_kind()
