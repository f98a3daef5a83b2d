"""The event source: mapping validation, the built-in 365 layout, reading CSV/Parquet, and the audit."""

from __future__ import annotations

import dataclasses
import gc
import gzip
import shutil
import textwrap
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SMALL_MAPPING
from upgrade_predictor.errors import InputError
from upgrade_predictor.sources.event_mapping import (
    ActivityTable,
    UsersTable,
    builtin_mapping,
    load_mapping,
    resolve_mapping,
)
from upgrade_predictor.sources.events import EventSource

MAPPING = SMALL_MAPPING


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def dirty_folder(root: Path, mapping: str = MAPPING) -> Path:
    """Small tables with one case of every cleaning rule."""
    root.mkdir(parents=True, exist_ok=True)
    write(
        root / "users.csv",
        """
        user_id,country,signup
        u1,NA,2022-03-01
        u2,US,2022-03-05
        u2,US,2022-03-05
        u3,,2022-03-02
        u4,DE,not a date
        u5,FR,2022-03-04
        u5,FR,2022-03-03
        ,GB,2022-03-03
    """,
    )  # u2 twice (exact duplicate), u4 unparseable, u5 twice (key), one missing id
    write(
        root / "purchases.csv",
        """
        user_id,paid_on
        u1,2022-03-10
        u1,2022-04-01
        u9,2022-03-05
        u2,
    """,
    )  # a renewal, an unknown user, an empty date
    write(
        root / "learning.csv",
        """
        user_id,course,minutes,day
        u1,c1,10,2022-03-01
        u1,c2,5,2022-03-01
        u1,c2,5,2022-03-01
        u1,c1,abc,2022-03-08
        u2,c1,3,2022-03-04
        zz,c1,1,2022-03-02
        u2,c1,1,03-05-2022
        u2,c1,1,2022-02-30
        ,c1,1,2022-03-05
        u3,c1,2,2022-03-06 10:30:00
    """,
    )
    write(root / "mapping.toml", mapping)
    return root


def audit_of(source: EventSource, name: str):
    return next(t for t in source.audit.tables if t.name == name)


def test_audit_counts_every_cleaning_case(tmp_path: Path) -> None:
    folder = dirty_folder(tmp_path)
    with EventSource(folder, folder / "mapping.toml") as src:
        users = audit_of(src, "users")
        assert (users.rows, users.kept, users.duplicate_rows, users.unparseable_dates) == (8, 4, 1, 1)
        assert (users.duplicate_keys, users.missing_ids) == (1, 1)
        conv = audit_of(src, "conversions")
        assert (conv.rows, conv.kept, conv.unknown_ids, conv.unparseable_dates) == (4, 2, 1, 1)
        learn = audit_of(src, "learning")
        assert (learn.rows, learn.kept, learn.duplicate_rows, learn.unknown_ids) == (10, 5, 1, 1)
        assert (learn.unparseable_dates, learn.missing_ids, learn.before_registration) == (2, 1, 1)
        assert learn.bad_values == 1
        for t in src.audit.tables:  # every source row is accounted for exactly once
            left_out = (
                t.duplicate_rows + t.missing_ids + t.unparseable_dates + t.duplicate_keys + t.unknown_ids
            )
            assert t.rows == t.kept + left_out
        assert src.audit.users == 4 and src.audit.converted_users == 1
        assert src.data_end == date(2022, 4, 1) and src.audit.data_start == date(2022, 3, 1)
        assert any("learning" in n and "before registration" in n for n in src.audit.notes)

        frame = src.users_frame().set_index("user_id")
        assert frame.loc["u1", "country"] == "NA"  # Namibia, not missing
        assert frame["country"].isna()["u3"]
        assert frame.loc["u5", "registered"] == pd.Timestamp("2022-03-03")  # earliest of the repeated id
        assert frame.loc["u1", "first_upgrade"] == pd.Timestamp("2022-03-10")  # the renewal is ignored
        assert frame["first_upgrade"].isna()["u2"]
        assert str(frame["registered"].dtype) == "datetime64[ns]"

        events = src.con.execute("SELECT user_id, day, minutes, item FROM act_learning ORDER BY day").df()
        u3_days = events.loc[events["user_id"] == "u3", "day"].astype(str).tolist()
        assert u3_days == ["2022-03-06"]  # time of day truncated
        assert events["minutes"].isna().sum() == 1  # "abc" kept as a missing number
        before = src.con.execute("SELECT count(*) FROM act_learning WHERE user_id = 'u2'").fetchall()[0][0]
        assert before == 1  # the event before registration is kept with its own date


