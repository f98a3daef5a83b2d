"""Caveats and numbered recommendations of a run, each citing a number shown earlier in the report."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..training.runs import Run
from .format import interval, money, num, pct, signed

MIN_LEAF_TEST_ROWS = 30  # a tree rule is quoted only when this many test users follow it


def caveats_section(run: Run, drivers: dict) -> dict | None:
    if not run.leaky:
        return None
    m, nl = run.metrics, run.metrics["no_leak"]
    compare = []
    for k in ("pr_auc", "roc_auc", "f1", "precision", "recall", "brier"):
        compare.append(
            {
                "metric": k,
                "cv_with": m["cv"].get(f"{k}_mean"),
                "cv_without": nl["cv"].get(f"{k}_mean"),
                "test_with": m["test"].get(k),
                "test_without": nl["test"].get(k),
            }
        )
    X, y = run.dataset.X, run.dataset.y
    flagged = []
    for c in run.leaky:
        info = next((f for f in run.audit["feature_columns"] if f["name"] == c), {})
        row = {"name": c, "univariate_auc": info.get("univariate_auc")}
        if X[c].dtype.kind == "f":
            row.update(median_pos=float(X[c][y == 1].median()), median_neg=float(X[c][y == 0].median()))
        flagged.append(row)
    # Conclusions that survive: drivers in the top 3 of both models, and Logit effects with the same
    # sign and p < 0.05 with and without the flagged columns.
    top_with = [n for n in drivers["permutation"]["name"] if n not in run.leaky][:3]
    top_without = list(drivers["permutation_no_leak"]["name"][:3])
    survive = [n for n in top_without if n in top_with]
    logit_survive, logit_flip = [], []
    a, b = drivers["logit"]["table"], drivers.get("logit_no_leak", {}).get("table", pd.DataFrame())
    if len(a) and len(b):
        j = a.merge(b, on="name", suffixes=("_with", "_without"))
        j = j[j["name"] != "const"]
        for _, r in j.iterrows():
            sig = r["p_value_with"] < 0.05 and r["p_value_without"] < 0.05
            if sig and np.sign(r["coef_with"]) == np.sign(r["coef_without"]):
                logit_survive.append(r["name"])
            elif np.sign(r["coef_with"]) != np.sign(r["coef_without"]):
                logit_flip.append(r["name"])
    return {
        "flagged": flagged,
        "compare": compare,
        "threshold_with": m["threshold"]["value"],
        "threshold_without": nl.get("threshold"),
        "top_with": top_with,
        "top_without": top_without,
        "survive": survive,
        "logit_survive": logit_survive,
        "logit_flip": logit_flip,
    }


# ------------------------------------------------------------------ 9. recommendations


def recommendations(ins: dict) -> list[dict]:
    """3-6 numbered actions, each quoting numbers shown in the table it links to."""
    recs = []
    cav, tgt, seg, drv, imb = (
        ins.get(k) for k in ("caveats", "targeting", "segments", "drivers", "imbalance")
    )
    if cav:
        row = {r["metric"]: r for r in cav["compare"]}["pr_auc"]
        recs.append(
            {
                "anchor": "caveats",
                "text": f"Score today's free users with model_no_leak.zip, not model.zip. The model with "
                f"{', '.join(r['name'] for r in cav['flagged'])} reaches test PR AUC {num(row['test_with'])} "
                f"against {num(row['test_without'])} without it, but that extra accuracy comes from a "
                "feature that, for buyers, stops counting at the purchase; for a current free user it "
                "means something else.",
            }
        )
    pol = tgt["policies"].set_index("policy")
    rec = pol.loc["recommended"]
    econ = f"offer cost {money(tgt['offer_cost'])}, upgrade value {money(tgt['upgrade_value'])}"
    if rec["profit"] > 0 and rec["offers"] > 0:
        recs.append(
            {
                "anchor": "targeting",
                "text": f"Send offers to users scoring at least {num(rec['threshold'])} (about {pct(rec['planned_share'])} "
                f"of users). Per 1,000 users scored that is {num(rec['offers_per_1000'], 0)} offers "
                f"{interval(rec['offers_low_per_1000'], rec['offers_high_per_1000'], digits=0)}, reaching "
                f"{num(rec['upgraders_reached_per_1000'], 0)} upgraders "
                f"{interval(rec['upgraders_reached_low_per_1000'], rec['upgraders_reached_high_per_1000'], digits=0)} "
                f"for an expected profit of {money(rec['profit_per_1000'])} "
                f"{interval(rec['profit_low_per_1000'], rec['profit_high_per_1000'], money)} ({econ}).",
            }
        )
    else:
        recs.append(
            {
                "anchor": "targeting",
                "text": f"Do not run a paid offer campaign at {econ}: no score threshold had a positive expected "
                "profit on the out-of-fold scores.",
            }
        )
    if "half the offers" in pol.index:
        half = pol.loc["half the offers"]
        recs.append(
            {
                "anchor": "targeting",
                "text": f"If the budget covers only half as many offers, keep the top {pct(half['planned_share'])} "
                f"(score ≥ {num(half['threshold'])}): it still reaches {pct(half['share_of_upgraders'])} "
                f"{interval(half['share_of_upgraders_low'], half['share_of_upgraders_high'], pct)} of upgraders, "
                f"against {pct(rec['share_of_upgraders'])} for the recommended policy.",
            }
        )
    tree = drv.get("tree") if drv else None
    if tree is not None and len(tree["table"]):
        t = tree["table"]
        ok = t[t["test_rows"] >= MIN_LEAF_TEST_ROWS].sort_values("test_rate", ascending=False)
        if len(ok):
            best = ok.iloc[0]
            recs.append(
                {
                    "anchor": "tree",
                    "text": f"Treat students with {best['rule']} as likely upgraders: {pct(best['test_rate'])} "
                    f"{interval(best['low'], best['high'], pct)} of the {num(best['test_rows'], 0)} such test users "
                    f"upgraded, against {pct(ins['data']['class_balance']['positive_share'])} overall.",
                }
            )
    if seg is not None:
        t = seg["table"]
        above = t[t["verdict"] == "above overall"].sort_values("low", ascending=False)
        if len(above):
            s = above.iloc[0]
            recs.append(
                {
                    "anchor": "segments",
                    "text": f"Start with {seg['column']} = {s['segment']}: its upgrade rate is {pct(s['rate'])} "
                    f"{interval(s['low'], s['high'], pct)} over {num(s['rows'], 0)} users, above the overall "
                    f"{pct(seg['overall'])} even at the low end of its interval.",
                }
            )
        else:
            s = t.sort_values("rate", ascending=False).iloc[0]
            recs.append(
                {
                    "anchor": "segments",
                    "text": f"Do not target by {seg['column']}: no group's upgrade rate is distinguishable from the "
                    f"overall {pct(seg['overall'])} (the highest, {s['segment']}, is {pct(s['rate'])} "
                    f"{interval(s['low'], s['high'], pct)}).",
                }
            )
    if imb is not None and len(imb["table"]) and len(recs) < 6:
        t = imb["table"]
        fam = ins["chosen"]["chosen"]["family"]
        g = t[t["family"] == fam] if (t["family"] == fam).any() else t
        best = g.sort_values("d_pr_auc", ascending=False).iloc[0]
        if best["verdict"] == "helped":
            text = (
                f"Keep {best['strategy_label']} for {best['model']}: it changed cross-validated PR AUC by "
                f"{signed(best['d_pr_auc'])} against no resampling (fold sd {num(best['sd'])})."
            )
        else:
            text = (
                f"Do not count on resampling for {best['model']}: the best strategy ({best['strategy_label']}) "
                f"changed cross-validated PR AUC by {signed(best['d_pr_auc'])} against no resampling (fold sd "
                f"{num(best['sd'])}); training without it and moving the decision threshold ranks users as well "
                "and keeps probabilities calibrated."
            )
        recs.append({"anchor": "imbalance", "text": text})
    return recs[:6]
