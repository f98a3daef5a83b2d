"""The balance check of a plan's arms, and the campaign pages: self-contained, plotted, escaped."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from test_campaign_readout import plan_record
from upgrade_predictor.campaign.assign import HOLDOUT, OFFER, assign
from upgrade_predictor.campaign.balance import balance, smd
from upgrade_predictor.campaign.pages import plan_page, readout_page
from upgrade_predictor.campaign.readout import measure
from upgrade_predictor.campaign.records import Readout, from_dict, read_record, to_dict
from upgrade_predictor.campaign.run import build
from upgrade_predictor.economics import Economics

ECON = Economics(offer_cost=2.0, upgrade_value=100.0, discount=10.0)


def drawn(n: int = 5_000, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = np.array([f"u{i:05d}" for i in range(n)])
    return assign(ids, rng.beta(1.2, 18, n), holdout=0.2, seed=seed)


def test_the_standardized_mean_difference_is_the_textbook_one():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 3.0, 4.0])
    assert smd(a, b) == pytest.approx(-1.0)  # means 2 and 3, both variances 1
    assert smd(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.0


def test_a_fair_draw_is_balanced_in_every_band():
    # 2,000 held out per band: the SMD of a fair draw has an sd of 0.025, so 0.1 is four of them.
    table = drawn(50_000)
    b = balance(table)
    assert b.bands[0].chance == pytest.approx(np.sqrt(1 / 8_000 + 1 / 2_000))
    assert not b.flagged and [x.band for x in b.bands] == [1, 2, 3, 4, 5]
    assert set(b.overall.smd) == {"probability", "rank"}  # every numeric column of assignments.csv
    for x in [b.overall, *b.bands]:
        assert abs(x.smd["probability"]) < 0.1 and x.flagged == []
    offer = table["arm"] == OFFER
    assert b.overall.offer_mean_probability == pytest.approx(table.loc[offer, "probability"].mean())
    assert b.overall.holdout_mean_probability == pytest.approx(table.loc[~offer, "probability"].mean())


def test_a_skewed_split_and_an_unbalanced_extra_column_are_flagged():
    table = drawn()
    band1 = table.index[table["band"] == 1]
    held = (table.loc[band1, "arm"] == HOLDOUT).sum()
    # The holdout of band 1 gets its lowest-ranked users: the draw is no longer random.
    table.loc[band1, "arm"] = np.where(np.arange(len(band1)) >= len(band1) - held, HOLDOUT, OFFER)
    b = balance(table)
    first = b.bands[0]
    assert b.flagged and "probability" in first.flagged and "rank" in first.flagged
    assert first.holdout_mean_probability < first.offer_mean_probability
    assert all(x.flagged == [] for x in b.bands[1:])
    fair = drawn()
    tenure = np.where(fair["arm"] == OFFER, 10.0, 30.0) + np.random.default_rng(0).normal(0, 5, len(fair))
    extra = balance(fair.assign(tenure_days=tenure))
    assert "tenure_days" in extra.overall.flagged and "probability" not in extra.overall.flagged


def readout_of(table: pd.DataFrame) -> Readout:
    rng = np.random.default_rng(5)
    first = pd.Series(
        np.where(rng.random(len(table)) < table["probability"] * 3, "2022-07-20", None), dtype="object"
    )
    return build(plan_record(), table, pd.to_datetime(first), date(2022, 8, 31))


def test_the_readout_carries_the_balance_and_an_older_readout_still_reads(tmp_path):
    r = readout_of(drawn())
    assert (
        r.balance is not None and r.balance == measure(drawn().assign(upgraded=0), ECON, 0.2).balance
    )  # the check looks at the assignments, not the outcomes
    path = tmp_path / "readout.json"
    path.write_text(json.dumps(to_dict(r)))
    assert read_record(Readout, path) == r
    old = to_dict(r)
    del old["balance"]
    for band in old["bands"]:
        del band["difference"]
    assert from_dict(Readout, old, "readout.json").balance is None


def test_the_readout_page_plots_the_effects_and_shows_the_balance():
    r = readout_of(drawn())
    html = readout_page(r)
    assert "<script" not in html and "http" not in html
    assert html.count("<img src='data:image/svg+xml;base64,") == 3  # overall, profit, per band
    assert "Balance of the arms" in html and "SMD probability" in html
    assert all(b.difference is not None for b in r.bands)
    d = r.bands[0].difference
    assert d is not None and d.low < d.value < d.high
    assert d.value == pytest.approx(r.bands[0].offer.rate - r.bands[0].holdout.rate)


def test_user_text_on_the_plan_page_is_escaped():
    table = drawn()
    plan = from_dict(type(plan_record()), {**to_dict(plan_record()), "model": "<b>m</b>.zip"}, "x")
    html = plan_page(plan, table)
    assert "<b>m</b>" not in html and "&lt;b&gt;m&lt;/b&gt;.zip" in html
    assert html.count("<img src='data:image/svg+xml;base64,") == 1 and "<script" not in html
