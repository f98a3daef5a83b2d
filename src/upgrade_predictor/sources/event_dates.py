"""The one date policy of the event tables: which cells are dates, which dates are plausible, and what the
user is told about the rest.

Accepted, in every file format alike:

* ISO dates, YYYY-MM-DD (a one-digit month or day is read too: the four-digit year comes first, so the
  order is never in doubt);
* ISO timestamps, YYYY-MM-DD HH:MM[:SS[.fraction]] (or with a T), taken on their calendar day; with an
  offset (Z, +HH, +HHMM, +HH:MM) they are taken on their UTC day, as a Parquet timestamp with a time zone
  is, so one event falls on one day whatever the file format;
* Parquet (or DuckDB) DATE and TIMESTAMP columns.

Refused as unreadable (counted; a column whose dates mostly fail is refused, naming an example): any
other text, such as 03/05/2022 (month or day first cannot be told), 22-03-01 (a two-digit year), 20220301
(a number), 2022-03-01 (BC). A column of numbers is refused outright: numbers are not dates.

Plausible: from 1900-01-01 (EARLIEST) to the data's end. The end is the earlier of tomorrow (no event
comes from the future, wherever on earth the clock runs) and, when the tables disagree, the last day the
tables agree on: the second-latest last day of a table plus LATE_MARGIN_DAYS. One table whose last rows
run past every other table's (one event typed 2099, a year typed 2023 for 2022) is a typo, not the
data's end; if the default --as-of followed it, every user would get a tenure of decades. Dates outside
the plausible span are left out of the tables and counted, so they never move the default --as-of.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone

from upgrade_predictor.errors import InputError
from upgrade_predictor.sources.messages import excerpt

EARLIEST = date(1900, 1, 1)
LATE_MARGIN_DAYS = 31
# A column is refused when more than this share of its non-empty date cells are unreadable or
# implausible: it is then the format that is wrong, not a few rows.
MOSTLY = 0.5

_DAY = r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
_TIME = r"[T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,9})?)?"
_OFFSET = r" ?(Z|z|UTC|[+-][0-9]{2}(:?[0-9]{2})?)"
DATE_PATTERN = re.compile(_DAY)
TIMESTAMP_PATTERN = re.compile(f"{_DAY}{_TIME}({_OFFSET})?")

INTEGER_PREFIXES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                    "UINTEGER", "UBIGINT", "UHUGEINT")  # fmt: skip
NUMBER_PREFIXES = (*INTEGER_PREFIXES, "FLOAT", "DOUBLE", "DECIMAL", "REAL")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def tomorrow() -> date:
    """The last plausible day of any event: tomorrow in UTC (today somewhere on earth)."""
    return datetime.now(timezone.utc).date() + timedelta(days=1)


def check_time_type(column: str, typ: str, where: str) -> None:
    """Refuse a time column whose type cannot hold dates (numbers, flags, lists)."""
    if typ == "DATE" or typ.startswith("TIMESTAMP") or typ == "VARCHAR":
        return
    if typ.startswith(NUMBER_PREFIXES):
        raise InputError(
            f"{where}: the time column `{column}` holds numbers ({typ}), not dates; map a column of dates "
            "written YYYY-MM-DD (a number such as 20220301 or a count is not read as a date)"
        )
    raise InputError(f"{where}: the time column `{column}` holds {typ} values, not dates; map a date column")


def text_day_sql(cell: str) -> str:
    """SQL: a text cell (trimmed) as its calendar day under the policy; NULL when it is not accepted.

    Timestamps go through TIMESTAMPTZ: the session's time zone is UTC, so a cell with an offset lands on
    its UTC day and one without on the day written."""
    date_only = f"regexp_full_match({cell}, '{DATE_PATTERN.pattern}')"
    stamp = f"regexp_full_match({cell}, '{TIMESTAMP_PATTERN.pattern}')"
    zulu = f"regexp_replace({cell}, ' ?(UTC|z)$', 'Z')"
    utc = f"regexp_replace({zulu}, ' ([+-][0-9]{{2}}(:?[0-9]{{2}})?)$', '\\1')"  # DuckDB wants no space
    return (
        f"(CASE WHEN {date_only} THEN TRY_CAST({cell} AS DATE) "
        f"WHEN {stamp} THEN CAST(TRY_CAST({utc} AS TIMESTAMPTZ) AS DATE) END)"
    )


def day_sql(column: str, typ: str) -> str:
    """SQL: a time column as a calendar day (NULL when unreadable); the column's type already checked."""
    c = _ident(column)
    if typ == "DATE":
        return c
    if typ.startswith("TIMESTAMP"):  # with a time zone: its UTC day (the session's zone is UTC)
        return f"CAST({c} AS DATE)"
    return text_day_sql(f"trim(CAST({c} AS VARCHAR))")


