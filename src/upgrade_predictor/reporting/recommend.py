"""Caveats and numbered recommendations of a run, each citing a number shown earlier in the report."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..training.runs import Run
from .campaign import Targeting
from .comparison import Imbalance
from .drivers import Drivers
from .format import interval, money, num, pct, signed
from .segments import Segments
from .tree_rules import TreeRules

MIN_LEAF_TEST_ROWS = 30  # a tree rule is quoted only when this many test users follow it
MAX_RECOMMENDATIONS = 6
CAVEAT_METRICS = ("pr_auc", "roc_auc", "f1", "precision", "recall", "brier")


@dataclass(frozen=True)
class FlaggedColumn:
    name: str
    univariate_auc: float | None
    median_pos: float | None = None  # numeric columns: median among upgraders
    median_neg: float | None = None


@dataclass(frozen=True)
class WithWithout:
    """One metric of the chosen model with and without the flagged columns."""

    metric: str
    cv_with: float | None
    cv_without: float | None
    test_with: float
    test_without: float


@dataclass(frozen=True)
class Caveats:
    flagged: list[FlaggedColumn]
    compare: list[WithWithout]
    threshold_with: float
    threshold_without: float
    top_with: list[str]  # top three drivers of the chosen model other than the flagged columns
    top_without: list[str]  # top three drivers of the model without them
    survive: list[str]  # in both
    logit_survive: list[str]  # significant with the same sign in both Logit fits
    logit_flip: list[str]  # sign changes between the fits

    def metric(self, name: str) -> WithWithout:
        return next(r for r in self.compare if r.metric == name)


@dataclass(frozen=True)
class Recommendation:
    anchor: str  # the id of the report section holding the numbers it quotes
    text: str


def caveats_section(run: Run, drivers: Drivers) -> Caveats | None:
    m, nl = run.metrics, run.metrics.no_leak
    if not run.leaky or nl is None or drivers.permutation_no_leak is None:
        return None
    compare = [
        WithWithout(k, m.cv.get(f"{k}_mean"), nl.cv.get(f"{k}_mean"), m.test[k], nl.test[k])
        for k in CAVEAT_METRICS
    ]
    X, y = run.dataset.X, run.dataset.y
    flagged = []
    for c in run.leaky:
        col = run.audit.column(c)
        auc = col.univariate_auc if col is not None else None
        if X[c].dtype.kind == "f":
            flagged.append(FlaggedColumn(c, auc, float(X[c][y == 1].median()), float(X[c][y == 0].median())))
        else:
            flagged.append(FlaggedColumn(c, auc))
    # Conclusions that survive: drivers in the top 3 of both models, and Logit effects with the same
    # sign and p < 0.05 with and without the flagged columns.
    top_with = [n for n in drivers.permutation["name"] if n not in run.leaky][:3]
    top_without = list(drivers.permutation_no_leak["name"][:3])
    logit_survive, logit_flip = [], []
    a = drivers.logit.table
    b = drivers.logit_no_leak.table if drivers.logit_no_leak is not None else pd.DataFrame()
    if len(a) and len(b):
        j = a.merge(b, on="name", suffixes=("_with", "_without"))
        for _, r in j[j["name"] != "const"].iterrows():
            same_sign = np.sign(r["coef_with"]) == np.sign(r["coef_without"])
            if same_sign and r["p_value_with"] < 0.05 and r["p_value_without"] < 0.05:
                logit_survive.append(str(r["name"]))
            elif not same_sign:
                logit_flip.append(str(r["name"]))
    return Caveats(
        flagged=flagged,
        compare=compare,
        threshold_with=m.threshold.value,
        threshold_without=nl.threshold,
        top_with=top_with,
        top_without=top_without,
        survive=[n for n in top_without if n in top_with],
        logit_survive=logit_survive,
        logit_flip=logit_flip,
    )


# ------------------------------------------------------------------ 9. recommendations


def _first(table: pd.DataFrame) -> dict[str, Any]:
    """The top row of a sorted table, by column name."""
    return {str(k): v for k, v in table.iloc[0].items()}


def _rate(rate: float, low: float, high: float) -> str:
    """A rate with its interval, as the report's tables show it."""
    return f"{pct(rate)} {interval(low, high, pct)}"


def _per_1000(
    policy: dict[Hashable, Any], field: str, noun: str = "", fmt: Callable[..., str] = num, **kw: Any
) -> str:
    """A policy outcome per 1,000 users scored, with its interval, as the policy table shows it."""
    value = " ".join([fmt(policy[f"{field}_per_1000"], **kw), noun]).strip()
    return f"{value} {interval(policy[f'{field}_low_per_1000'], policy[f'{field}_high_per_1000'], fmt, **kw)}"


def recommendations(
    run: Run,
    targeting: Targeting,
    drivers: Drivers,
    segments: Segments | None,
    imbalance: Imbalance,
    caveats: Caveats | None,
) -> list[Recommendation]:
    """3-6 numbered actions, each quoting numbers shown in the table it links to."""
    recs = [] if caveats is None else [_use_no_leak(caveats)]
    recs += _policies(targeting)
    if drivers.tree is not None:
        recs += _tree_rule(drivers.tree, run.audit.class_balance.positive_share)
    if segments is not None:
        recs.append(_segment(segments))
    if len(imbalance.table) and len(recs) < MAX_RECOMMENDATIONS:
        recs.append(_resampling(imbalance.table, run.metrics.chosen.family))
    return recs[:MAX_RECOMMENDATIONS]


