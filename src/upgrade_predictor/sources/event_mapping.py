"""The mapping of a folder of dated event tables: which table holds users, conversions and activity.

A folder of CSV (plain or .gz) or Parquet tables is described by a mapping file in TOML::

    [users]                         # one row per user
    file = "365_student_info.csv"   # a file, a folder of parts, or a glob such as "info/*.parquet"
    id = "student_id"
    time = "date_registered"
    attributes = ["student_country"]   # or {student_country = "categorical", age = "numeric"}

    [conversions]                   # a user's FIRST row is the upgrade; later rows are renewals
    file = "365_student_purchases.csv"
    id = "student_id"
    time = "date_purchased"
    key = ["purchase_id"]           # optional: columns that identify a row

    [[activity]]                    # any number of these
    name = "learning"               # letters, digits, "_": it prefixes the feature names
    file = "365_student_learning.csv"
    id = "student_id"
    time = "date_watched"
    measures = ["minutes_watched"]  # numeric columns summed; empty: events are only counted
    item = "course_id"              # optional: distinct items are counted
    key = ["student_id", "course_id", "date_watched"]   # optional

Paths are relative to the data folder. For a database (`--events postgresql://...`) each table says
`table = "365_student_info"` (a table or view, or `schema.name`) instead of `file`. Without a mapping file, a folder holding the 365 file names
(``365_student_info.csv``, ``.csv.gz`` or ``.parquet``, and the rest with the same ending) uses
`builtin_mapping`. Every table needs a `time` column: a table that cannot be placed in time (such as
365_student_quizzes.csv) would mix events from after any cutoff into the features, so it is refused.
Attribute kinds not declared are inferred: numeric when the column is numeric or every non-empty cell
parses as a number, categorical otherwise.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upgrade_predictor.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,40}$")
KINDS = ("categorical", "numeric")
RESERVED = {"user_id", "cutoff", "tenure_days", "registered", "registered_weekday", "first_upgrade"}
EVENT_COLUMNS = {"user_id", "day", "item"}  # columns of every act_<name> table besides the measures


@dataclass(frozen=True)
class Attribute:
    column: str
    kind: str | None = None  # "categorical" | "numeric"; None = infer from the data


@dataclass(frozen=True)
class UsersTable:
    file: str
    id: str
    time: str
    attributes: tuple[Attribute, ...] = ()


@dataclass(frozen=True)
class ConversionTable:
    file: str
    id: str
    time: str
    key: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActivityTable:
    name: str
    file: str
    id: str
    time: str
    measures: tuple[str, ...] = ()
    item: str | None = None
    key: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventMapping:
    users: UsersTable
    conversions: ConversionTable
    activities: tuple[ActivityTable, ...]

    def tables(self) -> list[UsersTable | ConversionTable | ActivityTable]:
        """Every table of the mapping: users, conversions, then the activities."""
        return [self.users, self.conversions, *self.activities]


def where_of(t: UsersTable | ConversionTable | ActivityTable) -> str:
    """A table as messages name it: its role and file."""
    if isinstance(t, UsersTable):
        return f"users table {t.file}"
    if isinstance(t, ConversionTable):
        return f"conversions table {t.file}"
    return f"activity '{t.name}' table {t.file}"


# ----------------------------------------------------------------------------------------------- mapping

_TABLE_KEYS = {
    "users": {"file", "table", "id", "time", "attributes"},
    "conversions": {"file", "table", "id", "time", "key"},
    "activity": {"name", "file", "table", "id", "time", "measures", "item", "key"},
}


def _where(d: dict[str, Any], where: str) -> str:
    """`file` (in a folder) or `table` (in a database: a table or view, `schema.name` too), one of them."""
    if "table" in d and "file" in d:
        raise InputError(f"{where}: give `file` (a folder's) or `table` (a database's), not both")
    return str(_text(d, "table" if "table" in d else "file", where))


def _text(d: dict[str, Any], key: str, where: str, required: bool = True) -> str | None:
    value = d.get(key)
    if value is None and not required:
        return None
    if value is None and key == "time":
        raise InputError(
            f"{where} has no `time` column: a table that cannot be placed in time would mix events from "
            "after any cutoff into the features; name its date column or leave the table out"
        )
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: `{key}` must be a non-empty text value")
    return value


def _texts(d: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = d.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputError(f"{where}: `{key}` must be a list of column names")
    return tuple(value)


def _table(d: Any, role: str, where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise InputError(f"{where}: [{role}] must be a table of keys")
    unknown = sorted(set(d) - _TABLE_KEYS[role])
    if unknown:
        raise InputError(
            f"{where}: unknown key `{unknown[0]}`; allowed: {', '.join(sorted(_TABLE_KEYS[role]))}"
        )
    return d


def _attributes(d: dict[str, Any], where: str) -> tuple[Attribute, ...]:
    value = d.get("attributes", [])
    if isinstance(value, dict):
        bad = [k for k, v in value.items() if v not in KINDS]
        if bad:
            raise InputError(f"{where}: attribute `{bad[0]}` must be declared 'categorical' or 'numeric'")
        return tuple(Attribute(k, v) for k, v in value.items())
    return tuple(Attribute(c) for c in _texts(d, "attributes", where))


def mapping_from_dict(data: dict[str, Any], where: str = "mapping") -> EventMapping:
    """Validate a parsed mapping: unknown keys, missing keys, undated tables, names, duplicates."""
    unknown = sorted(set(data) - set(_TABLE_KEYS))
    if unknown:
        raise InputError(f"{where}: unknown key `{unknown[0]}`; allowed: users, conversions, activity")
    for role in ("users", "conversions"):
        if role not in data:
            raise InputError(f"{where}: the [{role}] table is missing")
    u = _table(data["users"], "users", f"{where} [users]")
    users = UsersTable(
        file=_where(u, f"{where} [users]"),
        id=str(_text(u, "id", f"{where} [users]")),
        time=str(_text(u, "time", f"{where} [users]")),
        attributes=_attributes(u, f"{where} [users]"),
    )
    c = _table(data["conversions"], "conversions", f"{where} [conversions]")
    w = f"{where} [conversions]"
    conversions = ConversionTable(
        _where(c, w), str(_text(c, "id", w)), str(_text(c, "time", w)), _texts(c, "key", w)
    )
    raw = data.get("activity", [])
    if not isinstance(raw, list):
        raise InputError(f"{where}: `activity` must be written as [[activity]] tables")
    activities: list[ActivityTable] = []
    for i, a in enumerate(raw):
        label = a.get("name") if isinstance(a, dict) else None
        w = f"{where} [[activity]] " + (f"'{label}'" if isinstance(label, str) else f"#{i + 1}")
        a = _table(a, "activity", w)
        name = str(_text(a, "name", w))
        w = f"{where} [[activity]] '{name}'"
        if not NAME_PATTERN.match(name):
            raise InputError(f"{w}: the name must start with a letter and use only letters, digits and _")
        activities.append(
            ActivityTable(
                name=name,
                file=_where(a, w),
                id=str(_text(a, "id", w)),
                time=str(_text(a, "time", w)),
                measures=_texts(a, "measures", w),
                item=_text(a, "item", w, required=False),
                key=_texts(a, "key", w),
            )
        )
    seen: set[str] = set()
    for a in activities:  # DuckDB identifiers ignore case, so names must differ beyond case
        if a.name.lower() in seen:
            raise InputError(f"{where}: the activity name '{a.name}' is used twice; names must be unique")
        seen.add(a.name.lower())
    _check_output_names(users, activities, where)
    return EventMapping(users, conversions, tuple(activities))


def _check_output_names(users: UsersTable, activities: list[ActivityTable], where: str) -> None:
    names: set[str] = set()
    for attr in users.attributes:
        if attr.column.lower() in RESERVED or attr.column.lower() in names:
            raise InputError(f"{where} [users]: attribute `{attr.column}` clashes with another feature name")
        names.add(attr.column.lower())
    for a in activities:
        for m in a.measures:
            if m.lower() in {"events", *EVENT_COLUMNS} or a.measures.count(m) > 1:
                raise InputError(
                    f"{where} [[activity]] '{a.name}': measure `{m}` clashes with a feature name"
                )
        if any(n.lower().startswith(a.name.lower() + "_") for n in names):
            raise InputError(f"{where} [[activity]] '{a.name}': feature names clash with an attribute")


def load_mapping(path: Path) -> EventMapping:
    """Read and validate a TOML mapping file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such mapping file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    return mapping_from_dict(data, str(path))


