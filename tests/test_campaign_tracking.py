"""A campaign readout logged to a real local MLflow store: a plan's readout with its effect, bounds,
profit and sample-ratio p-value, and a plain list's with its forecast check."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import run_cli, synthetic_events
from test_campaign_balance import drawn, readout_of
from test_campaign_list import scored_list
from upgrade_predictor.campaign.records import READOUT_FILE, to_dict
from upgrade_predictor.campaign.run import read_out
from upgrade_predictor.campaign.tracked import EXPERIMENT
from upgrade_predictor.cli.campaign import log_readout

pytestmark = pytest.mark.slow  # an MLflow store takes seconds to create


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("store") / "mlruns"


def client_of(folder: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")


def test_a_plans_readout_is_logged_with_its_effect_profit_and_srm(store, tmp_path):
    folder = tmp_path / "july-readout"
    folder.mkdir()
    r = readout_of(drawn())
    (folder / READOUT_FILE).write_text(json.dumps(to_dict(r)))
    (folder / "readout.html").write_text("<p>page</p>")
    run_id = log_readout(folder, str(store))
    client = client_of(store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "july-readout"
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    m, p = run.data.metrics, run.data.params
    d = r.effect.difference
    assert (m["effect_difference"], m["effect_difference_low"], m["effect_difference_high"]) == (
        d.value, d.low, d.high,
    )  # fmt: skip
    assert m["effect_adjusted_high"] == r.effect.adjusted.high
    assert m["incremental_profit"] == r.profit.incremental.value and m["srm_p_value"] == r.srm.p_value
    assert p["as_of"] == r.as_of and p["horizon"] == str(r.horizon) and p["holdout"] == "true"
    assert float(p["holdout_share"]) == r.srm.expected_holdout_share
    assert float(p["offer_cost"]) == r.profit.economics["offer_cost"] and "discount" in p
    assert run.data.tags["kind"] == "campaign_readout"
    assert {a.path for a in client.list_artifacts(run_id)} == {"readout.json", "readout.html"}


def test_a_lists_readout_is_logged_and_undefined_scores_are_skipped(store, tmp_path):
    tables = synthetic_events(tmp_path / "tables", n_users=300, seed=1)
    listed = scored_list(tables, tmp_path / "all.csv", day="2022-06-01")
    never = listed[listed["first"].isna()].drop(columns="first")  # users who never upgrade
    never.assign(rank=range(1, len(never) + 1)).to_csv(tmp_path / "june.csv", index=False)
    out = read_out(tmp_path / "june.csv", tables, tmp_path / "june-readout", horizon=30)
    run = client_of(store).get_run(log_readout(out, str(store)))
    m, p = run.data.metrics, run.data.params
    assert m["actual_upgrades"] == 0 and m["expected_upgrades"] == pytest.approx(never["probability"].sum())
    assert m["band_1_precision"] == 0
    assert p["holdout"] == "false" and p["as_of"] == "2022-06-01" and p["horizon"] == "30"
    assert run.data.tags["kind"] == "list_readout"
    # Nobody upgraded: the AUC is undefined, so it is not logged, and the tag says so.
    assert "roc_auc" not in m and "roc_auc" in run.data.tags["skipped_metrics"]
    assert all(math.isfinite(v) for v in m.values())
    assert date.fromisoformat(p["window_end"]) == date(2022, 6, 30)


def test_a_tracking_uri_without_mlflow_is_refused(tmp_path):
    done = run_cli("campaign", "readout", str(tmp_path / "plan"), "--events", str(tmp_path), "--out",
                   str(tmp_path / "out"), "--tracking-uri", str(tmp_path / "store"))  # fmt: skip
    assert done.returncode == 2 and "--tracking-uri is for --mlflow" in done.stderr
    assert not (tmp_path / "out").exists()
