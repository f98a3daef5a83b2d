"""What cleaning did to the event tables: every left-out or repaired row counted per table and rule, the
data's first and last day, and the notes shown after reading."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from upgrade_predictor.sources.event_mapping import EventMapping
from upgrade_predictor.sources.event_staging import (
    DUPLICATE_KEY,
    KEPT,
    MISSING_ID,
    UNKNOWN_ID,
    UNPARSEABLE_DATE,
    one_row,
    table_format,
)


@dataclass
class TableAudit:
    """What happened to one table's rows; rows = the sum of the left-out counts + kept."""

    name: str
    file: str
    rows: int
    kept: int
    first_date: date | None
    last_date: date | None
    duplicate_rows: int
    missing_ids: int
    unparseable_dates: int
    duplicate_keys: int
    unknown_ids: int
    before_registration: int
    bad_values: int
    handling: str


@dataclass
class EventAudit:
    tables: list[TableAudit]
    data_start: date
    data_end: date
    users: int
    converted_users: int
    notes: list[str] = field(default_factory=list)


def table_audit(
    con: duckdb.DuckDBPyConnection, target: str, name: str, file: str, handling: str
) -> TableAudit:
    r = one_row(
        con,
        f"""
        SELECT sum(__copies), count(*) FILTER (__reason = {KEPT}), min(day) FILTER (__reason = {KEPT}),
               max(day) FILTER (__reason = {KEPT}), sum(__copies - 1),
               count(*) FILTER (__reason = {MISSING_ID}), count(*) FILTER (__reason = {UNPARSEABLE_DATE}),
               count(*) FILTER (__reason = {DUPLICATE_KEY}), count(*) FILTER (__reason = {UNKNOWN_ID}),
               count(*) FILTER (__reason = {KEPT} AND __early), sum(__bad) FILTER (__reason = {KEPT})
        FROM {target}
    """,
    )
    n = [int(x or 0) for x in (r[0], r[1], *r[4:])]
    return TableAudit(
        name=name, file=file, rows=n[0], kept=n[1], first_date=r[2], last_date=r[3], duplicate_rows=n[2],
        missing_ids=n[3], unparseable_dates=n[4], duplicate_keys=n[5], unknown_ids=n[6],
        before_registration=n[7], bad_values=n[8], handling=handling,
    )  # fmt: skip


HANDLING = {
    "users": "exact duplicates and repeated ids removed (earliest registration kept); users without an id "
    "or a registration date left out",
    "conversions": "first conversion per user is the upgrade; rows without an id or a date, repeated keys "
    "and unknown ids left out",
    "activity": "exact duplicates and repeated keys removed; rows without an id or a date and unknown ids "
    "left out; events before registration kept with their own date",
}


def event_audit(
    con: duckdb.DuckDBPyConnection, folder: Path, m: EventMapping, audits: list[TableAudit]
) -> EventAudit:
    starts = [t.first_date for t in audits if t.first_date is not None]
    ends = [t.last_date for t in audits if t.last_date is not None]
    counts = one_row(con, "SELECT (SELECT count(*) FROM _users), (SELECT count(*) FROM _conv)")
    notes = []
    for t in audits:
        left = {"duplicate rows": t.duplicate_rows, "rows without an id": t.missing_ids,
                "rows without a readable date": t.unparseable_dates, "repeated keys": t.duplicate_keys,
                "rows of unknown users": t.unknown_ids, "bad numbers (kept as missing)": t.bad_values,
                "rows dated before registration (kept)": t.before_registration}  # fmt: skip
        found = [f"{n:,} {what}" for what, n in left.items() if n]
        if found:
            notes.append(f"{t.name}: " + ", ".join(found))
    used = {m.users.file, m.conversions.file, *(a.file for a in m.activities)}
    unused = sorted(p.name for p in folder.iterdir() if table_format(p) and p.name not in used)
    if unused:
        notes.append("not used (a table needs a mapping entry with a date column): " + ", ".join(unused))
    return EventAudit(audits, min(starts), max(ends), int(counts[0]), int(counts[1]), notes)
