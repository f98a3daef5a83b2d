"""What cleaning did to the event tables: every left-out or repaired row counted per table and rule, the
data's first and last day, the notes shown after reading, and the refusals the counts call for (a time
column whose dates mostly fail, an id column that matches nearly no user)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from upgrade_predictor.sources.event_dates import MOSTLY, mostly_unreadable
from upgrade_predictor.sources.event_ids import check_matched
from upgrade_predictor.sources.event_mapping import (
    ActivityTable,
    ConversionTable,
    EventMapping,
    UsersTable,
    where_of,
)
from upgrade_predictor.sources.event_staging import (
    DUPLICATE_KEY,
    EARLY_DATE,
    KEPT,
    LATE_DATE,
    MISSING_ID,
    UNKNOWN_ID,
    UNPARSEABLE_DATE,
    one_row,
    table_format,
)
from upgrade_predictor.sources.messages import excerpt


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
    # The date and id policies' counts (`event_dates`, `event_ids`): rows left out for a date before 1900
    # or after the data's plausible end, how many of the unparseable dates were empty cells, kept rows
    # dated before the first registration of all; and one offending cell of each kind ("" when none).
    early_dates: int = 0
    late_dates: int = 0
    empty_dates: int = 0
    before_first_registration: int = 0
    date_example: str = ""
    id_example: str = ""

    @property
    def left_out(self) -> int:
        return (self.duplicate_rows + self.missing_ids + self.unparseable_dates + self.early_dates
                + self.late_dates + self.duplicate_keys + self.unknown_ids)  # fmt: skip


@dataclass
class EventAudit:
    tables: list[TableAudit]
    data_start: date
    data_end: date
    users: int
    converted_users: int
    notes: list[str] = field(default_factory=list)
    users_example: str = ""  # one id of the users table, for messages about ids that match none

    def to_dict(self) -> dict[str, Any]:
        """The audit as JSON-ready values (dates as YYYY-MM-DD, None when a table has no dated row)."""
        d = asdict(self)
        d["data_start"], d["data_end"] = self.data_start.isoformat(), self.data_end.isoformat()
        for t in d["tables"]:
            for k in ("first_date", "last_date"):
                t[k] = t[k].isoformat() if t[k] is not None else None
        return d

    def summary(self) -> list[str]:
        """The audit in a few lines: the extract, then each table's rows kept and left out by reason."""
        lines = [f"event tables: {self.users:,} users, {self.converted_users:,} upgraded, "
                 f"{self.data_start} to {self.data_end}"]  # fmt: skip
        for t in self.tables:
            parts = {"without an id": t.missing_ids, "unreadable dates": t.unparseable_dates - t.empty_dates,
                     "empty dates": t.empty_dates, "before 1900": t.early_dates,
                     "after the data's end": t.late_dates, "duplicates": t.duplicate_rows + t.duplicate_keys,
                     "unknown ids": t.unknown_ids}  # fmt: skip
            out = ", ".join(f"{n:,} {what}" for what, n in parts.items() if n) or "none"
            flags = {"before registration": t.before_registration, "bad numbers": t.bad_values}
            kept = ", ".join(f"{n:,} {what}" for what, n in flags.items() if n)
            lines.append(f"  {t.name}: {t.rows:,} rows, {t.kept:,} kept" + (f" ({kept})" if kept else "")
                         + f"; left out: {out}")  # fmt: skip
        return lines


def table_audit(
    con: duckdb.DuckDBPyConnection, target: str, name: str, file: str, handling: str
) -> TableAudit:
    dates = f"__reason IN ({UNPARSEABLE_DATE}, {EARLY_DATE}, {LATE_DATE})"
    r = one_row(
        con,
        f"""
        SELECT min(day) FILTER (__reason = {KEPT}), max(day) FILTER (__reason = {KEPT}),
               min(__date_cell) FILTER ({dates} AND NOT __empty), min(__id_cell) FILTER (__reason = {UNKNOWN_ID}),
               sum(__copies), count(*) FILTER (__reason = {KEPT}), sum(__copies - 1),
               count(*) FILTER (__reason = {MISSING_ID}), count(*) FILTER (__reason = {UNPARSEABLE_DATE}),
               count(*) FILTER (__reason = {DUPLICATE_KEY}), count(*) FILTER (__reason = {UNKNOWN_ID}),
               count(*) FILTER (__reason = {KEPT} AND __early), sum(__bad) FILTER (__reason = {KEPT}),
               count(*) FILTER (__reason = {EARLY_DATE}), count(*) FILTER (__reason = {LATE_DATE}),
               count(*) FILTER (__reason = {UNPARSEABLE_DATE} AND __empty),
               count(*) FILTER (__reason = {KEPT} AND __first)
        FROM {target}
    """,
    )
    n = [int(x or 0) for x in r[4:]]
    return TableAudit(
        name=name, file=file, rows=n[0], kept=n[1], first_date=r[0], last_date=r[1], duplicate_rows=n[2],
        missing_ids=n[3], unparseable_dates=n[4], duplicate_keys=n[5], unknown_ids=n[6],
        before_registration=n[7], bad_values=n[8], handling=handling, early_dates=n[9], late_dates=n[10],
        empty_dates=n[11], before_first_registration=n[12], date_example=r[2] or "", id_example=r[3] or "",
    )  # fmt: skip


