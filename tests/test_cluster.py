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
