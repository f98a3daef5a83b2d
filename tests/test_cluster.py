import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import synthetic_frame
from upgrade_predictor.api import TrainConfig, train

pytest.importorskip("distributed")


def test_training_on_a_local_cluster_repeats_the_local_run(tmp_path):
    synthetic_frame(500).to_csv(tmp_path / "d.csv", index=False)
    runs = {}
    for name, dask in (("local", None), ("dask", "local")):
        cfg = TrainConfig(
            data=tmp_path / "d.csv",
            out=tmp_path / name,
            budget="quick",
            report=False,
            families=["logreg", "gbm"],
            strategies=["none", "oversample"],
            dask=dask,
        )
        runs[name] = train(cfg).dir
    a, b = (pd.read_csv(runs[n] / "leaderboard.csv") for n in ("local", "dask"))
    assert a["key"].tolist() == b["key"].tolist()
    pd.testing.assert_series_equal(a["pr_auc_mean"], b["pr_auc_mean"])
    ma, mb = (json.loads((runs[n] / "metrics.json").read_text()) for n in ("local", "dask"))
    assert ma["chosen"] == mb["chosen"] and ma["test"] == mb["test"]


def test_without_dask_flag_training_needs_no_dask(tmp_path):
    """Dask is optional: with it made unimportable, a plain run still works and never asks for it."""
    synthetic_frame(300).to_csv(tmp_path / "d.csv", index=False)
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('dask', 'distributed', 'optuna_integration'):\n"
        "            raise ImportError(f'blocked {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from upgrade_predictor.api import TrainConfig, train\n"
        f"train(TrainConfig(data={str(tmp_path / 'd.csv')!r}, out={str(tmp_path / 'r')!r}, budget='quick',"
        " report=False, families=['tree', 'gbm'], strategies=['none']))\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "r" / "model.zip").exists()


def _events_run(folder, out, dask):
    cfg = TrainConfig(
        events=folder,
        out=out,
        budget="quick",
        report=False,
        families=["logreg", "gbm"],
        strategies=["none"],
        horizon=14,
        dask=dask,
    )
    return train(cfg).dir


@pytest.mark.slow
def test_an_events_run_on_a_cluster_ends_and_repeats_the_local_run(tmp_path):
    """The backtest's fits share this process's frames and progress bar: under --dask they stay in local
    threads (sent to the cluster they could not be serialized, and joblib waited for them forever)."""
    from concurrent.futures import ThreadPoolExecutor

    from conftest import synthetic_events

    folder = synthetic_events(tmp_path / "tables", n_users=500, seed=4)
    runs = {}
    with ThreadPoolExecutor(1) as pool:  # a hang fails the test instead of stopping the suite
        for name, dask in (("local", None), ("dask", "local")):
            runs[name] = pool.submit(_events_run, folder, tmp_path / name, dask).result(timeout=300)
    a, b = (json.loads((runs[n] / "metrics.json").read_text()) for n in ("local", "dask"))
    assert a["chosen"] == b["chosen"]
    # The same fits on other threads: sums in another order, equal to far below any reported digit.
    assert b["test"] == pytest.approx(a["test"], rel=1e-4, abs=1e-9)
    assert (runs["dask"] / "model.zip").exists()


def test_an_unreachable_scheduler_is_one_sentence(monkeypatch):
    from upgrade_predictor import parallel
    from upgrade_predictor.errors import InputError

    monkeypatch.setattr(parallel, "CONNECT_SECONDS", 1)
    with pytest.raises(InputError, match=r"^--dask tcp://127.0.0.1:9: no Dask scheduler answered"):
        with parallel.connect("tcp://127.0.0.1:9"):
            pass


@pytest.mark.slow
def test_a_cluster_that_loses_its_workers_ends_the_wait_in_one_sentence(monkeypatch):
    import time

    import distributed

    from upgrade_predictor import parallel
    from upgrade_predictor.errors import InputError

    monkeypatch.setattr(parallel, "WATCH_EVERY", 0.2)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as lc:  # fmt: skip
        started = time.perf_counter()
        with pytest.raises(InputError, match="the cluster has no worker left for 1 seconds; nothing was"):
            with parallel.connect(lc.scheduler_address, lost_after=1) as client:
                future = client.submit(time.sleep, 600)
                lc.scale(0)
                future.result()  # would wait forever: no worker will ever run it
        assert time.perf_counter() - started < 60
