"""The event-table catalogue, files: CSV defects past the first rows, file formats, and messages that are
true to the tables, the mapping and the options."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from events_catalog_support import (
    AUDIT,
    BUYS,
    DRIFT,
    ENGAGE,
    FA,
    FEATURES,
    INFO,
    LEARN,
    SCORE,
    TRAIN,
    USERS,
    Case,
    F,
    append,
    audit_of,
    both,
    column,
    edit,
    expect_counts,
    features_of,
    last_row,
    mapping,
    read,
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
    # --- CSV defects past the first rows: one sentence naming the file and the line ---
    Case(
        "late-ragged-row-learning",
        FEATURES,
        2,
        r"learning.*line [\d,]+.*5 fields where the header has 4",
        last_row(LEARN, "1,2,3,2022-03-01,extra"),
    ),
    Case("late-short-row-purchases", SCORE, 2, r"conversions.*line [\d,]+.*fields", last_row(BUYS, "99,1")),
    Case(
        "late-unterminated-quote",
        FEATURES,
        2,
        r"engagement.*quoted value is never closed",
        last_row(ENGAGE, '1,2,0,0,1,"2022-03-01'),
    ),
    Case("truncated-last-line", DRIFT, 2, r"learning.*line [\d,]+", append(LEARN, b"1,2,3")),
    Case("truncated-inside-quote", FEATURES, 2, r"users table.*never closed", append(INFO, b'1,"U')),
    Case(
        "late-non-utf8-byte",
        FEATURES,
        2,
        r"learning.*not UTF-8",
        append(LEARN, b"1,2,\xff\xfe3,2022-03-01\n"),
    ),
    Case("non-utf8-country", SCORE, 2, r"users table.*not UTF-8", append(INFO, b"1,caf\xe9,2022-03-01\n")),
    Case(
        "very-long-line",
        FEATURES,
        2,
        r"learning.*line [\d,]+",
        append(LEARN, b"1,2," + b"9" * 3_000_000 + b",2022-03-01\n"),
    ),
    Case(
        "early-ragged-row",
        FEATURES,
        2,
        r"users table.*line 2\b.*fields",
        replace_file(INFO, lambda b: b.replace(b"\n", b",x\n", 2).replace(b",x\n", b"\n", 1)),
    ),
    Case(
        "gzip-late-defect",
        ["features", "--events", "ev", "--out", "f.csv"],
        2,
        r"learning.*line",
        both(last_row(LEARN, "1,2"), lambda d: _gzip_all(d)),
    ),
    # --- messages that are true ---
    Case(
        "semicolon-purchases",
        SCORE,
        2,
        r"conversions.*semicolons",
        replace_file(BUYS, lambda b: b.replace(b",", b";")),
    ),
    Case(
        "tab-delimited-learning",
        FEATURES,
        2,
        r"learning.*tabs",
        replace_file(LEARN, lambda b: b.replace(b",", b"\t")),
    ),
    Case(
        "empty-purchases-file", SCORE, 2, r"conversions.*empty \(0 bytes\)", replace_file(BUYS, lambda b: b"")
    ),
    Case(
        "header-only-users",
        FEATURES,
        2,
        r"users table.*no rows",
        replace_file(INFO, lambda b: b.split(b"\n")[0] + b"\n"),
    ),
    Case(
        "header-only-purchases",
        [*FEATURES, *AUDIT],
        0,
        r"features written",
        replace_file(BUYS, lambda b: b.split(b"\n")[0] + b"\n"),
        FA,
        lambda d: (audit_of(d)["converted_users"] == 0) or pytest.fail("upgrades from nowhere"),
    ),
    Case(
        "bundle-needs-a-missing-activity",
        [*SCORE, "--mapping", "map.toml"],
        2,
        r"no activity 'exams'",
        with_mapping(mapping(exams="")),
    ),
    Case(
        "drift-needs-a-missing-activity",
        [*DRIFT, "--mapping", "map.toml"],
        2,
        r"no activity 'ratings'",
        with_mapping(mapping(ratings="")),
    ),
    Case(
        "no-upgrades-at-all",
        TRAIN,
        2,
        r"no user upgraded",
        replace_file(BUYS, lambda b: b.split(b"\n")[0] + b"\n"),
    ),
    Case("everyone-upgrades-on-day-0", TRAIN, 2, r"upgraded on the day they registered", lambda d: _day0(d)),
    Case(
        "time-column-misnamed",
        [*FEATURES, "--mapping", "map.toml"],
        2,
        r"no time column `date_buy`",
        with_mapping(mapping(conversions_time="date_buy")),
    ),
    Case(
        "mapping-names-a-missing-file",
        [*FEATURES, "--mapping", "map.toml"],
        2,
        r"no such file",
        with_mapping(mapping(learning="nope.csv")),
    ),
    Case(
        "mapping-not-toml",
        [*FEATURES, "--mapping", "map.toml"],
        2,
        r"not valid TOML",
        with_mapping("[users\nfile = 1"),
    ),
    Case(
        "damaged-parquet",
        [*FEATURES, "--mapping", "map.toml"],
        2,
        r"learning.*Parquet",
        both(
            to_parquet(LEARN),
            replace_file("365_student_learning.parquet", lambda b: b[: len(b) // 2]),
            with_mapping(mapping(learning="365_student_learning.parquet")),
        ),
    ),
    Case(
        "not-a-parquet-file",
        [*FEATURES, "--mapping", "map.toml"],
        2,
        r"learning.*Parquet",
        both(
            lambda d: (d / "ev" / "fake.parquet").write_text("student_id,date\n1,2022-01-01\n"),
            with_mapping(mapping(learning="fake.parquet")),
        ),
    ),
    Case(
        "bom-and-crlf",
        [*FEATURES, *AUDIT],
        0,
        r"features written",
        replace_file(INFO, lambda b: b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n")),
        FA,
        same_as_base("users"),
    ),
    Case(
        "duplicated-users",
        [*FEATURES, *AUDIT],
        0,
        r"duplicate rows",
        edit(INFO, lambda df: pd.concat([df, df.head(3)])),
        FA,
        expect_counts("users", duplicate_rows=3),
    ),
    Case("as-of-not-a-date", [*FEATURES, "--as-of", "03/01/2022"], 2, r"--as-of.*YYYY-MM-DD"),
    Case("as-of-after-the-data", [*FEATURES, "--as-of", "2023-01-01"], 2, r"after the data ends"),
    Case("as-of-before-anyone", [*SCORE, "--as-of", "2021-01-01"], 2, r"no user is registered"),
    Case(
        "registered-on-the-as-of-day",
        [*FEATURES, "--as-of", "2022-06-01"],
        0,
        r"features written",
        writes=F,
        check=lambda d: _tenure0(d),
    ),
    Case(
        "namibia-is-not-missing",
        [*FEATURES, *AUDIT],
        0,
        r"features written",
        column(INFO, "student_country", lambda v: "NA", slice(0, 5)),
        FA,
        lambda d: (features_of(d)["student_country"].eq("NA").sum() >= 1) or pytest.fail("NA lost"),
    ),
    Case(
        "audit-shown-by-score",
        [*SCORE, *AUDIT],
        0,
        r"event tables: [\d,]+ users.*scored",
        column(LEARN, "date_watched", lambda v: "bad", slice(0, 2)),
        ["s.csv", "s.rejects.csv", "a.json"],
        expect_counts("learning", unparseable_dates=2),
    ),
    Case(
        "audit-shown-by-drift",
        [*DRIFT, *AUDIT],
        (0, 1),
        r"event tables: [\d,]+ users.*report written",
        writes=["d.json", "a.json"],
        check=lambda d: audit_of(d)["users"] == USERS or pytest.fail("users"),
    ),
    Case(
        "markup-in-a-cell-stays-text",
        [*FEATURES, *AUDIT],
        0,
        r"\[bold\]x",
        column(LEARN, "date_watched", lambda v: "[bold]x", slice(0, 1)),
        FA,
    ),
]


def _gzip_all(d: Path) -> None:
    for p in (d / "ev").glob("*.csv"):
        (d / "ev" / (p.name + ".gz")).write_bytes(gzip.compress(p.read_bytes()))
        p.unlink()


def _day0(d: Path) -> None:
    """Every user buys on the registration day."""
    info = read(d, INFO)
    pd.DataFrame({"purchase_id": range(len(info)), "student_id": info["student_id"], "purchase_type": "Annual",
                  "date_purchased": info["date_registered"]}).to_csv(d / "ev" / BUYS, index=False)  # fmt: skip


def _tenure0(d: Path) -> None:
    """Users registered on the --as-of day are scored with tenure 0 and no activity from that day."""
    info = read(d, INFO)
    on_day = set(info.loc[info["date_registered"] == "2022-06-01", "student_id"])
    f = features_of(d).astype({"user_id": str})
    rows = f[f["user_id"].isin(on_day)]
    assert len(rows) == len(on_day) > 0
    assert (rows["tenure_days"] == 0).all() and (rows["learning_events"] == 0).all()


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory, real_events: Path) -> Path:
    return sample_base(tmp_path_factory, real_events)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_events_catalog(case: Case, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_case(case, base, tmp_path, monkeypatch)


def test_the_catalogue_is_broad() -> None:
    from test_events_catalog_dates import CASES as DATES
    from test_events_catalog_ids import CASES as IDS
    from test_events_catalog_outputs import CASES as OUTPUTS

    every = [*CASES, *DATES, *IDS, *OUTPUTS]
    assert len(every) > 60 and len({c.name for c in every}) == len(every)
