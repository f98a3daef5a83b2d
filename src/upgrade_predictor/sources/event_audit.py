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
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    m: EventMapping,
    audits: list[TableAudit],
    part: bool = False,
) -> EventAudit:
    """The audit of one staged extract; `part`: one partition of a larger extract, whose notes belong to the
    merged audit and which may hold no dated row (then data_start is date.max and data_end date.min, the
    neutral values of merge_audits)."""
    starts = [t.first_date for t in audits if t.first_date is not None]
    ends = [t.last_date for t in audits if t.last_date is not None]
    counts = one_row(con, "SELECT (SELECT count(*) FROM _users), (SELECT count(*) FROM _conv)")
    notes = [] if part else audit_notes(audits, folder, m)
    start, end = (
        (min(starts, default=date.max), max(ends, default=date.min)) if part else (min(starts), max(ends))
    )
    return EventAudit(audits, start, end, int(counts[0]), int(counts[1]), notes)


def audit_notes(audits: list[TableAudit], folder: Path, m: EventMapping) -> list[str]:
    """The notes shown after reading: what cleaning left out or repaired per table, and the unused files."""
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
    return notes


_COUNTS = ("rows", "kept", "duplicate_rows", "missing_ids", "unparseable_dates", "duplicate_keys", "unknown_ids",
           "before_registration", "bad_values")  # fmt: skip


def merge_audits(parts: list[EventAudit], folder: Path, m: EventMapping) -> EventAudit:
    """The audit of a whole extract from the audits of its partitions (disjoint sets of users, each table in
    mapping order): counts summed, first and last days the min and max, the files and notes of `m` and
    `folder`."""
    tables = []
    for i, t in enumerate(m.tables()):
        same = [p.tables[i] for p in parts]
        firsts = [a.first_date for a in same if a.first_date is not None]
        lasts = [a.last_date for a in same if a.last_date is not None]
        counts = {c: sum(getattr(a, c) for a in same) for c in _COUNTS}
        tables.append(
            TableAudit(name=same[0].name, file=t.file, first_date=min(firsts, default=None),
                       last_date=max(lasts, default=None), handling=same[0].handling, **counts)
        )  # fmt: skip
    return EventAudit(
        tables,
        min(p.data_start for p in parts),
        max(p.data_end for p in parts),
        sum(p.users for p in parts),
        sum(p.converted_users for p in parts),
        audit_notes(tables, folder, m),
    )
