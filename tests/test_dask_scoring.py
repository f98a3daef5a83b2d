"""Scoring on a Dask cluster: the same rows, probabilities, ranks and rejects as the single-machine path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_bundle, users_frame
from upgrade_predictor.errors import InputError
from upgrade_predictor.scoring import cluster
from upgrade_predictor.scoring.batch import default_rejects_path, score_file
from upgrade_predictor.scoring.scorer import Scorer

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as lc,
        distributed.Client(lc) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bundles")
    return {
        "gbm": make_bundle(d),
        "cal": make_bundle(d, strategy="smote", calibrate=True),
        "id": make_bundle(d / "id", id_column="user_id"),
    }


def users(n: int, seed: int = 11) -> pd.DataFrame:
    return users_frame(n, seed=seed, ids="user_id")


def with_bad_rows(df: pd.DataFrame) -> pd.DataFrame:
    df = df.astype({"minutes_watched": object, "courses_started": object, "student_country": object})
    df.loc[3, "minutes_watched"] = "abc"
    df.loc[700, "days_on_platform"] = -3
    df.loc[1500, "courses_started"] = None
    df.loc[2222, "student_country"] = None
    df.loc[2900, "minutes_watched"] = "inf"
    return df


def single(bundle: Path, data: Path, out: Path, **kw) -> tuple[pd.DataFrame, pd.DataFrame]:
    score_file(Scorer.load(bundle), data, out, **kw)
    rej = pd.read_csv(default_rejects_path(out), keep_default_na=False, dtype=str)
    return pd.read_parquet(out), rej


def on_dask(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    parts = sorted((out / cluster.SCORED_DIR).glob("part-*.parquet"))
    scored = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    rej = pd.read_parquet(out / cluster.REJECTS_DIR)
    cells = [c for c in rej.columns if c != "row"]
    rej[cells] = rej[cells].astype(object).fillna("")  # the CSV rejects file writes a missing cell as ""
    return scored, rej


def assert_same_list(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for col in a.columns:
        if col == "probability":
            np.testing.assert_allclose(b[col].to_numpy(), a[col].to_numpy(), rtol=0, atol=1e-9)
        else:
            assert (a[col].astype(str).to_numpy() == b[col].astype(str).to_numpy()).all(), col


def assert_same_rejects(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert b["row"].is_monotonic_increasing  # partitions in file order
    pd.testing.assert_frame_equal(a.astype(str), b.astype(str), check_dtype=False)


@pytest.mark.parametrize("kind", ["gbm", "cal"])
def test_csv_on_dask_equals_single_machine_row_for_row(kind, bundles, client, tmp_path):
    df = with_bad_rows(users(3000)).drop(columns="user_id")
    df.loc[10:40, "student_country"] = "NA"  # Namibia, not a missing cell
    df.to_csv(tmp_path / "u.csv", index=False)
    ref, ref_rej = single(bundles[kind], tmp_path / "u.csv", tmp_path / "single.parquet")
    res = cluster.score_dataset(
        bundles[kind], tmp_path / "u.csv", tmp_path / "out", client=client, blocksize=10_000
    )
    assert res.partitions >= 4  # several partitions, scored on both workers
    assert (res.rows, res.accepted, res.rejected, res.written) == (3000, 2995, 5, 2995)
    got, got_rej = on_dask(tmp_path / "out")
    assert_same_list(ref, got)
    assert got["rank"].tolist() == list(range(1, 2996))
    assert set(got.loc[got["row"].between(10, 40), "row"]) == set(range(10, 41))
    assert_same_rejects(ref_rej, got_rej)
    assert sorted(got_rej["reason"]) == sorted(
        [
            "minutes_watched is not a number",
            "days_on_platform is negative",
            "courses_started is missing",
            "student_country is missing",
            "minutes_watched is infinite",
        ]
    )
    assert res.reject_reasons["days_on_platform is negative"] == 1


def test_parquet_parts_with_ids_equal_single_machine_on_the_whole_file(bundles, client, tmp_path):
    df = with_bad_rows(users(3000))
    df = df.astype({c: str for c in ("minutes_watched", "courses_started")})  # text cells, as a lake may hold
    df.loc[df["courses_started"] == "None", "courses_started"] = None
    df.to_parquet(tmp_path / "all.parquet", index=False)
    (tmp_path / "lake").mkdir()
    for i, s in enumerate(range(0, 3000, 700)):  # five files; name order is row order
        df.iloc[s : s + 700].to_parquet(tmp_path / "lake" / f"users-{i}.parquet", index=False)
    ref, ref_rej = single(bundles["id"], tmp_path / "all.parquet", tmp_path / "single.parquet")
    res = cluster.score_dataset(
        bundles["id"], str(tmp_path / "lake" / "*.parquet"), tmp_path / "out", client=client
    )
    assert res.partitions == 5
    got, got_rej = on_dask(tmp_path / "out")
    assert list(got.columns) == ["row", "user_id", "probability", "decision", "rank"]
    assert_same_list(ref, got)
    assert (got["user_id"] == "id" + got["row"].map("{:05d}".format)).all()
    assert_same_rejects(ref_rej, got_rej)


@pytest.mark.parametrize("merged", [True, False])
def test_top_and_budget_across_partitions(merged, bundles, client, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "MERGE_FAN_IN", 2)  # a tree of merges several levels deep
    if not merged:  # a list too long to merge from per-partition tops: cut from the global sort
        monkeypatch.setattr(cluster, "TOP_BY_MERGE", 10)
    df = users(2500).drop(columns="user_id")
    df.loc[::7, ["minutes_watched", "practice_exams_passed"]] = 0.0  # many ties across partitions
    df.to_csv(tmp_path / "u.csv", index=False)
    for kw, name in (({"top": 537}, "top"), ({"budget": 99.0, "offer_cost": 5.0}, "budget")):
        ref, _ = single(bundles["gbm"], tmp_path / "u.csv", tmp_path / f"{name}.parquet", **kw)
        res = cluster.score_dataset(
            bundles["gbm"], tmp_path / "u.csv", tmp_path / name, client=client, blocksize=8_000, **kw
        )
        assert res.partitions >= 4 and res.written == len(ref) == {"top": 537, "budget": 19}[name]
        assert_same_list(ref, on_dask(tmp_path / name)[0])
    with pytest.raises(InputError, match="not both"):
        cluster.score_dataset(
            bundles["gbm"], tmp_path / "u.csv", tmp_path / "x", client=client, top=3, budget=9
        )


class KillOnce(distributed.WorkerPlugin):
    """Kill the first worker to start its `after`-th scoring task (as a crash would: SIGKILL).

    Which worker gets how many tasks is the scheduler's choice, so the victim is not named in advance:
    every worker counts its own tasks, and the first to reach `after` creates `marker` exclusively
    (so exactly one dies), writes its pid and address there, and kills itself."""

    def __init__(self, marker: str, after: int):
        self.marker, self.after, self.started = marker, after, 0

    def setup(self, worker):
        self.worker = worker

    def transition(self, key, start, finish, **kwargs):
        name = key[0] if isinstance(key, tuple) else key
        if finish == "executing" and str(name).startswith("score_partition"):
            self.started += 1
            if self.started == self.after:
                try:
                    fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    return
                os.write(fd, f"{os.getpid()} {self.worker.address}".encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)


def _gone(pid: int, seconds: float = 15.0) -> bool:
    """Whether the process has ended (and been reaped by its nanny) within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_a_worker_killed_mid_run_loses_and_duplicates_no_row(bundles, tmp_path):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the test module
    df = with_bad_rows(users(4000)).drop(columns="user_id")
    df.to_csv(tmp_path / "u.csv", index=False)
    ref, ref_rej = single(bundles["gbm"], tmp_path / "u.csv", tmp_path / "single.parquet")
    marker = tmp_path / "killed"
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as lc,
        distributed.Client(lc) as c,
    ):
        c.register_plugin(KillOnce(str(marker), after=3))
        res = cluster.score_dataset(
            bundles["gbm"], tmp_path / "u.csv", tmp_path / "out", client=c, blocksize=5_000
        )
        pid, victim = marker.read_text().split()  # some worker ran 3 of the 8 or more partitions
        assert _gone(int(pid))  # the victim really died
        assert victim not in c.scheduler_info()["workers"]
    assert res.partitions >= 8
    got, got_rej = on_dask(tmp_path / "out")
    assert got["row"].is_unique and len(got) + len(got_rej) == 4000
    assert_same_list(ref, got)
    assert_same_rejects(ref_rej, got_rej)
    leftovers = [p.name for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]
    assert leftovers == []  # no temp file of the killed writer


