"""Point-in-time features: hand-computed values, row order, and that nothing on/after a cutoff counts."""

from __future__ import annotations

import math
import shutil
import textwrap
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SMALL_MAPPING
from upgrade_predictor import config
from upgrade_predictor.errors import InputError
from upgrade_predictor.forecast.features import (
    feature_names,
    features_as_of,
    features_as_of_chunks,
    point_in_time_features,
)
from upgrade_predictor.sources.events import EventSource

MAPPING = (
    SMALL_MAPPING
    + """
[[activity]]
name = "hub"
file = "hub.csv"
id = "user_id"
time = "day"
"""
)

TABLES = {
    "users.csv": """
        user_id,country,signup
        u1,NA,2022-03-01
        u2,US,2022-03-05
        u3,DE,2022-03-08
    """,
    "purchases.csv": """
        user_id,paid_on
        u2,2022-03-10
        u3,2022-03-09
    """,
    "learning.csv": """
        user_id,course,minutes,day
        u1,c1,10,2022-03-01
        u1,c2,5,2022-03-01
        u1,c1,4,2022-03-02
        u1,c1,20,2022-03-03
        u1,c2,6,2022-03-09
        u1,c1,7,2022-03-10
        u2,c1,3,2022-03-04
        u2,c1,8,2022-03-05
    """,
    "hub.csv": """
        user_id,question,day
        u1,q1,2022-03-09
        u1,q2,2022-03-09
        u2,q3,2022-03-11
    """,
}
CUTOFF = pd.Timestamp("2022-03-10")


def make_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in TABLES.items():
        (root / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    (root / "mapping.toml").write_text(MAPPING, encoding="utf-8")
    return root


@pytest.fixture
def source(tmp_path: Path):
    folder = make_folder(tmp_path / "events")
    with EventSource(folder, folder / "mapping.toml") as src:
        yield src


def rows(*pairs: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [u for u, _ in pairs], "cutoff": pd.to_datetime([c for _, c in pairs])})


def test_hand_computed_values(source: EventSource) -> None:
    f = point_in_time_features(source, rows(("u1", "2022-03-10"), ("u2", "2022-03-10"), ("u3", "2022-03-10")))
    u1, u2, u3 = (f.iloc[i] for i in range(3))
    # u1: events on 03-01 (x2), 03-02, 03-03, 03-09; the 03-10 event is on the cutoff day and does not count.
    assert u1["learning_events"] == 5 and u1["learning_minutes_sum"] == 45
    assert u1["learning_active_days"] == 4 and u1["learning_items"] == 2
    assert u1["learning_days_since_last"] == 1
    assert (u1["learning_events_last1d"], u1["learning_minutes_last1d"]) == (1, 6)
    # The 7-day window is [03-03, 03-10): 03-03 is inside, 03-02 is not.
    assert (u1["learning_events_last7d"], u1["learning_minutes_last7d"]) == (2, 26)
    assert (u1["learning_events_last28d"], u1["learning_minutes_last28d"]) == (5, 45)
    assert (u1["learning_first_day_events"], u1["learning_first_day_minutes"]) == (2, 15)
    assert u1["learning_trend"] == pytest.approx(2 - 3 * 7 / 21)
    assert (u1["hub_events"], u1["hub_active_days"], u1["hub_events_last1d"], u1["hub_trend"]) == (2, 1, 2, 2)
    assert u1["tenure_days"] == 9 and u1["registered_weekday"] == 1  # 2022-03-01 was a Tuesday
    assert u1["country"] == "NA"
    # u2: the 03-04 event predates registration: it counts, but not as registration-day activity.
    assert (u2["learning_events"], u2["learning_minutes_sum"], u2["learning_days_since_last"]) == (2, 11, 5)
    assert (u2["learning_first_day_events"], u2["learning_first_day_minutes"]) == (1, 8)
    assert math.isnan(u2["hub_days_since_last"]) and u2["hub_events"] == 0  # the 03-11 question is later
    assert math.isnan(u3["learning_days_since_last"]) and u3["learning_events"] == 0


def test_registration_day_activity_waits_for_the_cutoff(source: EventSource) -> None:
    f = point_in_time_features(source, rows(("u1", "2022-03-01"), ("u1", "2022-03-02")))
    assert f["tenure_days"].tolist() == [0, 1]
    assert f["learning_first_day_events"].tolist() == [0, 2]
    assert f["learning_events"].tolist() == [0, 2]


def test_same_rows_same_order_and_types(source: EventSource) -> None:
    pairs = [("u2", "2022-03-10"), ("u1", "2022-03-05"), ("u2", "2022-03-10"), ("u1", "2022-03-02")]
    f = point_in_time_features(source, rows(*pairs))
    assert list(zip(f["user_id"], f["cutoff"].dt.strftime("%Y-%m-%d"))) == pairs
    assert f.iloc[0].drop(["user_id", "cutoff"]).equals(f.iloc[2].drop(["user_id", "cutoff"]))
    numeric = f.drop(columns=["user_id", "cutoff", "country"])
    assert (numeric.dtypes == np.float32).all()
    assert str(f["cutoff"].dtype) == "datetime64[ns]"
    assert list(f.columns[2:]) == feature_names(source)
    assert (
        numeric.drop(columns=[c for c in numeric if str(c).endswith("days_since_last")]).notna().all().all()
    )


def test_windows_are_configurable(source: EventSource) -> None:
    f = point_in_time_features(source, rows(("u1", "2022-03-10")), windows=(2, 9))
    assert f["learning_events_last2d"].item() == 1 and f["learning_events_last9d"].item() == 5
    assert "learning_events_last7d" not in f
    with pytest.raises(InputError, match="windows"):
        point_in_time_features(source, rows(("u1", "2022-03-10")), windows=(0,))


