"""The report's economics panel: offer cost, upgrade value and budget typed into the page give the same
policies, break-even cost and profit curve as targeting.what_if, offline, in print and without script."""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from upgrade_predictor import targeting
from upgrade_predictor.errors import InputError
from upgrade_predictor.reporting import campaign, report
from upgrade_predictor.reporting.campaign import targeting_section
from upgrade_predictor.reporting.format import money, num, pct
from upgrade_predictor.training.runs import load_run

sys.path.insert(0, str(Path(__file__).parent))
from conftest import headless_chromium  # noqa: E402
from test_insights import fabricate_run  # noqa: E402

# The hand-worked users of test_targeting. In score order:
# score 0.9 0.8 0.8 0.5 0.4 0.3 0.2 0.1
# label   1   1   0   0   1   0   0   0   (ranked, the tie at 0.8 puts the non-upgrader first: 1 0 1 0 1 0 0 0)
ORDER = [5, 2, 7, 0, 4, 1, 6, 3]
P = np.array([0.9, 0.8, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1])[ORDER]
Y = np.array([1, 1, 0, 0, 1, 0, 0, 0])[ORDER]


# ---------------------------------------------------------------- the Python calculation


def test_a_cap_keeps_the_best_scored_users_and_splits_a_tie_pessimistically():
    out = targeting.policy_outcomes(Y, P, 0.4, offer_cost=1.0, upgrade_value=10.0, n_boot=0, max_offers=2)
    # Five users score >= 0.4; the cap keeps 0.9 (upgrader) and, of the tie at 0.8, the non-upgrader.
    assert out["offers"]["value"] == 2 and out["upgraders_reached"]["value"] == 1
    assert out["profit"]["value"] == 8
    uncapped = targeting.policy_outcomes(Y, P, 0.4, 1.0, 10.0, n_boot=0, max_offers=5)
    assert uncapped["offers"]["value"] == 5 and uncapped["profit"]["value"] == 25


def test_recommend_policies_within_a_budget():
    r = targeting.recommend_policies(Y, P, Y, P, 1.0, 10.0, n_boot=0, max_offers=4)
    # Without a cap the best cut-off offers 5 (profit 25); within 4 offers the best is 0.8 (3 offers, 17).
    # Half of 3/8 is 1.5 users, which Python's round takes to 2 (score 0.8); double (6) is over the budget.
    assert r["policy"].tolist() == ["recommended", "half the offers"]
    assert r["threshold"].tolist() == [0.8, 0.8]
    assert r["offers"].tolist() == [3, 3] and r["profit"].tolist() == [17, 17]
    assert r.loc[0, "budget"] == pytest.approx(3.0)
    nothing = targeting.recommend_policies(Y, P, Y, P, 1.0, 10.0, n_boot=0, max_offers=0)
    assert nothing["policy"].tolist() == ["recommended"] and nothing.loc[0, "offers"] == 0


def test_offers_for_budget_counts_whole_offers():
    assert targeting.offers_for_budget(0.3, 0.1) == 3  # not 2, although 0.3 / 0.1 < 3 in floating point
    assert targeting.offers_for_budget(99.99, 10.0) == 9
    with pytest.raises(InputError, match="offer cost must be positive"):
        targeting.offers_for_budget(10.0, 0.0)
    with pytest.raises(InputError, match="budget must not be negative"):
        targeting.offers_for_budget(-1.0, 5.0)


def test_break_even_cost_reads_the_best_reach_of_enough_offers():
    # Curve: offers 1 3 4 5 6 7 8, upgraders reached 1 2 2 3 3 3 3.
    assert targeting.break_even_cost(Y, P, 10.0, min_offers=1) == pytest.approx(10.0)
    assert targeting.break_even_cost(Y, P, 10.0, min_offers=3) == pytest.approx(10 * 2 / 3)
    # Fewer users than the minimum: every user is offered.
    assert targeting.break_even_cost(Y, P, 10.0) == pytest.approx(10 * 3 / 8)


def test_what_if_without_a_budget_is_the_report_policy_without_intervals():
    w = targeting.what_if(Y, P, Y, P, 1.0, 10.0)
    full = targeting.recommend_policies(Y, P, Y, P, 1.0, 10.0, n_boot=200)
    for f in ["threshold", "planned_share", "budget", *targeting.POLICY_FIELDS]:
        assert w.policies[f].tolist() == full[f].tolist()
    assert w.policies["profit_per_1000"].tolist() == [25 * 125, 17 * 125, 22 * 125]
    assert w.sends_offers and w.max_offers is None
    assert not targeting.what_if(Y, P, Y, P, 10.0, 10.0).sends_offers  # an offer costing its value never pays


