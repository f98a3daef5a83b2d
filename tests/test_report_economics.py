"""The report's economics panel: offer cost, upgrade value, discount, lift and budget typed into the page
give the same policies, break-even lifts and priced curve as targeting.what_if, offline, in print and
without script; without a lift nothing is priced."""

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
from upgrade_predictor.economics import Economics, Lift
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

ECON = Economics(1.0, 10.0)
HALF = Lift.parse("50%")  # per offer, in score order: 10 tau - 1 = 0, 1, 1, 1.5, 1, 0.5, 0, -0.5


def test_a_cap_keeps_the_best_scored_users_and_splits_a_tie_pessimistically():
    out = targeting.policy_outcomes(Y, P, 0.3, ECON, HALF, n_boot=0, max_offers=2)
    # Six users score >= 0.3; the cap keeps 0.9 (upgrader) and, of the tie at 0.8, the non-upgrader.
    assert out["offers"]["value"] == 2 and out["upgraders_reached"]["value"] == 1
    assert out["profit"]["value"] == pytest.approx(1.0)
    assert out["realized_profit"]["value"] == pytest.approx(5 * 1 - 2)
    uncapped = targeting.policy_outcomes(Y, P, 0.3, ECON, HALF, n_boot=0, max_offers=6)
    assert uncapped["offers"]["value"] == 6 and uncapped["profit"]["value"] == pytest.approx(5.0)


def test_recommend_policies_within_a_budget():
    r = targeting.recommend_policies(Y, P, Y, P, ECON, HALF, n_boot=0, max_offers=4)
    # Without a cap the best cut-off offers 6 (profit 5); within 4 offers the best is 0.5 (4 offers, 3.5).
    # Half of 4/8 is 2 users (score 0.8, a tie: 3 offers); double (8) is over the budget.
    assert r["policy"].tolist() == ["recommended", "half the offers"]
    assert r["threshold"].tolist() == [0.5, 0.8]
    assert r["offers"].tolist() == [4, 3]
    np.testing.assert_allclose(r["profit"], [3.5, 2.0])
    assert r.loc[0, "budget"] == pytest.approx(4.0)
    nothing = targeting.recommend_policies(Y, P, Y, P, ECON, HALF, n_boot=0, max_offers=0)
    assert nothing["policy"].tolist() == ["recommended"] and nothing.loc[0, "offers"] == 0


def test_offers_for_budget_counts_whole_offers():
    assert targeting.offers_for_budget(0.3, 0.1) == 3  # not 2, although 0.3 / 0.1 < 3 in floating point
    assert targeting.offers_for_budget(99.99, 10.0) == 9
    with pytest.raises(InputError, match="offer cost must be positive"):
        targeting.offers_for_budget(10.0, 0.0)
    with pytest.raises(InputError, match="budget must not be negative"):
        targeting.offers_for_budget(-1.0, 5.0)


def test_what_if_without_a_budget_is_the_report_policy_without_intervals():
    w = targeting.what_if(Y, P, Y, P, ECON, HALF)
    full = targeting.recommend_policies(Y, P, Y, P, ECON, HALF, n_boot=200)
    for f in ["threshold", "planned_share", "budget", "break_even_lift", *targeting.POLICY_FIELDS]:
        assert w.policies[f].tolist() == full[f].tolist()
    np.testing.assert_allclose(w.policies["profit_per_1000"], [5 * 125, 2 * 125, 4.5 * 125])
    assert w.sends_offers and w.max_offers is None
    assert w.assumption() == HALF.describe()
    # An offer costing more than its incremental upgrades can bring never pays.
    assert not targeting.what_if(Y, P, Y, P, Economics(10.0, 10.0), HALF).sends_offers


