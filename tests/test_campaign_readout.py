"""Readout statistics: interval coverage over simulated worlds, the adjusted estimator, the profit, the
sample-ratio check, the horizon window and the strict records."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from upgrade_predictor.campaign.assign import HOLDOUT, OFFER, assign
from upgrade_predictor.campaign.readout import measure, sample_ratio
from upgrade_predictor.campaign.records import Plan, Readout, from_dict, read_record, to_dict
from upgrade_predictor.campaign.run import build
from upgrade_predictor.economics import Economics
from upgrade_predictor.errors import InputError

ECON = Economics(offer_cost=2.0, upgrade_value=100.0, discount=10.0)
N_USERS = 10_000  # 2,000 held out, about 125 upgrades: the normal interval holds
WORLDS = 200  # per kind of effect: 600 worlds put the sd of the pooled coverage at 0.9pp


def effects(kind: str, p: np.ndarray) -> np.ndarray:
    if kind == "homogeneous":
        return np.full_like(p, 0.01)
    if kind == "proportional":
        return 0.3 * p  # heterogeneous: the likelier users are moved more
    return np.zeros_like(p)


def simulate(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Worlds of one population: each re-randomizes the assignment and draws outcomes with effect tau;
    per world, whether each interval covers mean(tau), and each interval's width."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"u{i:05d}" for i in range(N_USERS)])
    p = rng.beta(1.2, 18, N_USERS)
    tau = effects(kind, p)
    truth = tau.mean()
    cover = np.zeros((WORLDS, 2), dtype=bool)
    width = np.zeros((WORLDS, 2))
    for w in range(WORLDS):
        a = assign(ids, p, holdout=0.2, seed=seed * 10_000 + w)
        pa, offered = a["probability"].to_numpy(), a["arm"].to_numpy() == OFFER
        t = effects(kind, pa)
        y = rng.random(N_USERS) < pa + np.where(offered, t, 0.0)
        m = measure(a.assign(upgraded=y.astype(int)), ECON, 0.2)
        for j, i in enumerate((m.effect.difference, m.effect.adjusted)):
            cover[w, j] = i.low <= truth <= i.high
            width[w, j] = i.high - i.low
    return cover[:, 0], width[:, 0], width[:, 1]


@pytest.mark.slow  # about 8 s: 600 worlds of 10,000 users
def test_the_intervals_cover_the_true_effect_and_adjustment_narrows_them():
    covered, plain, adjusted = [], [], []
    for seed, kind in enumerate(("homogeneous", "proportional", "zero"), start=1):
        c, w_plain, w_adj = simulate(kind, seed)
        assert 0.90 <= c.mean() <= 0.99, (kind, c.mean())
        covered.append(c)
        plain.append(w_plain)
        adjusted.append(w_adj)
    assert 0.93 <= np.concatenate(covered).mean() <= 0.97
    assert np.concatenate(adjusted).mean() < np.concatenate(plain).mean()


def small_example() -> pd.DataFrame:
    """40 offered users of whom 10 upgrade, 40 held out of whom 4 do."""
    arm = [OFFER] * 40 + [HOLDOUT] * 40
    upgraded = [1] * 10 + [0] * 30 + [1] * 4 + [0] * 36
    return pd.DataFrame(
        {"probability": [0.1] * 80, "band": [1, 2, 3, 4, 5] * 16, "arm": arm, "upgraded": upgraded}
    )


def test_incremental_profit_is_the_hand_computation():
    m = measure(small_example(), ECON, 0.5)
    d = m.effect.difference
    assert d.value == pytest.approx(10 / 40 - 4 / 40)
    se = np.sqrt(0.25 * 0.75 / 40 + 0.1 * 0.9 / 40)
    assert (d.low, d.high) == pytest.approx((0.15 - 1.959964 * se, 0.15 + 1.959964 * se))
    # V*tau - C - D*(p + tau) per offered user, p the holdout's rate: 100*0.15 - 2 - 10*0.25 = 10.5.
    assert m.profit.incremental.value == pytest.approx(40 * 10.5)
    assert m.profit.incremental.low == pytest.approx(40 * (90 * d.low - 2 - 10 * 0.1))
    assert m.incremental_upgrades.value == pytest.approx(6.0)
    assert (m.offer.upgrades, m.holdout.upgrades) == (10, 4)
    assert m.calibration.holdout_expected == pytest.approx(4.0) and m.calibration.holdout_actual == 4
    assert sum(b.offer.users + b.holdout.users for b in m.bands) == 80


def test_the_sample_ratio_check_flags_a_skewed_split():
    assert not sample_ratio(8_000, 2_000, 0.2).mismatch
    skewed = sample_ratio(8_300, 1_700, 0.2)
    assert skewed.mismatch and skewed.p_value < 1e-6
    assert skewed.observed_holdout_share == pytest.approx(0.17)


def plan_record(as_of: str = "2022-07-15", horizon: int = 30) -> Plan:
    d = {
        "as_of": as_of, "horizon": horizon, "model": "m.zip", "model_sha256": "0" * 64, "events": "e",
        "mapping": None, "economics": ECON.as_dict(), "seed": 1, "holdout_share": 0.5, "top": None,
        "budget": None, "scored_users": 80, "targeted_users": 80,
        "offer": {"users": 40, "expected_upgrades": 4.0}, "holdout": {"users": 40, "expected_upgrades": 4.0},
        "power": {"baseline": 0.1, "mde": 0.2, "break_even": 0.03, "can_tell": False, "alpha": 0.05,
                  "power": 0.8, "method": "m", "warning": "w"},
        "assignments_sha256": "1" * 64,
    }  # fmt: skip
    return from_dict(Plan, d, "campaign.json")


def test_only_upgrades_inside_the_horizon_count_and_an_open_horizon_is_interim():
    table = small_example().drop(columns="upgraded")
    days = ["2022-07-14", "2022-07-15", "2022-08-13", "2022-08-14"] + [None] * 76
    first = pd.Series(pd.to_datetime(days))
    closed = build(plan_record(), table, first, date(2022, 8, 31))
    assert closed.horizon_closed and closed.days_open == 0 and closed.window_end == "2022-08-13"
    assert closed.offer.upgrades == 2  # the day before the as-of and the day after the window do not count
    open_ = build(plan_record(), table, first, date(2022, 8, 1))
    assert not open_.horizon_closed and open_.interim and open_.days_open == 12


def test_the_records_round_trip_and_refuse_an_unknown_key(tmp_path):
    plan = plan_record()
    assert from_dict(Plan, json.loads(json.dumps(to_dict(plan))), "x") == plan
    readout = build(
        plan, small_example().drop(columns="upgraded"), pd.Series([pd.NaT] * 80), date(2022, 9, 1)
    )
    path = tmp_path / "readout.json"
    path.write_text(json.dumps(to_dict(readout)))
    assert read_record(Readout, path) == readout
    bad = to_dict(readout)
    bad["effect"]["diference"] = bad["effect"].pop("difference")
    path.write_text(json.dumps(bad))
    with pytest.raises(InputError, match="effect: unknown key `diference`"):
        read_record(Readout, path)
    bad = to_dict(plan)
    bad["seed"] = "one"
    with pytest.raises(InputError, match="seed"):
        from_dict(Plan, bad, "campaign.json")
