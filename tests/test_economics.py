"""The price of an offer: incremental profit, break-even lifts and the lift option's spelling."""

import numpy as np
import pytest

from upgrade_predictor.economics import Economics, Lift
from upgrade_predictor.errors import InputError


def test_profit_counts_only_what_the_offer_causes():
    econ = Economics(offer_cost=5, upgrade_value=100, discount=20)
    # p = 0.3 would upgrade anyway; tau = 0.1 more: 100*0.1 - 5 - 20*(0.4) = -3
    assert econ.profit(0.3, 0.1) == pytest.approx(-3.0)
    # without a discount the same offer pays 5
    assert Economics(5, 100).profit(0.3, 0.1) == pytest.approx(5.0)
    # a user the offer does not move costs the offer and the discount they redeem
    assert econ.profit(0.5, 0.0) == pytest.approx(-15.0)


def test_break_even_tau_zeroes_the_profit():
    econ = Economics(offer_cost=5, upgrade_value=100, discount=10)
    p = np.array([0.01, 0.2, 0.6])
    tau = econ.break_even_tau(p)
    np.testing.assert_allclose(econ.profit(p, tau), 0.0, atol=1e-12)


def test_break_even_lift_of_a_group():
    econ = Economics(offer_cost=2, upgrade_value=100)
    p = np.array([0.01, 0.03])
    assert econ.break_even_lift(p, relative=False) == pytest.approx(0.02)
    assert econ.break_even_lift(p, relative=True) == pytest.approx(1.0)  # tau 0.02 is 100% of mean p 0.02
    # at the break-even relative lift the group's total expected profit is zero
    rel = Lift(econ.break_even_lift(p, relative=True), relative=True)
    assert econ.profit(p, rel.tau(p)).sum() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "text, value, relative",
    [("20%", 0.2, True), ("+20%", 0.2, True), ("1.5pp", 0.015, False), (" .5 pp", 0.005, False)],
)
def test_lift_parses_both_kinds(text, value, relative):
    lift = Lift.parse(text)
    assert lift.value == pytest.approx(value) and lift.relative is relative


@pytest.mark.parametrize("text", ["0.2", "-5%", "abc", "20", "150pp"])
def test_lift_refuses_an_unclear_spelling(text):
    with pytest.raises(InputError, match="--assumed-lift|absolute lift"):
        Lift.parse(text)


def test_tau_never_pushes_a_probability_past_one():
    assert Lift(0.5, relative=False).tau(np.array([0.8]))[0] == pytest.approx(0.2)
    assert Lift(1.0, relative=True).tau(np.array([0.7]))[0] == pytest.approx(0.3)
    assert "assumed lift of +20% of each user" in Lift(0.2, relative=True).describe()


def test_economics_refuses_a_discount_that_eats_the_upgrade():
    with pytest.raises(InputError, match="--discount"):
        Economics(5, 100, discount=100)
    with pytest.raises(InputError, match="--offer-cost"):
        Economics(-1, 100)
