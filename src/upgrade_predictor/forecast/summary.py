"""What an events run shows on the console: the event tables' audit and the forecast's results."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from ..console import plain, say, warn
from ..sources.events import EventAudit
from .policy import Policy
from .runs import ForecastMetrics


def show_event_audit(console: Console, audit: EventAudit) -> None:
    t = Table(
        title=plain(
            f"event tables: {audit.users:,} users, {audit.converted_users:,} upgraded, "
            f"{audit.data_start} to {audit.data_end}"
        ),
        title_justify="left",
    )
    for col in ("table", "rows", "kept", "first", "last", "left out or flagged"):
        t.add_column(col, justify="right" if col in ("rows", "kept") else "left")
    for a in audit.tables:
        flagged = a.rows - a.kept
        t.add_row(
            plain(a.name),
            f"{a.rows:,}",
            f"{a.kept:,}",
            str(a.first_date),
            str(a.last_date),
            plain(
                f"{flagged:,}"
                + (f", {a.before_registration:,} before registration (kept)" if a.before_registration else "")
            ),
        )
    console.print(t)
    for note in audit.notes:
        warn(console, note)


def show_forecast(console: Console, m: ForecastMetrics) -> None:
    t = Table(
        title=plain(f"time-ordered test ({m.test_start} to {m.test_end}), upgrades within {m.horizon} days"),
        title_justify="left",
    )
    for col in ("model", "PR AUC", "ROC AUC", "Brier"):
        t.add_column(col, justify="left" if col == "model" else "right")
    t.add_row(
        plain(m.chosen.label + f" ({m.calibration})"),
        f"{m.test.pr_auc:.3f}",
        f"{m.test.roc_auc:.3f}",
        f"{m.test.brier:.4f}",
        style="bold",
    )
    for name, s in m.baselines.items():
        t.add_row(plain(name), f"{s.pr_auc:.3f}", f"{s.roc_auc:.3f}", f"{s.brier:.4f}")
    console.print(t)
    f = m.forecast
    say(
        console,
        f"forecast: of {f.free_users:,} users free on {f.as_of}, {f.expected:,.0f} "
        f"[{f.low:,.0f}, {f.high:,.0f}] are expected to upgrade within {m.horizon} days "
        f"(weekly counts of the test period inside their interval: {m.coverage:.0%}; overdispersion "
        f"{m.overdispersion:.1f}, measured on the earlier origins)",
    )
    say(console, policy_line(m.policy, f.offers))
    if m.notes:  # the time limit's note: the run's results are this machine's
        warn(console, m.notes[0])


def policy_line(pol: Policy, offers_today: int) -> str:
    """The deployed policy in one line: what it offers, what it made per campaign and what it rests on."""
    kind = "%" if pol.lift is None or pol.lift["relative"] else "pp"
    be = f"{pol.break_even_lift * 100:+.1f}{kind}" if math.isfinite(pol.break_even_lift) else "no lift"
    audience = (
        "its audience" if not pol.break_even_share else f"the top {pol.break_even_share:.0%} of a campaign"
    )
    if not pol.priced:
        return (
            f"policy: not priced, since what an offer causes is unknown; {audience} breaks even at a lift of "
            f"{be}: give --assumed-lift, or measure it with `campaign plan` and `campaign readout`"
        )
    if not pol.pays:
        return (
            f"policy: send no offer: no cut-off paid under {pol.assumption()}; {audience} breaks even at {be}"
        )
    r = pol.per_campaign["profit"]
    return (
        f"policy: offer to users scoring >= {pol.threshold:.3f} ({offers_today:,} users today); per test "
        f"campaign {r['value']:,.0f} [{r['low']:,.0f}, {r['high']:,.0f}] incremental profit under "
        f"{pol.assumption()} (break-even {be})"
    )
