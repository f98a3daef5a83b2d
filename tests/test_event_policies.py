"""Property tests of the event tables' date and id policies, the engine guard and the output checks.

Each policy has two readings that must agree on every generated case: the SQL DuckDB runs on the tables
and a plain-Python reading of the same rule (and, for ids, the Arrow reading a cluster partitions by).
"""

from __future__ import annotations

import itertools
import textwrap
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import SMALL_MAPPING
from upgrade_predictor.errors import InputError
from upgrade_predictor.files import check_outputs
from upgrade_predictor.sources.engine_errors import engine_errors, locate_csv_defect
from upgrade_predictor.sources.event_dates import (
    EARLIEST,
    LATE_MARGIN_DAYS,
    agreed_end,
    date_hint,
    parse_text_day,
    text_day_sql,
)
from upgrade_predictor.sources.event_ids import canonical_id, id_sql, id_text
from upgrade_predictor.sources.events import EventSource

# ------------------------------------------------------------------------------------------------ dates

DAYS = ["2022-03-01", "2022-3-1", "2020-02-29", "2021-02-29", "2022-12-31", "1899-12-31", "0044-03-15"]
TIMES = ["", " 00:00", "T23:30", " 23:30:00", "T00:30:00.123456789", " 9:05"]
OFFSETS = ["", "Z", "z", " UTC", "+02:00", "-05:00", "+0530", "-01", " +02:00"]
OTHERS = ["03/01/2022", "01.03.2022", "22-03-01", "20220301", "2022/03/01", "0044-03-15 (BC)", "-0044-03-15",
          "2022-13-01", "2022-03-01 25:00", "2022-03-01 10:61", "March 1, 2022", "", "  ", "2022-03-01T",
          "2022-03-01 10:00 America/New_York", "1e5", "nan"]  # fmt: skip
TEXTS = [d + t + (o if t else "") for d, t, o in itertools.product(DAYS, TIMES, OFFSETS)] + OTHERS


def sql_days(texts: list[str]) -> list[date | None]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # as the event source sets it
    con.register("cells", pd.DataFrame({"v": texts}))
    return [r[0] for r in con.execute(f"SELECT {text_day_sql('trim(v)')} FROM cells").fetchall()]


def test_sql_and_python_read_every_text_date_alike() -> None:
    assert sql_days(TEXTS) == [parse_text_day(t) for t in TEXTS]


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2022-03-01", date(2022, 3, 1)),
        ("2022-03-01 23:30:00", date(2022, 3, 1)),  # no offset: the day written
        ("2022-03-01T23:30:00-05:00", date(2022, 3, 2)),  # an offset: the UTC day
        ("2022-03-01T00:30:00+01", date(2022, 2, 28)),
        ("2022-03-01 20:00 UTC", date(2022, 3, 1)),
        ("2021-02-29", None),
        ("03/01/2022", None),
        ("22-03-01", None),
        ("20220301", None),
        ("0044-03-15 (BC)", None),
    ],
)
def test_the_day_of_a_text_cell(text: str, day: date | None) -> None:
    assert parse_text_day(text) == day == sql_days([text])[0]


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("03/01/2022", "month"),
        ("01.03.2022", "month"),
        ("22-03-01", "two-digit year"),
        ("20220301", "as a number"),
        ("1650", "numbers are not dates"),
        ("0044-03-15 (BC)", "common era"),
        ("0022-03-01", "before 1900"),
        ("2099-01-01", "after the data's end"),
        ("soon", "YYYY-MM-DD"),
    ],
)
def test_a_refused_date_says_what_to_change(text: str, hint: str) -> None:
    assert hint in date_hint(text)


@pytest.mark.parametrize(
    ("lasts", "end"),
    [
        ([date(2022, 8, 31)] * 7, date(2022, 8, 31) + timedelta(LATE_MARGIN_DAYS)),
        (
            [date(2022, 8, 31), date(2022, 8, 1), date(2099, 1, 1)],
            date(2022, 8, 31) + timedelta(LATE_MARGIN_DAYS),
        ),
        ([date(2022, 8, 31), None], None),
        ([None, None], None),
        ([date(2022, 1, 1), date(2022, 1, 1)], date(2022, 1, 1) + timedelta(LATE_MARGIN_DAYS)),
    ],
)
def test_the_day_the_tables_agree_on(lasts: list[date | None], end: date | None) -> None:
    assert agreed_end(lasts) == end
    if end is not None:  # never before any table but the latest one ends
        assert end >= sorted(d for d in lasts if d)[-2]


def write_tables(root: Path, users: str, purchases: str, learning: str, mapping: str = SMALL_MAPPING) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (("users.csv", users), ("purchases.csv", purchases), ("learning.csv", learning)):
        (root / name).write_text(textwrap.dedent(text).lstrip())
    (root / "mapping.toml").write_text(mapping)
    return root


USERS = """
    user_id,country,signup
    1,US,2022-03-01
    2,IN,2022-03-02
    3,DE,2022-03-03
"""
PURCHASES = """
    user_id,paid_on
    1,2022-03-05
"""