def builtin_mapping(suffix: str = ".csv") -> EventMapping:
    """The 365 Data Science layout; `suffix` is the files' ending (.csv, .csv.gz or .parquet)."""

    def f(stem: str) -> str:
        return stem + suffix

    def act(
        name: str, stem: str, time: str, measures: tuple[str, ...], item: str | None, key: tuple[str, ...]
    ) -> ActivityTable:
        return ActivityTable(name, f(stem), "student_id", time, measures, item, key)

    return EventMapping(
        UsersTable(f("365_student_info"), "student_id", "date_registered", (Attribute("student_country"),)),
        ConversionTable(f("365_student_purchases"), "student_id", "date_purchased", ("purchase_id",)),
        (
            act("learning", "365_student_learning", "date_watched", ("minutes_watched",), "course_id",
                ("student_id", "course_id", "date_watched")),
            act("engagement", "365_student_engagement", "date_engaged",
                ("engagement_quizzes", "engagement_exams", "engagement_lessons"), None, ("engagement_id",)),
            act("exams", "365_student_exams", "date_exam_completed", ("exam_result", "exam_completion_time"),
                "exam_id", ("exam_attempt_id",)),
            act("hub_questions", "365_student_hub_questions", "date_question_asked", (), None,
                ("hub_question_id",)),
            act("ratings", "365_course_ratings", "date_rated", ("course_rating",), "course_id",
                ("student_id", "course_id")),
        ),
    )  # fmt: skip


def database_mapping(mapping: Path | None) -> EventMapping:
    """The mapping of a database: the file if given, else the 365 tables under their own names."""
    return load_mapping(mapping) if mapping is not None else builtin_mapping("")


def resolve_mapping(folder: Path, mapping: Path | None) -> EventMapping:
    """The mapping file if given, else the built-in 365 layout when the folder holds its files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such data folder")
    if mapping is not None:
        return load_mapping(mapping)
    for suffix in (".csv", ".csv.gz", ".parquet"):
        if (folder / f"365_student_info{suffix}").exists():
            return builtin_mapping(suffix)
    raise InputError(
        f"{folder} does not hold the 365 tables (365_student_info.csv ...); describe its tables in a mapping "
        "file (TOML with [users], [conversions] and [[activity]]) and pass it"
    )