# ---------------------------------------------------------------- the page


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Reports built from a small synthetic run, unpriced and (a copy) under an assumed lift, and the
    targeting sections they show."""
    from conftest import synthetic_frame

    folder = tmp_path_factory.mktemp("economics_run")
    synthetic_frame(2500, seed=5).to_csv(folder / "table.csv", index=False)
    run_dir = fabricate_run(
        folder / "run", folder / "table.csv", (("logreg", "none"),), chosen_family="logreg"
    )
    priced_dir = folder / "priced"
    shutil.copytree(run_dir, priced_dir)
    info = json.loads((priced_dir / "run.json").read_text())
    (priced_dir / "run.json").write_text(json.dumps({**info, "assumed_lift": "20%", "offer_cost": 2.0}))
    return {
        name: (report.build_report(d), targeting_section(load_run(d)))
        for name, d in (("unpriced", run_dir), ("priced", priced_dir))
    }


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


def lift_text(v: float, relative: bool) -> str:
    return (
        "no lift (nothing it could add pays)"
        if not np.isfinite(v)
        else f"+{num(v * 100, 1)}{'%' if relative else 'pp'}"
    )


# The live table's columns and the format the static table gives each (row, relative -> text).
COLUMNS = {
    "threshold": lambda v, r, rel: num(v) if r["offers"] > 0 else "none",
    "planned_share": lambda v, r, rel: pct(v),
    "budget": lambda v, r, rel: money(v),
    "offers": lambda v, r, rel: num(v, 0),
    "upgraders_reached": lambda v, r, rel: num(v, 0),
    "share_of_upgraders": lambda v, r, rel: pct(v),
    "break_even_lift": lambda v, r, rel: lift_text(v, rel) if r["offers"] > 0 else "n/a",
    "incremental_upgrades": lambda v, r, rel: num(v, 1) if r["priced"] else "unpriced",
    "profit": lambda v, r, rel: money(v) if r["priced"] else "unpriced",
    "realized_profit": lambda v, r, rel: money(v) if r["priced"] else "unpriced",
    "offers_per_1000": lambda v, r, rel: num(v, 0),
    "incremental_upgrades_per_1000": lambda v, r, rel: num(v, 1) if r["priced"] else "unpriced",
    "profit_per_1000": lambda v, r, rel: money(v) if r["priced"] else "unpriced",
}
COUNTS = {"offers", "upgraders_reached", "offers_per_1000", "threshold", "planned_share"}


def same(field: str, page: str, python: float) -> bool:
    """Counts and cut-offs exactly; sums of floats to a millionth (the page sums in ranked order)."""
    shown = float(page)
    if math.isnan(python) or math.isinf(python):
        return math.isnan(shown) if math.isnan(python) else shown == python
    return shown == python if field in COUNTS else abs(shown - python) <= 1e-6 * max(1.0, abs(python))


def set_economics(page, cost: float, value: float, discount: float, lift: str, budget: float | None) -> dict:
    page.fill("#econ-cost", repr(cost))
    page.fill("#econ-value", repr(value))
    page.fill("#econ-discount", repr(discount))
    page.fill("#econ-lift", lift)
    page.fill("#econ-budget", "" if budget is None else repr(budget))
    return page.evaluate(READ)


def check_against_python(shown: dict, w: targeting.WhatIf) -> None:
    pol = w.policies
    relative = w.lift is None or w.lift.relative
    assert [r["policy"] for r in shown["rows"]] == pol["policy"].tolist()
    for row, (_, expected) in zip(shown["rows"], pol.iterrows()):
        for field, fmt in COLUMNS.items():
            cell = row["cells"][field]
            assert same(field, cell["value"], expected[field]), (row["policy"], field, cell, expected[field])
            assert cell["text"] == fmt(expected[field], expected, relative), (
                row["policy"],
                field,
                cell["text"],
            )
    f = shown["fields"]
    if w.sends_offers:
        rec = pol.iloc[0]
        assert (
            f["threshold"]["text"] == num(rec["threshold"])
            and float(f["threshold"]["value"]) == rec["threshold"]
        )
        assert f["profit"]["text"] == money(rec["profit"]) and same(
            "profit", f["profit"]["value"], rec["profit"]
        )
        assert f["offers"]["text"] == num(rec["offers"], 0)
        assert same("break_even_lift", f["break_even_lift"]["value"], rec["break_even_lift"])
    elif w.lift is None:
        assert shown["summary"].startswith("Policy: unpriced.") and "threshold" not in f
        top10 = pol[pol["planned_share"] == 0.10]["break_even_lift"]
        if len(top10):
            assert same("break_even_lift", f["break_even_lift"]["value"], float(top10.iloc[0]))
    else:
        assert shown["summary"].startswith("Policy: send no offers.")
        assert "threshold" not in f and shown["rows"][0]["cells"]["threshold"]["text"] == "none"
    if w.max_offers is not None:
        assert int(f["max_offers"]["value"]) == w.max_offers


def test_the_page_recomputes_the_economics_as_python_does(built, chromium):
    path, tgt = built["unpriced"]
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
    # Without script, the run's own break-even lift is stated, and nothing is priced.
    assert f"Break-even lift: <strong>{tgt.lift_text(tgt.break_even_lift)}</strong>" in html
    assert "unpriced: give --assumed-lift" in html

    requests, errors = [], []
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else requests.append(r.url))
    page.route(re.compile(r"^(?!file:|data:)"), lambda route: route.abort())
    page.goto(path.as_uri(), wait_until="load")
    assert not page.is_visible("#profit-static")

    def python(cost, value, discount, lift, budget=None):
        econ, parsed = Economics(cost, value, discount), Lift.parse(lift) if lift else None
        return targeting.what_if(s.y_fit, s.p_fit, s.y_eval, s.p_eval, econ, parsed, budget)

    # The run's own economics (no lift): the page agrees with the report's static table.
    run_econ = python(tgt.offer_cost, tgt.upgrade_value, 0.0, "")
    for f in ["policy", "threshold", "offers", "break_even_lift"]:
        assert run_econ.policies[f].tolist() == tgt.policies[f].tolist()
    at_20 = python(2.0, 100.0, 0.0, "20%")
    tight = float(at_20.policies["budget"].iloc[0]) / 2
    settings = [
        (tgt.offer_cost, tgt.upgrade_value, 0.0, "", None),
        (2.0, 100.0, 0.0, "20%", None),
        (2.0, 100.0, 0.0, "20%", tight),
        (2.0, 100.0, 5.0, "1.5pp", None),
        (1.0, 100.0, 0.0, "3pp", None),
        (50.0, 60.0, 0.0, "20%", None),  # no cut-off pays: nothing is recommended
        (5.0, 100.0, 0.0, "20%", 4.0),  # a budget too small for a single offer
        (5.0, 100.0, 0.0, "", 30.0),  # unpriced within a budget
    ]
    for cost, value, discount, lift, budget in settings:
        w = python(cost, value, discount, lift, budget)
        shown = set_economics(page, cost, value, discount, lift, budget)
        check_against_python(shown, w)
        assert page.is_visible("#econ-chart") == (w.lift is not None)
        if w.lift is not None:
            curve = page.evaluate(
                "([c, v, b, l, d]) => { const e = window.upgradeEconomics;"
                " const k = e.compute(c, v, b, e.parseLift(l), d).curve;"
                " return {offers: Array.from(k.offers), profit: Array.from(k.profit),"
                " realized: Array.from(k.realized_profit)}; }",
                [cost, value, budget, lift, discount],
            )
            assert curve["offers"] == w.curve["offers"].tolist()
            np.testing.assert_allclose(curve["profit"], w.curve["profit"], rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(curve["realized"], w.curve["realized_profit"], rtol=1e-9, atol=1e-9)
    assert not python(50.0, 60.0, 0.0, "20%").sends_offers

    # Bad input is refused in words, not computed.
    for field, text, says in (("#econ-cost", "0", "offer cost above 0"), ("#econ-lift", "twenty", "20%")):
        page.fill(field, text)
        assert page.is_visible("#econ-error") and says in page.inner_text("#econ-error")
        assert not page.is_visible("#econ-table")
        page.click("#econ-reset")
    assert float(page.input_value("#econ-cost")) == tgt.offer_cost and not page.is_visible("#econ-error")

    # Printing: the inputs give way to a line stating the economics shown; the page still makes a PDF.
    set_economics(page, 2.0, 100.0, 0.0, "20%", None)
    page.emulate_media(media="print")
    assert not page.is_visible("#econ-form") and page.is_visible("#econ-print")
    assert "an assumed lift of +20% of each user's upgrade probability" in page.inner_text("#econ-print")
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 50_000
    context.close()
    assert requests == [] and errors == []


def test_a_priced_run_shows_profit_against_its_stated_lift(built, chromium):
    path, tgt = built["priced"]
    html = path.read_text()
    assert (
        tgt.priced and "Priced under an assumed lift of +20% of each user&#39;s upgrade probability" in html
    )
    rec = tgt.policies.iloc[0]
    assert rec["policy"] == "recommended" and rec["profit"] > 0
    assert f"the stated lift is {tgt.lift_text(0.2)}" in html and "unpriced: give" not in html
    # The page starts from the run's lift and agrees with the static figures.
    context = chromium.new_context()
    page = context.new_page()
    page.goto(path.as_uri(), wait_until="load")
    assert page.input_value("#econ-lift") == "20%"
    shown = page.evaluate(READ)
    s = tgt.scores
    w = targeting.what_if(s.y_fit, s.p_fit, s.y_eval, s.p_eval, tgt.econ, tgt.lift)
    check_against_python(shown, w)
    context.close()


def test_without_script_the_static_targeting_remains(built, chromium):
    path, tgt = built["priced"]
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(path.as_uri(), wait_until="load")
    assert page.is_visible("#profit-static img") and not page.is_visible("#economics")
    static = page.inner_text("#policy-table")
    assert money(tgt.policies["profit"].iloc[0]) in static
    assert money(tgt.policies["realized_profit"].iloc[0]) in static
    context.close()


def test_a_run_with_too_many_scores_leaves_the_panel_out_and_says_so(built, tmp_path, monkeypatch):
    path, tgt = built["unpriced"]
    run_dir = tmp_path / "run"
    shutil.copytree(path.parent, run_dir)
    monkeypatch.setattr(campaign, "ECONOMICS_MAX_ROWS", tgt.n_test)
    html = report.build_report(run_dir).read_text()
    assert "<script" not in html and 'id="economics"' not in html
    assert f"only up to\n{tgt.n_test:,} scored rows" in html
    assert 'id="profit-static"' in html and 'id="policy-table"' in html