def test_bad_input_is_an_input_error_and_leaves_no_output(bundles, client, tmp_path):
    users(50).drop(columns=["user_id", "minutes_watched"]).to_csv(tmp_path / "u.csv", index=False)
    with pytest.raises(InputError, match="minutes_watched"):
        cluster.score_dataset(bundles["gbm"], tmp_path / "u.csv", tmp_path / "out", client=client)
    with pytest.raises(InputError, match="no file matches"):
        cluster.score_dataset(
            bundles["gbm"], str(tmp_path / "nope*.parquet"), tmp_path / "out", client=client
        )
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    users(50).to_csv(tmp_path / "ok.csv", index=False)
    with pytest.raises(InputError, match="not an earlier scoring output"):
        cluster.score_dataset(bundles["gbm"], tmp_path / "ok.csv", tmp_path / "mine", client=client)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "ok.csv", "u.csv"]


def test_a_failure_mid_run_keeps_the_earlier_output(bundles, client, tmp_path):
    users(400).to_csv(tmp_path / "u.csv", index=False)
    first = cluster.score_dataset(bundles["gbm"], tmp_path / "u.csv", tmp_path / "out", client=client)
    before = sorted(p.name for p in (tmp_path / "out").rglob("*"))
    (tmp_path / "u.csv").write_text(
        (tmp_path / "u.csv").read_text().replace("US,", "US,x", 1).replace("\n", '\n"broken', 1)
    )  # unbalanced quote: unreadable CSV
    with pytest.raises(InputError, match="u.csv: cannot be read as CSV"):
        cluster.score_dataset(bundles["gbm"], tmp_path / "u.csv", tmp_path / "out", client=client)
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == before
    assert len(pd.read_parquet(tmp_path / "out" / cluster.SCORED_DIR)) == first.written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "u.csv"]  # no temp folder left


