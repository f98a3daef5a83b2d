"""The event-table catalogue, ids: one user however the id is written, and ids that match nobody."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
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
    both,
    column,
    expect_counts,
    mapping,
    replace_file,
    run_case,
    same_as_base,
    sample_base,
    to_parquet,
    with_mapping,
)

# Child processes on a sample of the real tables take minutes: run with the slow tests.
pytestmark = pytest.mark.slow

CASES = [
    # --- ids: one user however the id is written ---
    Case(
        "float-ids-in-purchases",
        [*SCORE, *AUDIT],
        0,
        r"scored",
        column(BUYS, "student_id", lambda v: v + ".0"),
        ["s.csv", "s.rejects.csv", "a.json"],
        same_as_base("conversions"),
    ),
    Case(
        "float-ids-in-users",
        [*FEATURES, *AUDIT],
        0,
        r"features written",
        column(INFO, "student_id", lambda v: v + ".0"),
        FA,
        same_as_base("learning"),
    ),
    Case(
        "quoted-ids",
        [*FEATURES, *AUDIT],
        0,
        r"features written",
        replace_file(LEARN, lambda b: re.sub(rb"(?m)^(\d+),", rb'"\1",', b)),
        FA,
        same_as_base("learning"),
    ),
    Case(
        "padded-ids",
        [*FEATURES, *AUDIT],
        0,
        r"features written",
        column(ENGAGE, "student_id", lambda v: f"  {v} "),
        FA,
        same_as_base("engagement"),
    ),
    Case(
        "parquet-float-ids",
        [*FEATURES, "--mapping", "map.toml", *AUDIT],
        0,
        r"features written",
        both(
            to_parquet(LEARN, {"student_id": pa.float64()}),
            with_mapping(mapping(learning="365_student_learning.parquet")),
        ),
        FA,
        same_as_base("learning"),
    ),
    Case(
        "parquet-int-users-text-purchases",
        [*FEATURES, "--mapping", "map.toml", *AUDIT],
        0,
        r"written",
        both(
            to_parquet(INFO, {"student_id": pa.int64()}),
            with_mapping(mapping(users="365_student_info.parquet")),
        ),
        FA,
        same_as_base("conversions"),
    ),
    Case(
        "ids-of-another-scheme",
        FEATURES,
        2,
        r"learning.*match no user.*'S\d+'",
        column(LEARN, "student_id", lambda v: "S" + v),
    ),
    Case(
        "ids-of-another-scheme-purchases",
        SCORE,
        2,
        r"conversions.*match no user",
        column(BUYS, "student_id", lambda v: "user-" + v),
    ),
    Case(
        "a-few-unknown-ids",
        [*FEATURES, *AUDIT],
        0,
        r"rows of unknown users",
        column(LEARN, "student_id", lambda v: "999999999", slice(0, 4)),
        FA,
        expect_counts("learning", unknown_ids=4),
    ),
    Case(
        "a-few-empty-ids",
        [*FEATURES, *AUDIT],
        0,
        r"rows without an id",
        column(LEARN, "student_id", lambda v: "", slice(0, 2)),
        FA,
        expect_counts("learning", missing_ids=2),
    ),
    Case(
        "non-whole-float-ids",
        [*FEATURES, *AUDIT],
        0,
        r"2 rows of unknown users.*\.5'",
        column(LEARN, "student_id", lambda v: v + ".5", slice(0, 2)),
        FA,
        expect_counts("learning", unknown_ids=2),
    ),
]


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory, real_events: Path) -> Path:
    return sample_base(tmp_path_factory, real_events)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_events_catalog(case: Case, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_case(case, base, tmp_path, monkeypatch)
