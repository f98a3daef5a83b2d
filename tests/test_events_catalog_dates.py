"""The event-table catalogue, dates and times: the date policy's formats, refusals and plausible span."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from events_catalog_support import (
    AUDIT,
    BUYS,
    ENGAGE,
    FA,
    FEATURES,
    INFO,
    LEARN,
    SCORE,
    Case,
    audit_of,
    both,
    column,
    expect_counts,
    expect_end,
    mapping,
    read,
    run_case,
    same_as_base,
    sample_base,
    to_parquet,
    with_mapping,
)

# Child processes on a sample of the real tables take minutes: run with the slow tests.
pytestmark = pytest.mark.slow

CASES = [
    # --- dates: the policy's formats, refusals and plausible span ---
    Case(
        "bc-date-one-row",
        [*FEATURES, *AUDIT],
        0,
        r"1 rows without a readable date.*BC",
        column(LEARN, "date_watched", lambda v: "0044-03-15 (BC)", slice(0, 1)),
        FA,
        expect_counts("learning", unparseable_dates=1),
    ),
    Case(
        "year-0022-one-row",
        [*FEATURES, *AUDIT],
        0,
        r"before 1900",
        column(LEARN, "date_watched", lambda v: "0022" + v[4:], slice(0, 1)),
        FA,
        expect_counts("learning", early_dates=1),
    ),
    Case(
        "bc-dates-every-purchase",
        SCORE,
        2,
        r"date_purchased.*before the common era",
        column(BUYS, "date_purchased", lambda v: v + " (BC)"),
    ),
    Case(
        "month-first-purchases",
        SCORE,
        2,
        r"date_purchased.*\b03/|date_purchased.*YYYY-MM-DD",
        column(BUYS, "date_purchased", lambda v: f"{v[5:7]}/{v[8:10]}/{v[:4]}"),
    ),
    Case(
        "day-first-dotted-registrations",
        FEATURES,
        2,
        r"users table.*date_registered.*YYYY-MM-DD",
        column(INFO, "date_registered", lambda v: f"{v[8:10]}.{v[5:7]}.{v[:4]}"),
    ),
    Case(
        "two-digit-years",
        FEATURES,
        2,
        r"date_watched.*two-digit year",
        column(LEARN, "date_watched", lambda v: v[2:]),
    ),
    Case(
        "integer-dates",
        FEATURES,
        2,
        r"engagement.*date_engaged.*as a number",
        column(ENGAGE, "date_engaged", lambda v: v.replace("-", "")),
    ),
    Case(
        "number-column-as-time",
        [*FEATURES, "--mapping", "map.toml"],
        2,
        r"minutes_watched.*numbers",
        with_mapping(mapping(learning_time="minutes_watched")),
    ),
    Case(
        "parquet-integer-time",
        [*FEATURES, "--mapping", "map.toml"],
        2,
        r"holds numbers \(BIGINT\)",
        both(
            column(LEARN, "date_watched", lambda v: v.replace("-", "")),
            to_parquet(LEARN, {"date_watched": pa.int64()}),
            with_mapping(mapping(learning="365_student_learning.parquet")),
        ),
    ),
    Case(
        "a-few-unreadable-dates",
        [*FEATURES, *AUDIT],
        0,
        r"5 rows without a readable date",
        column(LEARN, "date_watched", lambda v: "soon", slice(0, 5)),
        FA,
        expect_counts("learning", unparseable_dates=5, empty_dates=0),
    ),
    Case(
        "a-few-empty-dates",
        [*FEATURES, *AUDIT],
        0,
        r"3 rows without a readable date",
        column(ENGAGE, "date_engaged", lambda v: "", slice(0, 3)),
        FA,
        expect_counts("engagement", unparseable_dates=3, empty_dates=3),
    ),
    Case(
        "every-date-empty",
        FEATURES,
        2,
        r"date_exam_completed.*empty in every row",
        column("365_student_exams.csv", "date_exam_completed", lambda v: ""),
    ),
    Case(
        "event-in-2099",
        [*FEATURES, *AUDIT],
        0,
        r"after the data's end",
        column(LEARN, "date_watched", lambda v: "2099" + v[4:], slice(0, 1)),
        FA,
        expect_end("2022-08-31"),
    ),
    Case(
        "purchase-in-2099",
        [*SCORE, *AUDIT],
        0,
        r"after the data's end",
        column(BUYS, "date_purchased", lambda v: "2099-01-01", slice(0, 1)),
        ["s.csv", "s.rejects.csv", "a.json"],
        lambda d: (audit_of(d)["data_end"] == "2022-08-31") or pytest.fail("as-of moved"),
    ),
    Case(
        "registration-in-2099",
        [*FEATURES, *AUDIT],
        0,
        r"after the data's end",
        column(INFO, "date_registered", lambda v: "2099-12-31", slice(0, 1)),
        FA,
        expect_end("2022-08-31"),
    ),
    Case(
        "typo-year-2023-in-one-table",
        [*FEATURES, *AUDIT],
        0,
        r"after the data's end",
        column(ENGAGE, "date_engaged", lambda v: "2023" + v[4:], slice(0, 2)),
        FA,
        expect_end("2022-08-31"),
    ),
    Case(
        "a-whole-table-a-year-late",
        FEATURES,
        2,
        r"engagement.*date_engaged.*after the data's end",
        column(ENGAGE, "date_engaged", lambda v: "2024" + v[4:]),
    ),
    Case(
        "timestamps-with-time",
        [*FEATURES, *AUDIT],
        0,
        r"features written",
        column(LEARN, "date_watched", lambda v: v + " 13:45:10"),
        FA,
        same_as_base("learning"),
    ),
    Case(
        "timestamps-iso-t-z",
        [*FEATURES, *AUDIT],
        0,
        r"features written",
        column(BUYS, "date_purchased", lambda v: v + "T10:00:00Z"),
        FA,
        same_as_base("conversions"),
    ),
    Case(
        "timestamps-with-offsets",
        [*FEATURES, *AUDIT],
        0,
        r"features written",
        column(ENGAGE, "date_engaged", lambda v: v + " 12:00:00+02:00"),
        FA,
        same_as_base("engagement"),
    ),
    Case(
        "one-digit-months",
        [*FEATURES, *AUDIT],
        0,
        r"features written",
        column(INFO, "date_registered", lambda v: f"{v[:4]}-{int(v[5:7])}-{int(v[8:10])}"),
        FA,
        same_as_base("users"),
    ),
    Case(
        "parquet-timestamptz",
        [*FEATURES, "--mapping", "map.toml", *AUDIT],
        0,
        r"features written",
        both(to_parquet(LEARN), lambda d: _timestamptz(d), with_mapping(mapping(learning="learn.parquet"))),
        FA,
        same_as_base("learning"),
    ),
    Case(
        "parquet-bc-date",
        [*FEATURES, "--mapping", "map.toml", *AUDIT],
        0,
        r"before 1900",
        both(lambda d: _parquet_dates(d, bc_rows=1), with_mapping(mapping(ratings="ratings.parquet"))),
        FA,
        expect_counts("ratings", early_dates=1),
    ),
    Case(
        "parquet-all-bc-dates",
        [*FEATURES, "--mapping", "map.toml"],
        2,
        r"ratings.*date_rated",
        both(lambda d: _parquet_dates(d, bc_rows=10**9), with_mapping(mapping(ratings="ratings.parquet"))),
    ),
]


def _timestamptz(d: Path) -> None:
    """learn.parquet with its dates as UTC timestamps (noon) instead of text."""
    t = pq.read_table(d / "ev" / "365_student_learning.parquet")
    stamps = pd.to_datetime(t.column("date_watched").to_pandas()) + pd.Timedelta(hours=12)
    arr = pa.array(stamps.dt.tz_localize("UTC"), type=pa.timestamp("us", tz="UTC"))
    pq.write_table(t.set_column(t.schema.get_field_index("date_watched"), "date_watched", arr),
                   d / "ev" / "learn.parquet")  # fmt: skip
    (d / "ev" / "365_student_learning.parquet").unlink()


def _parquet_dates(d: Path, bc_rows: int) -> None:
    """ratings.parquet with DATE typed days, the first `bc_rows` of them far before the common era."""
    df = read(d, "365_course_ratings.csv")
    days = pd.to_datetime(df["date_rated"]).dt.date.tolist()
    arr = pa.array(days, type=pa.date32()).cast(pa.int32()).to_pylist()
    arr = [-800_000 if i < bc_rows else v for i, v in enumerate(arr)]  # about 220 BC
    table = pa.Table.from_pandas(df.drop(columns="date_rated"), preserve_index=False)
    table = table.append_column("date_rated", pa.array(arr, type=pa.int32()).cast(pa.date32()))
    pq.write_table(table, d / "ev" / "ratings.parquet")


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory, real_events: Path) -> Path:
    return sample_base(tmp_path_factory, real_events)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_events_catalog(case: Case, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_case(case, base, tmp_path, monkeypatch)