# ---------------------------------------------------------------- the page


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A report built from a small synthetic run, and the scores its targeting section used."""
    from conftest import synthetic_frame

    folder = tmp_path_factory.mktemp("economics_run")
    synthetic_frame(2500, seed=5).to_csv(folder / "table.csv", index=False)
    run_dir = fabricate_run(
        folder / "run", folder / "table.csv", (("logreg", "none"),), chosen_family="logreg"
    )
    path = report.build_report(run_dir)
    return path, targeting_section(load_run(run_dir))


@pytest.fixture(scope="module")
def chromium():
    with headless_chromium() as browser:
        yield browser


READ = """() => {
  const fields = (root) => Object.fromEntries(Array.from(root.querySelectorAll("[data-field]"))
    .map((e) => [e.dataset.field, {text: e.textContent, value: e.dataset.value}]));
  return {
    summary: document.getElementById("econ-summary").textContent,
    fields: {...fields(document.getElementById("econ-summary")), ...fields(document.getElementById("econ-breakeven"))},
    rows: Array.from(document.querySelectorAll("#econ-table tbody tr"))
      .map((tr) => ({policy: tr.dataset.policy, cells: fields(tr)})),
  };
}"""

# The live table's columns and the format the static table gives each.
COLUMNS = {
    "threshold": num,
    "planned_share": pct,
    "budget": money,
    "offers": lambda v: num(v, 0),
    "upgraders_reached": lambda v: num(v, 0),
    "share_of_upgraders": pct,
    "profit": money,
    "offers_per_1000": lambda v: num(v, 0),
    "upgraders_reached_per_1000": lambda v: num(v, 0),
    "profit_per_1000": money,
}
MONEY = {"budget", "profit", "profit_per_1000"}


def same(field: str, page: str, python: float) -> bool:
    """Money to the cent, everything else exactly (both compute on the same doubles)."""
    shown = float(page)
    if math.isnan(python) or math.isinf(python):
        return math.isnan(shown) if math.isnan(python) else shown == python
    return abs(shown - python) < 0.005 if field in MONEY else shown == python


def set_economics(page, cost: float, value: float, budget: float | None) -> dict:
    page.fill("#econ-cost", repr(cost))
    page.fill("#econ-value", repr(value))
    page.fill("#econ-budget", "" if budget is None else repr(budget))
    return page.evaluate(READ)


def check_against_python(shown: dict, w: targeting.WhatIf) -> None:
    pol = w.policies
    assert [r["policy"] for r in shown["rows"]] == pol["policy"].tolist()
    for row, (_, expected) in zip(shown["rows"], pol.iterrows()):
        for field, fmt in COLUMNS.items():
            cell = row["cells"][field]
            assert same(field, cell["value"], expected[field]), (row["policy"], field, cell, expected[field])
            assert cell["text"] == fmt(expected[field]), (row["policy"], field, cell["text"])
    be = shown["fields"]["break_even_cost"]
    assert abs(float(be["value"]) - w.break_even_cost) < 0.005 and be["text"] == num(w.break_even_cost, 2)
    rec = pol.iloc[0]
    if w.sends_offers:
        f = shown["fields"]
        assert (
            f["threshold"]["text"] == num(rec["threshold"])
            and float(f["threshold"]["value"]) == rec["threshold"]
        )
        assert f["profit"]["text"] == money(rec["profit"]) and same(
            "profit", f["profit"]["value"], rec["profit"]
        )
        assert f["offers"]["text"] == num(rec["offers"], 0)
    else:
        assert shown["summary"].startswith("Policy: send no offers.")
        assert "threshold" not in shown["fields"] and shown["rows"][0]["cells"]["threshold"]["text"] == "n/a"
    if w.max_offers is not None:
        assert int(shown["fields"]["max_offers"]["value"]) == w.max_offers


def test_the_page_recomputes_the_economics_as_python_does(built, chromium):
    path, tgt = built
    s = tgt.scores
    assert s is not None
    html = path.read_text()
    # The page embeds the very scores the Python calculation used, and its own script verbatim.
    embedded = json.loads(
        re.search(r'<script type="application/json" id="economics-data">(.*?)</script>', html)[1]
    )
    assert embedded == json.loads(json.dumps(tgt.economics_data()))
    js = (Path(report.__file__).parents[1] / "templates" / "economics.js").read_text()
    assert js.strip() in html
    # Without script, the run's own break-even cost is stated.
    assert f"Break-even offer cost: <strong>{num(tgt.break_even_cost, 2)}</strong>" in html

    requests, errors = [], []
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else requests.append(r.url))
    page.route(re.compile(r"^(?!file:|data:)"), lambda route: route.abort())
    page.goto(path.as_uri(), wait_until="load")
    assert page.is_visible("#econ-chart") and not page.is_visible("#profit-static")

    def python(cost, value, budget=None):
        return targeting.what_if(s.y_fit, s.p_fit, s.y_eval, s.p_eval, cost, value, budget)

    # The run's own economics: the page agrees with the report's static table, point for point.
    run_econ = python(tgt.offer_cost, tgt.upgrade_value)
    for f in ["threshold", "offers", "profit", "profit_per_1000"]:
        assert run_econ.policies[f].tolist() == tgt.policies[f].tolist()
    # A budget that buys fewer offers than the best cut-off would send.
    at_12 = python(12.0, 100.0)
    tight = float(at_12.policies["budget"].iloc[0]) / 2
    # A cost nothing repays: an offer as dear as the upgrade it might bring.
    settings = [
        (tgt.offer_cost, tgt.upgrade_value, None),
        (12.0, 100.0, None),
        (12.0, 100.0, tight),
        (12.5, 100.0, None),  # odd numbers of offers give profits ending in .5: Python rounds them to even
        (60.0, 60.0, None),
        (5.0, 100.0, 4.0),  # a budget too small for a single offer
    ]
    seen_half = False
    for cost, value, budget in settings:
        w = python(cost, value, budget)
        shown = set_economics(page, cost, value, budget)
        check_against_python(shown, w)
        seen_half |= any(float(r["cells"]["profit"]["value"]) % 1 == 0.5 for r in shown["rows"])
        # The drawn curve is the profit curve of the test rows.
        curve = page.evaluate(
            "([c, v, b]) => { const k = window.upgradeEconomics.compute(c, v, b).curve;"
            " return {offers: Array.from(k.offers), profit: Array.from(k.profit), share: Array.from(k.share)}; }",
            [cost, value, budget],
        )
        assert curve["offers"] == w.curve["offers"].tolist()
        assert (
            curve["profit"] == w.curve["profit"].tolist()
            and curve["share"] == w.curve["share_offered"].tolist()
        )
    assert seen_half
    assert not python(60.0, 60.0).sends_offers and python(12.0, 100.0, tight).max_offers is not None

    # A cost of zero is refused in words, not computed.
    page.fill("#econ-cost", "0")
    assert page.is_visible("#econ-error") and "offer cost above 0" in page.inner_text("#econ-error")
    assert not page.is_visible("#econ-table")
    page.click("#econ-reset")
    assert float(page.input_value("#econ-cost")) == tgt.offer_cost and not page.is_visible("#econ-error")

    # Printing: the inputs give way to a line stating the economics shown; the page still makes a PDF.
    set_economics(page, 12.0, 100.0, None)
    page.emulate_media(media="print")
    assert not page.is_visible("#econ-form") and page.is_visible("#econ-print")
    assert "offer cost 12, upgrade value 100" in page.inner_text("#econ-print")
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 50_000
    context.close()
    assert requests == [] and errors == []


def test_without_script_the_static_targeting_remains(built, chromium):
    path, tgt = built
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(path.as_uri(), wait_until="load")
    assert page.is_visible("#profit-static img") and not page.is_visible("#economics")
    static = page.inner_text("#policy-table")
    assert money(tgt.policies["profit"].iloc[0]) in static
    context.close()


def test_a_run_with_too_many_scores_leaves_the_panel_out_and_says_so(built, tmp_path, monkeypatch):
    path, tgt = built
    run_dir = tmp_path / "run"
    shutil.copytree(path.parent, run_dir)
    monkeypatch.setattr(campaign, "ECONOMICS_MAX_ROWS", tgt.n_test)
    html = report.build_report(run_dir).read_text()
    assert "<script" not in html and 'id="economics"' not in html
    assert f"only up to\n{tgt.n_test:,} scored rows" in html
    assert 'id="profit-static"' in html and 'id="policy-table"' in html
