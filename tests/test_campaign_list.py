"""The readout of a plain ranked list (no holdout): the forecast against what happened, per band, on
small event tables in the 365 layout; the scoring day read off tenure_days; and each refusal."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import synthetic_events
from upgrade_predictor.campaign.assign import assign
from upgrade_predictor.campaign.listfile import read_scored
from upgrade_predictor.campaign.listread import band_of, build_list
from upgrade_predictor.campaign.records import ListReadout, from_dict, to_dict
from upgrade_predictor.campaign.run import read_out
from upgrade_predictor.campaign.tracked import read_readout
from upgrade_predictor.errors import InputError

AS_OF = "2022-06-01"
HORIZON = 30  # the window: 2022-06-01 to 2022-06-30, inside tables that end 2022-08-31


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    return synthetic_events(tmp_path_factory.mktemp("events") / "tables", n_users=800, seed=7)


def free_users(tables: Path, day: str) -> pd.DataFrame:
    """The users registered by `day` who had not bought before it, with their registration day."""
    info = pd.read_csv(tables / "365_student_info.csv", dtype={"student_id": str})
    bought = pd.read_csv(tables / "365_student_purchases.csv", dtype={"student_id": str})
    first = bought.groupby("student_id")["date_purchased"].min()
    info = info.assign(first=info["student_id"].map(first))
    free = (info["date_registered"] <= day) & ~(info["first"] < day)
    return info[free].reset_index(drop=True)


def scored_list(tables: Path, path: Path, day: str = AS_OF, seed: int = 0) -> pd.DataFrame:
    """A list shaped like `score --events` output (row, user_id, tenure_days, probability, decision,
    rank), its probabilities drawn at random, written to `path`."""
    users = free_users(tables, day)
    rng = np.random.default_rng(seed)
    p = rng.beta(1.5, 6, len(users))
    order = np.argsort(-p, kind="stable")
    tenure = (pd.Timestamp(day) - pd.to_datetime(users["date_registered"])).dt.days
    frame = pd.DataFrame(
        {
            "row": order,
            "user_id": users["student_id"].to_numpy()[order],
            "tenure_days": tenure.to_numpy()[order].astype(str),
            "probability": p[order],
            "decision": (p[order] > 0.5).astype(int),
            "rank": np.arange(1, len(users) + 1),
        }
    )
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return frame.assign(first=users["first"].to_numpy()[order])


def upgraded_in_window(first: pd.Series, day: str = AS_OF, horizon: int = HORIZON) -> np.ndarray:
    end = (pd.Timestamp(day) + pd.Timedelta(days=horizon - 1)).strftime("%Y-%m-%d")
    return ((first >= day) & (first <= end)).to_numpy(dtype=bool)


def with_purchases(tables: Path, dest: Path, bought: dict[str, list[str]]) -> Path:
    """A copy of the tables with a purchase on each day of `bought` by each of its users."""
    dest.mkdir()
    for f in tables.iterdir():
        dest.joinpath(f.name).write_bytes(f.read_bytes())
    purchases = pd.read_csv(dest / "365_student_purchases.csv", dtype=str)
    extra = pd.DataFrame(
        [(f"9{i:05d}", u, "Annual", day) for i, (day, users) in enumerate(bought.items()) for u in users],
        columns=["purchase_id", "student_id", "purchase_type", "date_purchased"],
    )
    extra["purchase_id"] = [f"9{i:05d}" for i in range(len(extra))]
    pd.concat([purchases, extra]).to_csv(dest / "365_student_purchases.csv", index=False)
    return dest


def test_the_list_readout_is_the_forecast_against_the_upgrades_that_followed(tables, tmp_path):
    listed = scored_list(tables, tmp_path / "june.csv")
    picked = listed.loc[listed["first"].isna(), "user_id"].sample(60, random_state=4).tolist()
    # 40 upgrade inside the window, 12 after it closes, 8 the tables date before the as-of (late records)
    bought = {"2022-06-10": picked[:40], "2022-07-05": picked[40:52], "2022-05-20": picked[52:]}
    newer = with_purchases(tables, tmp_path / "newer", bought)
    first = listed["first"].copy()
    for day, users in bought.items():
        first[listed["user_id"].isin(users)] = day
    out = read_out(tmp_path / "june.csv", newer, tmp_path / "out", horizon=HORIZON)
    r = read_readout(out)
    assert isinstance(r, ListReadout) and r.holdout is False and "needs a holdout" in r.note
    assert (r.as_of, r.as_of_source, r.window_end) == (AS_OF, "tenure_days", "2022-06-30")
    assert r.horizon_closed and not r.interim and r.users == len(listed)
    hit = upgraded_in_window(first)
    assert r.actual_upgrades == hit.sum() == upgraded_in_window(listed["first"]).sum() + 40
    assert r.upgraded_before_as_of == 8
    assert r.expected_upgrades.value == pytest.approx(listed["probability"].sum())
    assert r.expected_upgrades.low < r.expected_upgrades.value < r.expected_upgrades.high
    assert r.actual_over_expected == pytest.approx(hit.sum() / listed["probability"].sum())
    band = 1 + (np.arange(len(listed)) * 5) // len(listed)
    for b in r.bands:
        inside = band == b.band
        assert b.users == inside.sum() and b.actual_upgrades == hit[inside].sum()
        assert b.precision == pytest.approx(hit[inside].mean())
        assert b.lift == pytest.approx(hit[inside].mean() / hit.mean())
        assert b.expected_upgrades == pytest.approx(listed["probability"][inside].sum())
        assert (b.first_rank, b.last_rank) == (
            listed["rank"][inside].min(),
            listed["rank"][inside].max(),
        )
    assert sum(b.users for b in r.bands) == r.users
    html = (out / "readout.html").read_text()
    assert "needs a holdout" in html and "<script" not in html and "http" not in html
    assert html.count("<img src='data:image/svg+xml;base64,") == 2


def test_a_parquet_list_an_as_of_given_and_an_interim_window(tables, tmp_path):
    scored_list(tables, tmp_path / "aug.parquet", day="2022-08-15")
    out = read_out(tmp_path / "aug.parquet", tables, tmp_path / "out", as_of="2022-08-15", horizon=HORIZON)
    r = read_readout(out)
    assert isinstance(r, ListReadout) and r.as_of_source == "--as-of"
    assert r.interim and r.days_open == (date(2022, 9, 13) - date(2022, 8, 31)).days


def test_the_scoring_day_of_the_list_must_agree_with_as_of(tables, tmp_path):
    scored_list(tables, tmp_path / "june.csv")
    with pytest.raises(
        InputError, match="tenure_days put the scoring day at 2022-06-01, not --as-of 2022-06-02"
    ):
        read_out(tmp_path / "june.csv", tables, tmp_path / "out", as_of="2022-06-02", horizon=HORIZON)
    frame = pd.read_csv(tmp_path / "june.csv").drop(columns="tenure_days")
    frame.to_csv(tmp_path / "bare.csv", index=False)
    with pytest.raises(InputError, match="give --as-of"):
        read_out(tmp_path / "bare.csv", tables, tmp_path / "out", horizon=HORIZON)
    assert read_readout(read_out(tmp_path / "bare.csv", tables, tmp_path / "out", as_of=AS_OF, horizon=30))
    assert not list(tmp_path.glob(".out.*"))


def refused(tmp_path: Path, source: Path, tables: Path, match: str, **kw) -> None:
    out = tmp_path / "refused"
    with pytest.raises(InputError, match=match):
        read_out(source, tables, out, **kw)
    assert not out.exists() and not list(tmp_path.glob(".refused*"))


def test_refusals_name_the_option_or_file_and_write_nothing(tables, tmp_path):
    listed = scored_list(tables, tmp_path / "june.csv")
    source = tmp_path / "june.csv"
    refused(tmp_path, source, tables, "--horizon is needed")
    refused(tmp_path, source, tables, "--horizon", horizon=0)
    listed.drop(columns=["rank", "first"]).to_csv(tmp_path / "norank.csv", index=False)
    refused(tmp_path, tmp_path / "norank.csv", tables, "no column 'rank'", horizon=30)
    twice = listed.drop(columns="first")
    twice.loc[1, "user_id"] = twice.loc[0, "user_id"]
    twice.to_csv(tmp_path / "twice.csv", index=False)
    refused(tmp_path, tmp_path / "twice.csv", tables, "listed more than once", horizon=30)
    stranger = listed.drop(columns="first")
    stranger.loc[3, "user_id"] = "999999999"
    stranger.to_csv(tmp_path / "stranger.csv", index=False)
    refused(tmp_path, tmp_path / "stranger.csv", tables, "1 of the list's .* users are not in the users table",
            horizon=30)  # fmt: skip
    (tmp_path / "notes.txt").write_text("user_id,probability,rank\n")
    refused(tmp_path, tmp_path / "notes.txt", tables, "ending in .csv", horizon=30)
    refused(tmp_path, tmp_path / "missing.csv", tables, "does not exist", horizon=30)


def test_tables_that_end_before_the_lists_day_are_refused(tables, tmp_path):
    scored_list(tables, tmp_path / "sept.csv", day="2022-09-15")  # the tables end on 2022-08-31
    refused(tmp_path, tmp_path / "sept.csv", tables, "end on 2022-08-31, before the list's as-of", horizon=30)


def test_a_plan_folder_refuses_the_options_of_a_list(tmp_path, tables):
    (tmp_path / "plan").mkdir()
    refused(tmp_path, tmp_path / "plan", tables, "--horizon is for a scored list", horizon=30)


def test_bands_are_quintiles_by_rank_and_the_record_is_strict(tmp_path):
    for n in (12, 37, 1000):  # the plan's bands: the same cut of the same ranks
        ids = np.array([f"u{i:04d}" for i in range(n)])
        planned = assign(ids, np.linspace(0.9, 0.1, n), holdout=0.5, min_arm=1)
        assert (band_of(n) == planned["band"].to_numpy()).all()
        assert np.ptp(np.bincount(band_of(n))[1:]) <= 1
    frame = pd.DataFrame({"user_id": ["b", "a", "c"] * 4, "probability": np.linspace(0.9, 0.1, 12),
                          "rank": np.arange(12, 0, -1)})  # fmt: skip
    frame["user_id"] = [f"u{i}" for i in range(12)]
    frame.to_csv(tmp_path / "l.csv", index=False)
    scored = read_scored(tmp_path / "l.csv")
    assert list(scored.users["rank"]) == list(range(1, 13))  # read back in rank order
    first = pd.Series(pd.to_datetime(["2022-06-03"] * 2 + [None] * 10))
    r = build_list(scored, "0" * 64, first, (date(2022, 6, 1), "--as-of"), 30, date(2022, 8, 1))
    assert r.bands[0].actual_upgrades == 2 and r.bands[0].lift == pytest.approx((2 / 3) / (2 / 12))
    assert from_dict(ListReadout, json.loads(json.dumps(to_dict(r))), "x") == r
    bad = to_dict(r)
    bad["bands"][0]["precison"] = bad["bands"][0].pop("precision")
    with pytest.raises(InputError, match=r"bands\[0\]: unknown key `precison`"):
        from_dict(ListReadout, bad, "readout.json")


def test_the_folder_of_parts_of_score_dask_reads_out_as_its_one_file(tables, tmp_path):
    frame = scored_list(tables, tmp_path / "june.parquet").drop(columns="first")
    parts = tmp_path / "many" / "scored"  # as `score --events --dask` writes them: global ranks, name order
    parts.mkdir(parents=True)
    for i, chunk in enumerate(np.array_split(frame.index.to_numpy(), 3)):
        frame.loc[chunk].to_parquet(parts / f"part-{i:05d}.parquet", index=False)
    one = read_scored(tmp_path / "june.parquet").users
    for given in (tmp_path / "many", parts):
        pd.testing.assert_frame_equal(read_scored(given).users, one)
    a = read_readout(read_out(tmp_path / "june.parquet", tables, tmp_path / "a", horizon=HORIZON))
    b = read_readout(read_out(tmp_path / "many", tables, tmp_path / "b", horizon=HORIZON))
    skip = {"scored_file": None, "scored_sha256": None}
    assert isinstance(b, ListReadout) and to_dict(b) | skip == to_dict(a) | skip
    assert b.scored_file == str(tmp_path / "many") and len(b.scored_sha256) == 64
    (parts / "part-00001.parquet").unlink()  # a part lost: its ranks are missing, not silently renumbered
    with pytest.raises(InputError, match="rank"):
        read_scored(tmp_path / "many")