def learning(days: list[str], ids: list[str] | None = None) -> str:
    ids = ids or ["1", "2", "3"] * (len(days) // 3 + 1)
    rows = "".join(f"{i},c1,{n},{d}\n" for n, (i, d) in enumerate(zip(ids, days)))  # no two rows alike
    return "user_id,course,minutes,day\n" + rows


STAMPS = ["2022-03-04T23:30:00-05:00", "2022-03-05T00:30:00+01:00", "2022-03-06T12:00:00Z"]


def test_an_offset_lands_on_the_same_utc_day_in_csv_and_parquet(tmp_path: Path) -> None:
    csv = write_tables(tmp_path / "csv", USERS, PURCHASES, learning(STAMPS))
    par = write_tables(tmp_path / "par", USERS, PURCHASES, learning(STAMPS),
                       SMALL_MAPPING.replace("learning.csv", "learning.parquet"))  # fmt: skip
    frame = pd.read_csv(csv / "learning.csv", dtype=str)
    stamps = pd.to_datetime(frame["day"], utc=True, format="ISO8601")
    table = pa.Table.from_pandas(frame.drop(columns="day"), preserve_index=False)
    pq.write_table(table.append_column("day", pa.array(stamps, type=pa.timestamp("us", tz="UTC"))),
                   par / "learning.parquet")  # fmt: skip
    days = []
    for folder in (csv, par):
        with EventSource(folder, folder / "mapping.toml") as src:
            days.append(src.con.execute("SELECT user_id, day FROM act_learning ORDER BY user_id").fetchall())
    assert days[0] == days[1]
    assert [d for _, d in days[0]] == [date(2022, 3, 5), date(2022, 3, 4), date(2022, 3, 6)]


@pytest.mark.parametrize("bad", [0, 1, 2, 3, 4, 5, 6])
def test_a_column_is_refused_exactly_when_most_dates_fail(tmp_path: Path, bad: int) -> None:
    days = ["03/05/2022"] * bad + ["2022-03-05"] * (6 - bad)
    folder = write_tables(tmp_path, USERS, PURCHASES, learning(days))
    if bad > 3:
        with pytest.raises(InputError, match=rf"{bad} of 6 dates in `day`.*'03/05/2022'"):
            EventSource(folder, folder / "mapping.toml")
        return
    with EventSource(folder, folder / "mapping.toml") as src:
        t = src.audit.tables[2]
        assert (t.unparseable_dates, t.kept) == (bad, 6 - bad)
        assert t.date_example == ("03/05/2022" if bad else "")


@pytest.mark.parametrize(
    ("day", "reason"),
    [("1899-12-31", "early_dates"), ("0022-03-04", "early_dates"), ("2099-01-01", "late_dates"),
     ("2022-06-01", "late_dates"), ("2022-03-31", None), (str(EARLIEST), "before_first_registration")],
)  # fmt: skip
def test_implausible_dates_are_counted_and_do_not_move_the_end(tmp_path: Path, day: str, reason) -> None:
    days = ["2022-03-04", "2022-03-05", "2022-03-06", "2022-03-07", "2022-03-08", day]
    folder = write_tables(tmp_path, USERS, PURCHASES, learning(days))
    with EventSource(folder, folder / "mapping.toml") as src:
        t = src.audit.tables[2]
        counts = {k: getattr(t, k) for k in ("early_dates", "late_dates", "before_first_registration")}
        assert counts == {k: int(k == reason) for k in counts}
        expected_end = date.fromisoformat(day) if reason is None else date(2022, 3, 8)
        assert src.data_end == expected_end
        assert t.rows == t.kept + t.left_out


# -------------------------------------------------------------------------------------------------- ids

IDS = [258798, "258798", " 258798 ", "258798.0", "258798.000", 258798.0, "\u00a0258798", "+7", "7.0", "007",
       "u1", "u1.0", "258798.5", 258798.5, float("nan"), float("inf"), "", "  ", None, -3, "-3.0", 1e30]  # fmt: skip


def sql_ids(values: list, typ: str) -> list:
    con = duckdb.connect()
    con.register(
        "cells", pd.DataFrame({"v": pd.Series(values, dtype=object if typ == "VARCHAR" else "float64")})
    )
    col = "CAST(v AS VARCHAR)" if typ == "VARCHAR" else "v"
    con.execute(f"CREATE TABLE t AS SELECT {col} AS v FROM cells")
    return [r[0] for r in con.execute(f"SELECT {id_sql('v', typ, False)} FROM t").fetchall()]


def test_sql_python_and_arrow_canonical_ids_agree_on_text() -> None:
    texts = [None if v is None else str(v) if not isinstance(v, str) else v for v in IDS]
    python = [canonical_id(v) for v in texts]
    assert sql_ids(texts, "VARCHAR") == python
    assert id_text(pa.array(texts, type=pa.string())).to_pylist() == python


def test_sql_python_and_arrow_canonical_ids_agree_on_floats() -> None:
    floats = [float(v) for v in IDS if isinstance(v, (int, float))]
    python = [canonical_id(v) for v in floats]
    assert sql_ids(floats, "DOUBLE") == python
    assert id_text(pd.Series(floats)).to_pylist() == python


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [(258798, "258798.0", True), ("258798", 258798.0, True), (" 258798", "258798", True), ("007", 7, False),
     ("u1", "U1", False), ("258798.5", 258798, False)],
)  # fmt: skip
def test_one_user_however_the_id_is_written(a, b, same: bool) -> None:
    assert (canonical_id(a) == canonical_id(b)) is same


