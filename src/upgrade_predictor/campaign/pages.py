"""plan.html and readout.html in the run report's style: self-contained (plots embedded as data URIs, no
script, no network), every value the user or the data supplies escaped."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape

import numpy as np
import pandas as pd

from ..economics import Economics
from ..version import __version__
from . import plots
from .records import Balance, Interval, ListReadout, Plan, Rate, Readout

STYLE = """
:root { --accent: #d95f02; --muted: #666; --rule: #ddd; --bg-soft: #f6f6f4; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #222;
       margin: 0; background: #fff; }
main { max-width: 1120px; margin: 0 auto; padding: 1.5rem 1.5rem 4rem; }
h1 { font-size: 1.7rem; margin: 0.2rem 0 0.3rem; }
h2 { font-size: 1.35rem; margin: 2.4rem 0 0.6rem; padding-top: 0.6rem; border-top: 2px solid var(--accent); }
p, li { max-width: 78ch; }
.meta { color: var(--muted); font-size: 0.88rem; }
.summary { border-left: 4px solid var(--accent); background: var(--bg-soft); padding: 0.6rem 1rem; margin: 1rem 0; }
.warn { border-left: 4px solid #b00; background: #fff4f2; padding: 0.6rem 1rem; margin: 1rem 0; }
table { border-collapse: collapse; margin: 0.6rem 0 1rem; font-size: 0.85rem; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--rule); padding: 0.25rem 0.55rem; text-align: right; vertical-align: top; }
th { background: var(--bg-soft); font-weight: 600; }
td { white-space: nowrap; }
td:first-child, th:first-child { text-align: left; }
tr.hl td { background: #fff1e6; font-weight: 600; }
figure { margin: 0.8rem 0 1.2rem; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 0.82rem; max-width: 78ch; }
.row { display: flex; flex-wrap: wrap; gap: 1rem; }
.row figure { flex: 1 1 380px; }
@media print { main { max-width: none; padding: 0; } figure, table, .summary, .warn { break-inside: avoid; } }
"""


def table(head: Sequence[object], rows: Iterable[Sequence[object]], marked: Sequence[bool] = ()) -> str:
    th = "".join(f"<th>{escape(str(h))}</th>" for h in head)
    body = "".join(
        ("<tr class='hl'>" if i < len(marked) and marked[i] else "<tr>")
        + "".join(f"<td>{escape(str(c))}</td>" for c in r)
        + "</tr>"
        for i, r in enumerate(rows)
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def figure(uri: str | None, alt: str, caption: str) -> str:
    if uri is None:
        return ""
    return (
        f"<figure><img src='{escape(uri)}' alt='{escape(alt)}'>"
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def section(title: str, *parts: str) -> str:
    return f"<h2>{escape(title)}</h2>" + "".join(parts)


def para(text: str, cls: str | None = None) -> str:
    return f"<p class='{cls}'>{escape(text)}</p>" if cls else f"<p>{escape(text)}</p>"


def _page(title: str, meta: str, parts: Iterable[str]) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>"
        f"<h1>{escape(title)}</h1><p class='meta'>{escape(meta)} · upgrade-predictor {escape(__version__)}</p>"
        f"{''.join(parts)}</main></body></html>\n"
    )


def pct(x: float) -> str:
    return f"{x * 100:.2f}%" if math.isfinite(x) else "-"


def interval(i: Interval, fmt: str = "{:+.2%}") -> str:
    return f"{fmt.format(i.value)} ({fmt.format(i.low)} to {fmt.format(i.high)})"


def plan_page(plan: Plan, assignments: pd.DataFrame) -> str:
    facts = [
        ("as of", plan.as_of),
        ("horizon", f"{plan.horizon} days"),
        ("model", f"{plan.model} (sha256 {plan.model_sha256[:12]}…)"),
        ("users scored / targeted", f"{plan.scored_users:,} / {plan.targeted_users:,}"),
        ("holdout share, seed", f"{plan.holdout_share:g}, {plan.seed}"),
        ("economics", ", ".join(f"{k} {v:g}" for k, v in plan.economics.items())),
        ("baseline (mean forecast)", pct(plan.power.baseline)),
        ("minimum detectable effect", f"{plan.power.mde * 100:.2f}pp ({plan.power.method})"),
        ("break-even lift", f"{plan.power.break_even * 100:.2f}pp"),
    ]
    arms = [
        (name, f"{a.users:,}", f"{a.expected_upgrades:.1f}")
        for name, a in (("offer", plan.offer), ("holdout", plan.holdout))
    ]
    summary = (
        f"Of {plan.scored_users:,} users free on {plan.as_of}, {plan.targeted_users:,} are targeted: "
        f"{plan.offer.users:,} are sent the offer and {plan.holdout.users:,} held out at random. The "
        f"campaign detects a lift of {plan.power.mde * 100:.2f}pp; the offer breaks even at "
        f"{plan.power.break_even * 100:.2f}pp."
    )
    warning = para(plan.power.warning, "warn") if plan.power.warning else ""
    return _page(
        "Campaign plan",
        f"as of {plan.as_of} · horizon {plan.horizon} days · seed {plan.seed}",
        [
            f"<div class='summary'>{para(summary)}</div>",
            warning,
            section("The plan", table(("", ""), facts), table(("arm", "users", "expected upgrades"), arms)),
            section(
                "The arms per band",
                figure(
                    plots.plan_bands(plan, assignments),
                    "Mean forecast probability per band, offer against holdout",
                    "The random draw within each band gives both arms the same forecast, to chance.",
                ),
            ),
        ],
    )


def _rate(r: Rate) -> tuple[str, str, str]:
    return (f"{r.users:,}", f"{r.upgrades:,}", pct(r.rate) if r.users else "-")


def break_even(r: Readout) -> float | None:
    """The absolute lift at which the offer pays, at the holdout's measured rate."""
    if not math.isfinite(r.holdout.rate):
        return None
    return Economics(**r.profit.economics).break_even_lift(np.array([r.holdout.rate]), relative=False)


def balance_section(b: Balance | None) -> str:
    if b is None:
        return ""
    columns = list(b.overall.smd)
    head = (
        "band",
        "offer mean probability",
        "holdout mean probability",
        *[f"SMD {c}" for c in columns],
        "chance sd",
    )
    lines = [b.overall, *b.bands]
    rows = [
        (
            "all" if x.band == 0 else x.band,
            pct(x.offer_mean_probability),
            pct(x.holdout_mean_probability),
            *[f"{x.smd[c]:+.3f}" for c in columns],
            f"{x.chance:.3f}",
        )
        for x in lines
    ]
    note = (
        para(f"A standardized mean difference beyond ±{b.threshold:g} (highlighted) says the arms differ "
             "more than a fair draw usually makes them: check the assignment before trusting the effect. In a "
             "band whose chance sd nears the threshold, chance alone crosses it now and then.", "warn")
        if b.flagged
        else para(f"Every standardized mean difference is within ±{b.threshold:g}: the arms are alike.")
    )  # fmt: skip
    return section("Balance of the arms", note, table(head, rows, [bool(x.flagged) for x in lines]))


def readout_page(r: Readout) -> str:
    status = (
        f"horizon closed: upgrades from {r.as_of} to {r.window_end}"
        if r.horizon_closed
        else f"interim: the tables end on {r.data_end}, {r.days_open} days before the horizon closes"
    )
    effect = [
        ("difference (offer - holdout)", interval(r.effect.difference)),
        ("regression-adjusted (Lin 2013, HC2)", interval(r.effect.adjusted)),
        ("incremental upgrades", interval(r.incremental_upgrades, "{:+,.1f}")),
        ("incremental profit", interval(r.profit.incremental, "{:+,.2f}")),
        (
            "holdout: expected / actual upgrades",
            f"{r.calibration.holdout_expected:.1f} / {r.calibration.holdout_actual}",
        ),
        (
            "sample ratio (chi-square p)",
            f"{r.srm.observed_holdout_share:.4f} held out (p = {r.srm.p_value:.3g})",
        ),
    ]
    arms = [("offer", *_rate(r.offer)), ("holdout", *_rate(r.holdout))]
    bands = [
        (b.band, *_rate(b.offer), *_rate(b.holdout), interval(b.difference) if b.difference else "-")
        for b in r.bands
    ]
    head = ("band", "offer users", "upgrades", "rate", "holdout users", "upgrades", "rate", "difference")
    be = break_even(r)
    d = r.effect.difference
    summary = (
        f"The offer moved the upgrade rate by {d.value * 100:+.2f}pp (95% interval {d.low * 100:+.2f} to "
        f"{d.high * 100:+.2f}pp) over {r.offer.users:,} offered and {r.holdout.users:,} held-out users; "
        f"incremental profit {interval(r.profit.incremental, '{:+,.0f}')}."
    )
    warnings = [para(status, None if r.horizon_closed else "warn")]
    if r.srm.mismatch:
        warnings.append(para("the arm sizes do not match the plan's share (sample-ratio mismatch)", "warn"))
    return _page(
        "Campaign readout" + ("" if r.horizon_closed else " (interim)"),
        f"as of {r.as_of} · horizon {r.horizon} days · tables to {r.data_end}",
        [
            f"<div class='summary'>{para(summary)}</div>",
            *warnings,
            section(
                "The effect",
                figure(
                    plots.overall_effect(r, be),
                    "Overall effect with 95% intervals",
                    "Offer rate minus holdout rate, plain and adjusted on the forecast; the dashed line is the "
                    "lift at which the offer breaks even.",
                ),
                figure(
                    plots.profit(r), "Incremental profit with its 95% interval", "At the measured effect."
                ),
                table(("", ""), effect),
            ),
            section(
                "Per band",
                figure(
                    plots.band_effects(r, be),
                    "Effect per score band with 95% intervals",
                    "Each band's own difference: wide, since a band holds a fifth of the users.",
                ),
                table(("arm", "users", "upgrades", "rate"), arms),
                table(head, bands),
            ),
            balance_section(r.balance),
        ],
    )


def list_page(r: ListReadout) -> str:
    e = r.expected_upgrades
    summary = (
        f"Of {r.users:,} users listed as of {r.as_of}, {e.value:,.1f} were expected to upgrade within "
        f"{r.horizon} days (95% range {e.low:,.1f} to {e.high:,.1f} were the forecast right); "
        f"{r.actual_upgrades:,} did ({r.actual_over_expected:.2f}× the forecast)."
    )
    facts = [
        ("as of", f"{r.as_of} (from {r.as_of_source})"),
        ("window", f"{r.as_of} to {r.window_end}"),
        ("scored list", f"{r.scored_file} (sha256 {r.scored_sha256[:12]}…)"),
        ("upgrade rate", pct(r.upgrade_rate)),
        ("ROC AUC / average precision", f"{_num(r.roc_auc)} / {_num(r.average_precision)}"),
        ("upgraded before the as-of (not counted)", f"{r.upgraded_before_as_of:,}"),
    ]
    head = ("band", "ranks", "users", "mean probability", "expected", "actual", "precision", "lift",
            "forecast lift")  # fmt: skip
    rows = [
        (b.band, f"{b.first_rank:,}–{b.last_rank:,}", f"{b.users:,}", pct(b.mean_probability),
         f"{b.expected_upgrades:,.1f}", f"{b.actual_upgrades:,}", pct(b.precision), _num(b.lift, 2),
         _num(b.expected_lift, 2))
        for b in r.bands
    ]  # fmt: skip
    counts, lift = plots.list_bands(r)
    status = (
        para(f"interim: the tables end on {r.data_end}, {r.days_open} days before the horizon closes", "warn")
        if r.interim
        else ""
    )
    return _page(
        "List readout: the forecast against what happened" + (" (interim)" if r.interim else ""),
        f"as of {r.as_of} · horizon {r.horizon} days · tables to {r.data_end} · no holdout",
        [
            f"<div class='summary'>{para(summary)}</div>",
            para(r.note[0].upper() + r.note[1:] + ".", "warn"),
            status,
            section("The forecast", table(("", ""), facts)),
            section(
                "Per band",
                "<div class='row'>"
                + figure(counts, "Expected against actual upgrades per band", "Bands are quintiles by rank.")
                + figure(lift, "Realized against forecast lift per band", "Lift over the whole list's rate.")
                + "</div>",
                table(head, rows),
            ),
        ],
    )


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"