def test_scoring_without_dask_imports_no_dask(bundles, tmp_path):
    users(100).drop(columns="user_id").to_csv(tmp_path / "u.csv", index=False)
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('dask', 'distributed'):\n"
        "            raise ImportError(f'blocked {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from upgrade_predictor.scoring.batch import score_file\nfrom upgrade_predictor.scoring.scorer import Scorer\n"
        f"score_file(Scorer.load({str(bundles['gbm'])!r}), {str(tmp_path / 'u.csv')!r},"
        f" {str(tmp_path / 'o.csv')!r})\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(pd.read_csv(tmp_path / "o.csv")) == 100


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_folders_and_globs_score_alike_with_and_without_dask(fmt, bundles, client, tmp_path):
    """The same parts, as a folder and as a glob, with --id on a bundle trained without one: the
    single-machine and the Dask outputs agree row for row, ids and duplicate counts included."""
    df = with_bad_rows(users(3000))
    df.loc[[100, 2500], "user_id"] = "id00042"  # two repeats of one id, in other parts
    (tmp_path / "lake").mkdir()
    for i, s in enumerate(range(0, 3000, 700)):
        part = df.iloc[s : s + 700]
        if fmt == "parquet":
            part.astype({c: str for c in ("minutes_watched", "courses_started")}).replace(
                "None", None
            ).to_parquet(tmp_path / "lake" / f"users-{i}.parquet", index=False)
        else:
            part.to_csv(tmp_path / "lake" / f"users-{i}.csv", index=False)
    whole_ref, _ = single(
        bundles["gbm"], _whole(df, tmp_path), tmp_path / "whole.parquet", id_column="user_id"
    )
    for data, name in ((tmp_path / "lake", "folder"), (str(tmp_path / "lake" / f"users-*.{fmt}"), "glob")):
        res_single = score_file(
            Scorer.load(bundles["gbm"]), data, tmp_path / f"{name}.parquet", id_column="user_id"
        )
        ref = pd.read_parquet(tmp_path / f"{name}.parquet")
        ref_rej = pd.read_csv(
            default_rejects_path(tmp_path / f"{name}.parquet"), keep_default_na=False, dtype=str
        )
        res = cluster.score_dataset(
            bundles["gbm"], data, tmp_path / f"out-{name}", client=client, id_column="user_id"
        )
        assert res.partitions == 5 and res.files == res_single.files == 5
        got, got_rej = on_dask(tmp_path / f"out-{name}")
        assert list(got.columns) == ["row", "user_id", "probability", "decision", "rank"]
        assert_same_list(ref, got)
        assert_same_list(whole_ref, got)  # parts numbered as the whole file's rows
        assert_same_rejects(ref_rej, got_rej)
        assert list(got_rej.columns[:2]) == ["row", "user_id"]
        assert res.duplicate_ids == res_single.duplicate_ids == 2
        assert (res.rows, res.rejected) == (res_single.rows, res_single.rejected) == (3000, 5)


def _whole(df: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "whole.csv"
    df.to_csv(path, index=False)
    return path


def test_carried_columns_and_an_id_named_like_a_staging_column(bundles, client, tmp_path):
    df = users(1200).rename(columns={"user_id": "part"})
    df["p"] = np.arange(1200) % 7  # carried; named like the probability the cluster stages
    df.loc[9, "minutes_watched"] = -1.0
    df.to_csv(tmp_path / "u.csv", index=False)
    kw = {"id_column": "part", "carry": ["p"]}
    ref, ref_rej = single(bundles["gbm"], tmp_path / "u.csv", tmp_path / "single.parquet", **kw)
    cluster.score_dataset(
        bundles["gbm"], tmp_path / "u.csv", tmp_path / "out", client=client, blocksize=8_000, **kw
    )
    got, got_rej = on_dask(tmp_path / "out")
    assert list(got.columns) == ["row", "part", "p", "probability", "decision", "rank"]
    assert_same_list(ref, got)
    assert_same_rejects(ref_rej, got_rej)