def _use_no_leak(cav: Caveats) -> Recommendation:
    pr = cav.metric("pr_auc")
    return Recommendation(
        "caveats",
        f"Score today's free users with model_no_leak.zip, not model.zip. The model with "
        f"{', '.join(f.name for f in cav.flagged)} reaches test PR AUC {num(pr.test_with)} "
        f"against {num(pr.test_without)} without it, but that extra accuracy comes from a "
        "feature that, for buyers, stops counting at the purchase; for a current free user it "
        "means something else.",
    )


def _policies(tgt: Targeting) -> list[Recommendation]:
    pol = tgt.policies.set_index("policy").to_dict("index")
    first = tgt.first
    econ = (
        f"offer cost {money(tgt.offer_cost)}, upgrade value {money(tgt.upgrade_value)}, "
        f"discount {money(tgt.econ.discount)}"
    )
    be = tgt.lift_text(tgt.break_even_lift)
    if not tgt.priced:
        text = (
            "Do not price an offer campaign from this run: no lift was stated or measured, so what an offer "
            f"causes is unknown. Offering to the top "
            f"{pct(first['planned_share'], 0)} of users (score ≥ {num(first['threshold'])}) breaks even at a "
            f"lift of {be} ({econ}); measure the lift with a randomized holdout (campaign plan, then "
            "campaign readout) or state one with --assumed-lift."
        )
        return [Recommendation("targeting", text)]
    if not tgt.sends_offers:
        text = (
            f"Do not run a paid offer campaign at {econ}: under {tgt.assumption()} no score threshold had a "
            "positive expected incremental profit on the out-of-fold scores; an offer to the top 10% of "
            f"users breaks even at a lift of {be}."
        )
        return [Recommendation("targeting", text)]
    out = [
        Recommendation(
            "targeting",
            f"Send offers to users scoring at least {num(first['threshold'])} (about "
            f"{pct(first['planned_share'])} of users). Under {tgt.assumption()}, per 1,000 users scored "
            f"that is {_per_1000(pol['recommended'], 'offers', 'offers', digits=0)}, adding "
            f"{_per_1000(pol['recommended'], 'incremental_upgrades', 'upgrades', digits=1)} for an expected "
            f"incremental profit of {_per_1000(pol['recommended'], 'profit', fmt=money)} ({econ}); it breaks "
            f"even at a lift of {be}.",
        )
    ]
    if "half the offers" in pol:
        half = pol["half the offers"]
        share = _rate(
            half["share_of_upgraders"], half["share_of_upgraders_low"], half["share_of_upgraders_high"]
        )
        out.append(
            Recommendation(
                "targeting",
                f"If the budget covers only half as many offers, keep the top {pct(half['planned_share'])} "
                f"(score ≥ {num(half['threshold'])}): it still reaches {share} of upgraders, "
                f"against {pct(first['share_of_upgraders'])} for the recommended policy.",
            )
        )
    return out


def _tree_rule(tree: TreeRules, overall: float) -> list[Recommendation]:
    t = tree.table
    ok = t[t["test_rows"] >= MIN_LEAF_TEST_ROWS].sort_values("test_rate", ascending=False)
    if not len(ok):
        return []
    best = _first(ok)
    return [
        Recommendation(
            "tree",
            f"Treat students with {best['rule']} as likely upgraders: "
            f"{_rate(best['test_rate'], best['low'], best['high'])} of the {num(best['test_rows'], 0)} "
            f"such test users upgraded, against {pct(overall)} overall.",
        )
    ]


def _segment(seg: Segments) -> Recommendation:
    t = seg.table
    above = t[t["verdict"] == "above overall"].sort_values("low", ascending=False)
    if len(above):
        s = _first(above)
        return Recommendation(
            "segments",
            f"Start with {seg.column} = {s['segment']}: its upgrade rate is {_rate(s['rate'], s['low'], s['high'])} "
            f"over {num(s['rows'], 0)} users, above the overall {pct(seg.overall)} even at the low end of "
            "its interval.",
        )
    s = _first(t.sort_values("rate", ascending=False))
    return Recommendation(
        "segments",
        f"Do not target by {seg.column}: no group's upgrade rate is distinguishable from the overall "
        f"{pct(seg.overall)} (the highest, {s['segment']}, is {_rate(s['rate'], s['low'], s['high'])}).",
    )


def _resampling(t: pd.DataFrame, family: str) -> Recommendation:
    g = t[t["family"] == family] if (t["family"] == family).any() else t
    best = _first(g.sort_values("d_pr_auc", ascending=False))
    change = (
        f"changed cross-validated PR AUC by {signed(best['d_pr_auc'])} against no resampling "
        f"(fold sd {num(best['sd'])})"
    )
    if best["verdict"] == "helped":
        text = f"Keep {best['strategy_label']} for {best['model']}: it {change}."
    else:
        text = (
            f"Do not count on resampling for {best['model']}: the best strategy ({best['strategy_label']}) "
            f"{change}; training without it and moving the decision threshold ranks users as well "
            "and keeps probabilities calibrated."
        )
    return Recommendation("imbalance", text)
