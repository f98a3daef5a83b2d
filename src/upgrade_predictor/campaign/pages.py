"""plan.html and readout.html: small self-contained pages (no script, no network), every value escaped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from .records import Interval, Plan, Rate, Readout

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:right}"
    "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.warn{color:#a40;font-weight:bold}"
)


def _table(head: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    th = "".join(f"<th>{escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _page(title: str, parts: Iterable[str]) -> str:
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{''.join(parts)}</body></html>\n"
    )


def pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def interval(i: Interval, fmt: str = "{:+.2%}") -> str:
    return f"{fmt.format(i.value)} ({fmt.format(i.low)} to {fmt.format(i.high)})"


def plan_page(plan: Plan) -> str:
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
    warning = f"<p class='warn'>{escape(plan.power.warning)}</p>" if plan.power.warning else ""
    return _page(
        "Campaign plan",
        [warning, _table(("", ""), facts), _table(("arm", "users", "expected upgrades"), arms)],
    )


def _rate(r: Rate) -> tuple[str, str, str]:
    return (f"{r.users:,}", f"{r.upgrades:,}", pct(r.rate) if r.users else "-")


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
    bands = [(b.band, *_rate(b.offer), *_rate(b.holdout)) for b in r.bands]
    srm = "<p class='warn'>the arm sizes do not match the plan's share</p>" if r.srm.mismatch else ""
    head = ("band", "offer users", "upgrades", "rate", "holdout users", "upgrades", "rate")
    return _page(
        "Campaign readout" + ("" if r.horizon_closed else " (interim)"),
        [
            f"<p>{escape(status)}</p>",
            srm,
            _table(("", ""), effect),
            _table(("arm", "users", "upgrades", "rate"), arms),
            _table(head, bands),
        ],
    )