HANDLING = {
    "users": "exact duplicates and repeated ids removed (earliest registration kept); users without an id "
    "or a readable, plausible registration date left out",
    "conversions": "first conversion per user is the upgrade; rows without an id or a readable, plausible "
    "date, repeated keys and unknown ids left out",
    "activity": "exact duplicates and repeated keys removed; rows without an id or a readable, plausible "
    "date and unknown ids left out; events before registration kept with their own date",
}


def event_audit(
    con: duckdb.DuckDBPyConnection,
    folder: Path | None,
    m: EventMapping,
    audits: list[TableAudit],
    part: bool = False,
) -> EventAudit:
    """The audit of one staged extract; `part`: one partition of a larger extract, whose notes belong to the
    merged audit and which may hold no dated row (then data_start is date.max and data_end date.min, the
    neutral values of merge_audits)."""
    starts = [t.first_date for t in audits if t.first_date is not None]
    ends = [t.last_date for t in audits if t.last_date is not None]
    counts = one_row(con, "SELECT (SELECT count(*) FROM _users), (SELECT count(*) FROM _conv), "
                          "(SELECT min(user_id) FROM _users)")  # fmt: skip
    users_example = str(counts[2] or "")
    if not part:
        check_tables(audits, m, users_example)
    notes = [] if part else audit_notes(audits, folder, m)
    start, end = (
        (min(starts, default=date.max), max(ends, default=date.min)) if part else (min(starts), max(ends))
    )
    return EventAudit(audits, start, end, int(counts[0]), int(counts[1]), notes, users_example)


def check_tables(audits: list[TableAudit], m: EventMapping, users_example: str) -> None:
    """Refuse a table whose time column mostly fails the date policy, or whose ids nearly all match no user
    (the counts of the whole extract: a cluster checks its merged audit)."""
    for t, table in zip(audits, m.tables()):
        check_table(t, table, users_example)


def check_table(
    t: TableAudit, table: UsersTable | ConversionTable | ActivityTable, users_example: str
) -> None:
    """`check_tables` for one table (the users table is checked before any other is read)."""
    where = where_of(table)
    bad = t.unparseable_dates - t.empty_dates + t.early_dates + t.late_dates
    dated = bad + t.kept + t.duplicate_keys + t.unknown_ids
    with_id = t.rows - t.duplicate_rows - t.missing_ids
    if (dated == 0 and with_id > 0) or bad > MOSTLY * dated:
        raise mostly_unreadable(where, table.time, bad, dated, t.date_example)
    if not isinstance(table, UsersTable):
        check_matched(where, table.id, t.kept + t.unknown_ids, t.unknown_ids, t.id_example, users_example)


def audit_notes(audits: list[TableAudit], folder: Path | None, m: EventMapping) -> list[str]:
    """The notes shown after reading: what cleaning left out or repaired per table, and the unused files."""
    notes = []
    for t in audits:
        left = {"duplicate rows": t.duplicate_rows, "rows without an id": t.missing_ids,
                "rows without a readable date": t.unparseable_dates, "rows dated before 1900": t.early_dates,
                "rows dated after the data's end": t.late_dates, "repeated keys": t.duplicate_keys,
                "rows of unknown users": t.unknown_ids, "bad numbers (kept as missing)": t.bad_values,
                "rows dated before registration (kept)": t.before_registration,
                "rows dated before the first registration (kept)": t.before_first_registration}  # fmt: skip
        found = [f"{n:,} {what}" for what, n in left.items() if n]
        if t.date_example:
            found.append(f"an unreadable or implausible date: {excerpt(t.date_example)}")
        if t.id_example:
            found.append(f"an id of no user: {excerpt(t.id_example)}")
        if found:
            notes.append(f"{t.name}: " + ", ".join(found))
    used = {m.users.file, m.conversions.file, *(a.file for a in m.activities)}
    files = folder.iterdir() if folder is not None else ()  # a database has no unused files to note
    unused = sorted(p.name for p in files if table_format(p) and p.name not in used)
    if unused:
        notes.append("not used (a table needs a mapping entry with a date column): " + ", ".join(unused))
    return notes


_COUNTS = ("rows", "kept", "duplicate_rows", "missing_ids", "unparseable_dates", "duplicate_keys", "unknown_ids",
           "before_registration", "bad_values", "early_dates", "late_dates", "empty_dates",
           "before_first_registration")  # fmt: skip


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
        dates, ids = (
            [a.date_example for a in same if a.date_example],
            [a.id_example for a in same if a.id_example],
        )
        tables.append(
            TableAudit(name=same[0].name, file=t.file, first_date=min(firsts, default=None),
                       last_date=max(lasts, default=None), handling=same[0].handling,
                       date_example=min(dates, default=""), id_example=min(ids, default=""), **counts)
        )  # fmt: skip
    check_tables(tables, m, min((p.users_example for p in parts if p.users_example), default=""))
    return EventAudit(
        tables,
        min(p.data_start for p in parts),
        max(p.data_end for p in parts),
        sum(p.users for p in parts),
        sum(p.converted_users for p in parts),
        audit_notes(tables, folder, m),
        min((p.users_example for p in parts if p.users_example), default=""),
    )