def test_builtin_layout_is_detected(tmp_path: Path) -> None:
    mapping = builtin_mapping()
    for table in mapping.tables():
        cols = {table.id, table.time}
        if isinstance(table, UsersTable):
            cols |= {a.column for a in table.attributes}
        else:
            cols |= set(table.key)
        if isinstance(table, ActivityTable):
            cols |= set(table.measures) | ({table.item} if table.item else set())
        one_row = {c: ["2022-01-02" if c == table.time else "1"] for c in sorted(cols)}
        pd.DataFrame(one_row).to_csv(tmp_path / table.file, index=False)
    assert resolve_mapping(tmp_path, None) == mapping
    with EventSource(tmp_path) as src:
        assert [a.name for a in src.mapping.activities] == [
            "learning", "engagement", "exams", "hub_questions", "ratings"
        ]  # fmt: skip
        assert src.audit.users == 1
    other = tmp_path / "other"
    other.mkdir()
    dirty_folder(other)
    with pytest.raises(InputError, match="mapping file"):
        resolve_mapping(other, None)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('file = "learning.csv"', 'file = "nope.csv"'), "nope.csv"),
        (('measures = ["minutes"]', 'measures = ["minutes_x"]'), "minutes_x"),
        (('item = "course"', 'item = "course"\nmesures = []'), "mesures"),
        (("[users]", "colour = 1\n[users]"), "colour"),
        (('name = "learning"', 'name = "learn-ing; drop table users"'), "letters, digits"),
        (('time = "day"\n', ""), "cannot be placed in time"),
        (('time = "day"', 'time = "answered_on"'), "cannot be placed in time"),
        (('attributes = ["country"]', 'attributes = {country = "colour"}'), "categorical"),
    ],
)
def test_mapping_errors_name_the_problem(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    assert edit[0] in MAPPING
    folder = dirty_folder(tmp_path, MAPPING.replace(*edit))
    with pytest.raises(InputError, match=message):
        EventSource(folder, folder / "mapping.toml")


def test_duplicate_activity_names_are_refused(tmp_path: Path) -> None:
    second = MAPPING[MAPPING.index("[[activity]]") :].replace('"learning"', '"Learning"')
    folder = dirty_folder(tmp_path, MAPPING + second)
    with pytest.raises(InputError, match="used twice"):
        load_mapping(folder / "mapping.toml")


def test_an_undated_table_is_refused_with_the_reason(tmp_path: Path) -> None:
    folder = dirty_folder(tmp_path)
    write(folder / "quizzes.csv", "user_id,quiz_id,answer_id\nu1,1,2\n")
    undated = MAPPING + '\n[[activity]]\nname = "quizzes"\nfile = "quizzes.csv"\nid = "user_id"\n'
    write(folder / "mapping.toml", undated)
    with pytest.raises(InputError, match="quizzes.*cannot be placed in time.*after any cutoff"):
        load_mapping(folder / "mapping.toml")


def test_parquet_parts_glob_and_quoting(tmp_path: Path) -> None:
    """Parquet parts in a folder, a glob, and names with quotes reach DuckDB safely."""
    folder = tmp_path / "it's here"
    (folder / "learn").mkdir(parents=True)
    pd.DataFrame({"id": [1, 2], 'sign"up': pd.to_datetime(["2022-01-01", "2022-01-03"])}).to_parquet(
        folder / "users.parquet"
    )
    # A float id column (pandas writes integer ids with gaps as floats) still matches the integer ids.
    buy = pd.DataFrame({"id": [1.0, np.nan], "at": pd.to_datetime(["2022-01-05 23:59", "2022-01-06 00:00"])})
    buy.to_parquet(folder / "buy-1.parquet")
    for part, day in enumerate(["2022-01-02", "2022-01-04"]):
        pd.DataFrame({"id": [1, 2], "at": pd.to_datetime([day] * 2), "n": [1.5, 2.0]}).to_parquet(
            folder / "learn" / f"part-{part}.parquet"
        )
    write(
        folder / "m.toml",
        """
        [users]
        file = "users.parquet"
        id = "id"
        time = 'sign"up'
        [conversions]
        file = "buy-*.parquet"
        id = "id"
        time = "at"
        [[activity]]
        name = "learn"
        file = "learn"
        id = "id"
        time = "at"
        measures = ["n"]
    """,
    )
    with EventSource(folder, folder / "m.toml") as src:
        learn = audit_of(src, "learn")
        assert (learn.rows, learn.kept, learn.before_registration) == (4, 4, 1)
        assert src.users_frame()["first_upgrade"].tolist()[0] == pd.Timestamp("2022-01-05")
        assert audit_of(src, "conversions").missing_ids == 1
        total = src.con.execute("SELECT sum(n) FROM act_learn").fetchall()[0][0]
        assert total == pytest.approx(7.0)


def test_gzipped_csv_reads_like_plain_csv(tmp_path: Path) -> None:
    plain = dirty_folder(tmp_path / "plain")
    packed = dirty_folder(tmp_path / "packed", MAPPING.replace('"learning.csv"', '"learning.csv.gz"'))
    with open(packed / "learning.csv", "rb") as src, gzip.open(packed / "learning.csv.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    (packed / "learning.csv").unlink()
    with EventSource(plain, plain / "mapping.toml") as a, EventSource(packed, packed / "mapping.toml") as b:
        assert audit_of(b, "learning").file == "learning.csv.gz"
        assert dataclasses.replace(audit_of(b, "learning"), file="learning.csv") == audit_of(a, "learning")


def test_the_temp_folder_goes_away_closed_or_not(tmp_path: Path) -> None:
    folder = dirty_folder(tmp_path)
    src = EventSource(folder, folder / "mapping.toml")
    spill = Path(src._tmp)
    assert spill.is_dir()
    src.close()
    src.close()  # closing twice is harmless
    assert not spill.exists()
    forgotten = EventSource(folder, folder / "mapping.toml")
    spill = Path(forgotten._tmp)
    del forgotten
    gc.collect()
    assert not spill.exists()


def test_mixed_formats_in_one_table_are_refused(tmp_path: Path) -> None:
    folder = dirty_folder(tmp_path)
    (folder / "parts").mkdir()
    write(folder / "parts" / "a.csv", "user_id,course,minutes,day\n")
    pd.DataFrame({"user_id": ["u1"]}).to_parquet(folder / "parts" / "b.parquet")
    write(folder / "mapping.toml", MAPPING.replace('file = "learning.csv"', 'file = "parts"'))
    with pytest.raises(InputError, match="one format"):
        EventSource(folder, folder / "mapping.toml")


@pytest.mark.slow
def test_real_folder_opens_with_the_builtin_mapping(real_events: Path) -> None:
    with EventSource(real_events) as src:
        assert src.mapping == builtin_mapping()
        assert src.data_end == date(2022, 8, 31)
        assert src.audit.users == 29_229 and src.audit.converted_users == 1_783
        assert audit_of(src, "engagement").before_registration == 1
        assert any("365_student_quizzes.csv" in n for n in src.audit.notes)
        frame = src.users_frame()
        assert (frame["student_country"] == "NA").sum() == 11