def plausible_sql(day: str, last: date) -> str:
    """SQL: whether a parsed day lies in the plausible span [EARLIEST, last]."""
    return f"({day} >= DATE '{EARLIEST.isoformat()}' AND {day} <= DATE '{last.isoformat()}')"


def agreed_end(last_days: Sequence[date | None]) -> date | None:
    """The latest plausible day when the tables disagree: the second-latest table's last day plus the
    margin; None when fewer than two tables have dates (nothing to agree on)."""
    days = sorted(d for d in last_days if d is not None)
    if len(days) < 2:
        return None
    return days[-2] + timedelta(days=LATE_MARGIN_DAYS)


def parse_text_day(text: str) -> date | None:
    """The day a text cell stands for under the policy (Python's reading, for tests and messages)."""
    s = text.strip()
    if DATE_PATTERN.fullmatch(s):
        y, m, d = (int(p) for p in s.split("-"))
        try:
            return date(y, m, d)
        except ValueError:
            return None
    if not TIMESTAMP_PATTERN.fullmatch(s):
        return None
    s = re.sub(r" ?(UTC|z|Z)$", "+00:00", s)
    s = re.sub(r" ?([+-][0-9]{2})$", r"\1:00", s)
    s = re.sub(r" ?([+-][0-9]{2})([0-9]{2})$", r"\1:\2", s)
    s = re.sub(
        r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})", lambda m: f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}", s
    )
    s = re.sub(r"[T ]([0-9]):", r"T0\1:", s, count=1)
    s = re.sub(r"\.([0-9]{1,6})[0-9]*", r".\1", s)
    try:
        stamp = datetime.fromisoformat(s)
    except ValueError:
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(timezone.utc)
    return stamp.date()


def date_hint(example: str) -> str:
    """Why a cell is not a date of the policy, from one example: what the user should change."""
    s = example.strip()
    if re.fullmatch(r"[0-9]{1,2}[/.-][0-9]{1,2}[/.-][0-9]{4}", s):
        return "a day-and-month-first date cannot be told from a month-first one; write dates YYYY-MM-DD"
    if re.fullmatch(r"[0-9]{1,2}[/.-][0-9]{1,2}[/.-][0-9]{1,2}", s):
        return "a two-digit year cannot be read; write dates YYYY-MM-DD"
    if re.fullmatch(r"[0-9]{8}", s):
        return "a date written as a number is not read; write dates YYYY-MM-DD"
    if re.fullmatch(r"-?[0-9]+([.][0-9]+)?", s):
        return "numbers are not dates; map a column of dates written YYYY-MM-DD"
    if "BC" in s.upper() or s.startswith("-"):
        return "dates before the common era are not event dates; write dates YYYY-MM-DD"
    day = parse_text_day(s)
    if day is not None and day < EARLIEST:
        return f"dates before {EARLIEST.year} are not event dates; check the year"
    if day is not None:
        return "dates after the data's end are typos or from the future; check the year"
    return "write dates YYYY-MM-DD, or YYYY-MM-DD HH:MM:SS with an optional UTC offset"


def mostly_unreadable(where: str, column: str, bad: int, dated: int, example: str) -> InputError:
    """The refusal of a time column whose dates mostly fail (or that has no date at all)."""
    if dated == 0:
        return InputError(f"{where}: the time column `{column}` is empty in every row; map a column of dates")
    return InputError(
        f"{where}: {bad:,} of {dated:,} dates in `{column}` are unreadable or implausible (e.g. "
        f"{excerpt(example)}): {date_hint(example)}"
    )
