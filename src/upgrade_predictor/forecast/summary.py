"""What an events run shows on the console: the event tables' audit and the forecast's results."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..console import plain, say, warn
from ..sources.events import EventAudit
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
    if m.policy.pays:
        say(console, f"policy: offer to users scoring >= {m.policy.threshold:.3f} ({f.offers:,} users today)")
    else:
        warn(
            console,
            f"no offer policy made money at offer cost {m.policy.offer_cost:g} and upgrade value "
            f"{m.policy.upgrade_value:g}: send none; an offer would have to cost under "
            f"{m.policy.break_even_cost:.2f} to pay",
        )
    if m.notes:  # the time limit's note: the run's results are this machine's
        warn(console, m.notes[0])