@pytest.mark.parametrize("users_parquet", [False, True])
@pytest.mark.parametrize("written", ["{}", "{}.0", '"{}"', " {} "])
def test_ids_match_across_tables_and_formats(tmp_path: Path, written: str, users_parquet: bool) -> None:
    days = ["2022-03-04", "2022-03-05", "2022-03-06"]
    rows = "".join(f"{written.format(i)},c1,5,{d}\n" for i, d in zip([1, 2, 3], days))
    mapping = SMALL_MAPPING.replace("users.csv", "users.parquet") if users_parquet else SMALL_MAPPING
    folder = write_tables(tmp_path, USERS, PURCHASES, "user_id,course,minutes,day\n" + rows, mapping)
    if users_parquet:
        pq.write_table(
            pa.table(
                {
                    "user_id": [1, 2, 3],
                    "country": ["US", "IN", "DE"],
                    "signup": ["2022-03-01", "2022-03-02", "2022-03-03"],
                }
            ),
            folder / "users.parquet",
        )
    with EventSource(folder, folder / "mapping.toml") as src:
        t = src.audit.tables[2]
        assert (t.kept, t.unknown_ids) == (3, 0)
        assert sorted(src.users_frame()["user_id"]) == ["1", "2", "3"]


@pytest.mark.parametrize("unknown", [0, 10, 29, 30])
def test_a_table_of_nearly_no_known_ids_is_refused(tmp_path: Path, unknown: int) -> None:
    ids = ["x9"] * unknown + ["1"] * (30 - unknown)
    folder = write_tables(tmp_path, USERS, PURCHASES, learning(["2022-03-05"] * 30, ids))
    if unknown == 30:
        with pytest.raises(InputError, match=r"30 of 30 ids in `user_id` match no user.*'x9'.*'1'"):
            EventSource(folder, folder / "mapping.toml")
        return
    with EventSource(folder, folder / "mapping.toml") as src:
        assert src.audit.tables[2].unknown_ids == unknown


# ------------------------------------------------------------------------------ guard and output checks


@pytest.mark.parametrize(
    ("tail", "line", "cause"),
    [(b"1,c1,5\n", 5, "3 fields where the header has 4"), (b'1,"c1,5,2022-03-05\n', 5, "never closed"),
     (b"1,c\xff,5,2022-03-05\n", 5, "not UTF-8"), (b"1,c1,5,2022-03-05,x\n", 5, "5 fields")],
)  # fmt: skip
def test_a_bad_line_is_named_with_its_cause(tmp_path: Path, tail: bytes, line: int, cause: str) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(learning(["2022-03-04", "2022-03-05", "2022-03-06"]).encode() + tail)
    found = locate_csv_defect(path)
    assert found is not None and found[0] == line and cause in found[1]
    con = duckdb.connect()
    scan = (f"read_csv(['{path}'], all_varchar = true, header = true, delim = ',', quote = '\"', "
            "escape = '\"', auto_detect = false)")  # fmt: skip
    with pytest.raises(InputError) as err, engine_errors("activity 'x' table t.csv"):
        con.execute(f"SELECT count(*) FROM {scan}").fetchall()
    message = str(err.value)
    assert message.startswith("activity 'x' table t.csv: cannot be read") and "\n" not in message
    assert "Possible" not in message and len(message) < 300


def test_a_clean_file_has_no_defect(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(learning(["2022-03-04", "2022-03-05"]))
    assert locate_csv_defect(path) is None


def test_an_output_never_joins_an_input_glob(tmp_path: Path) -> None:
    (tmp_path / "learn-1.csv").write_text("x")
    pattern = str(tmp_path / "learn-*.csv")
    with pytest.raises(InputError, match="matches the glob"):
        check_outputs({"--out": tmp_path / "learn-new.csv"}, {"tables": [pattern]})
    with pytest.raises(InputError, match="same file"):
        check_outputs({"--out": tmp_path / "learn-1.csv"}, {"tables": [pattern]})
    check_outputs({"--out": tmp_path / "scores.csv"}, {"tables": [pattern]})


def test_an_interrupted_query_is_an_interruption_not_bad_input() -> None:
    from upgrade_predictor import process

    assert process._is_interruption(duckdb.InterruptException("Query interrupted"))
    assert not process._is_interruption(ValueError("x"))
    with pytest.raises(KeyboardInterrupt), engine_errors("t"):
        raise duckdb.InterruptException("Query interrupted")