def test_features_as_of_keeps_the_free_users(source: EventSource) -> None:
    f = features_as_of(source, CUTOFF.date())
    # u3 converted the day before: not free. u2 converts ON the cutoff day: still free (label side).
    assert f["user_id"].tolist() == ["u1", "u2"]
    same = point_in_time_features(source, f[["user_id", "cutoff"]])
    pd.testing.assert_frame_equal(f, same)
    assert features_as_of(source, date(2022, 3, 4))["user_id"].tolist() == ["u1"]


def test_chunks_give_the_same_rows_as_one_frame(source: EventSource, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = features_as_of(source, CUTOFF.date())
    parts = list(features_as_of_chunks(source, CUTOFF.date(), size=1))
    assert [len(p) for p in parts] == [1] * len(whole)
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)
    pairs = [("u2", "2022-03-10"), ("u1", "2022-03-05"), ("u3", "2022-03-09"), ("u1", "2022-03-02")]
    one = point_in_time_features(source, rows(*pairs))
    monkeypatch.setattr(config, "FEATURE_CHUNK_ROWS", 3)
    pd.testing.assert_frame_equal(point_in_time_features(source, rows(*pairs)), one)


def test_bad_rows_are_refused(source: EventSource) -> None:
    with pytest.raises(InputError, match="not in the users table.*zz"):
        point_in_time_features(source, rows(("u1", "2022-03-10"), ("zz", "2022-03-10")))
    with pytest.raises(InputError, match="data ends"):
        features_as_of(source, date(2022, 3, 13))
    with pytest.raises(InputError, match="cutoff"):
        point_in_time_features(source, pd.DataFrame({"user_id": ["u1"]}))
    empty = point_in_time_features(source, rows())
    assert len(empty) == 0 and "learning_events" in empty


def test_parquet_copy_gives_the_same_features(tmp_path: Path, source: EventSource) -> None:
    folder = make_folder(tmp_path / "pq")
    for name in TABLES:
        table = pd.read_csv(folder / name, keep_default_na=False, na_values=[""])
        for col in ("signup", "paid_on", "day"):
            if col in table:
                table[col] = pd.to_datetime(table[col])
        table.to_parquet(folder / name.replace(".csv", ".parquet"))
        (folder / name).unlink()
    (folder / "mapping.toml").write_text(MAPPING.replace(".csv", ".parquet"), encoding="utf-8")
    r = rows(("u1", "2022-03-10"), ("u2", "2022-03-07"), ("u3", "2022-03-09"))
    with EventSource(folder, folder / "mapping.toml") as pq:
        pd.testing.assert_frame_equal(point_in_time_features(pq, r), point_in_time_features(source, r))


def test_events_on_or_after_the_cutoff_change_nothing(tmp_path: Path, source: EventSource) -> None:
    """The point-in-time property: a copy with extra later events gives identical features."""
    r = rows(("u1", "2022-03-10"), ("u2", "2022-03-10"), ("u3", "2022-03-09"), ("u1", "2022-03-03"))
    later = make_folder(tmp_path / "later")
    extra = {
        "learning.csv": [
            "u1,c9,99,2022-03-10",
            "u2,c9,50,2022-03-10",
            "u3,c9,1,2022-03-09",
            "u1,c8,3,2022-04-30",
        ],
        "hub.csv": ["u1,q7,2022-03-10", "u3,q8,2022-03-09", "u2,q9,2022-05-01"],
        "purchases.csv": ["u1,2022-03-10"],
        "users.csv": ["u4,FR,2022-03-20"],
    }
    for name, lines in extra.items():
        with open(later / name, "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    with EventSource(later, later / "mapping.toml") as more:
        assert more.data_end > source.data_end
        before, after = point_in_time_features(source, r), point_in_time_features(more, r)
        pd.testing.assert_frame_equal(before, after)
        # u1's new conversion is dated on the cutoff: u1 stays in the free population of that day.
        pd.testing.assert_frame_equal(
            features_as_of(source, CUTOFF.date()), features_as_of(more, CUTOFF.date())
        )


@pytest.mark.slow
def test_real_features_ignore_everything_from_the_cutoff_on(tmp_path: Path, real_events: Path) -> None:
    folder, as_of = real_events, date(2022, 7, 1)
    cut = tmp_path / "cut"
    cut.mkdir()
    with EventSource(folder) as src:
        tables = src.mapping.tables()
        full = features_as_of(src, as_of)
        registered_on_cutoff = set(src.users_frame().query("registered == @as_of")["user_id"])
    removed = 0
    for table in tables:
        frame = pd.read_csv(folder / table.file, keep_default_na=False, na_values=[""], dtype=str)
        keep = pd.to_datetime(frame[table.time]) < pd.Timestamp(as_of)
        removed += int((~keep).sum())
        frame[keep].to_csv(cut / table.file, index=False)
    assert removed > 10_000
    shutil.copy(folder / "365_student_quizzes.csv", cut)  # present but unused, as in the real folder
    with EventSource(cut) as early:
        assert early.data_end == date(2022, 6, 30)
        part = features_as_of(early, as_of)
    # Users who register on the cutoff day itself are rows of the full data only (their row is dated then).
    assert set(full["user_id"]) - set(part["user_id"]) == registered_on_cutoff
    kept = full[~full["user_id"].isin(registered_on_cutoff)].reset_index(drop=True)
    assert len(kept) == len(part) > 15_000
    pd.testing.assert_frame_equal(kept, part)
