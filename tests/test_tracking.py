"""MLflow tracking: a real run folder logged to a real local MLflow store, and read back."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import run_cli, synthetic_events, synthetic_frame
from upgrade_predictor import tracking
from upgrade_predictor.errors import InputError
from upgrade_predictor.evaluation import METRICS
from upgrade_predictor.forecast.runs import load_forecast_run
from upgrade_predictor.tracking import log_run, resolve_store
from upgrade_predictor.training.metrics import RunMetrics

TRAIN = ["train", "--budget", "quick", "--families", "logreg", "--strategies", "none", "--no-report"]
SCORES = METRICS


@pytest.fixture(scope="module")
def table_run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("table")
    synthetic_frame(400, seed=4).to_csv(d / "synthetic.csv", index=False)
    r = run_cli(*TRAIN, "--data", "synthetic.csv", "--out", "run", cwd=d)
    assert r.returncode == 0, r.stderr
    return d / "run"


@pytest.fixture(scope="module")
def events_run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("events")
    synthetic_events(d / "tables", n_users=300, seed=3)
    r = run_cli(*TRAIN, "--events", "tables", "--horizon", "14", "--out", "run", cwd=d)
    assert r.returncode == 0, r.stderr
    return d / "run"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """One store folder for the module: creating an MLflow database takes seconds."""
    return tmp_path_factory.mktemp("store") / "mlruns"


def client_of(folder: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")


def artifacts(client: MlflowClient, run_id: str) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id)}


def test_a_table_run_is_logged_with_its_metrics_params_and_bundle(table_run, store, tmp_path, monkeypatch):
    # No URI and no $MLFLOW_TRACKING_URI: the store is ./mlruns of the working folder.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(store.parent)
    run_id = log_run(table_run)
    assert (store / "mlflow.db").is_file()

    client = client_of(store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "upgrade-predictor"
    m = RunMetrics.from_dict(json.loads((table_run / "metrics.json").read_text()))
    logged = run.data.metrics
    for name in SCORES:
        assert logged[f"test_{name}"] == getattr(m.test, name)
        assert logged[f"cv_{name}_mean"] == m.cv[f"{name}_mean"]
        assert logged[f"cv_{name}_sd"] == m.cv[f"{name}_sd"]
    assert logged["threshold"] == m.threshold.value

    info = json.loads((table_run / "run.json").read_text())
    params = run.data.params
    for key in ("budget", "objective", "target", "data", "threshold_objective"):
        assert params[key] == info[key]
    for key in ("seed", "offer_cost", "upgrade_value"):
        assert params[key] == str(info[key])
    assert params["families"] == ",".join(info["families"]) == "logreg"
    assert params["strategies"] == ",".join(info["strategies"]) == "none"
    assert {f"model_{k}" for k in m.chosen.params} <= set(params)

    tags = run.data.tags
    assert (tags["chosen_family"], tags["chosen_strategy"]) == (m.chosen.family, m.chosen.strategy)
    assert tags["kind"] == "table" and Path(tags["run_folder"]) == table_run.resolve()
    assert "skipped_metrics" not in tags

    assert {"model.zip", "leaderboard.csv", "leaderboard.json", "metrics.json", "run.json"} <= artifacts(
        client, run_id
    )
    assert "report.html" not in artifacts(client, run_id)  # --no-report: nothing to log
    # The logged bundle and table are the run's own.
    got = Path(client.download_artifacts(run_id, "model.zip", str(tmp_path)))
    assert got.read_bytes() == (table_run / "model.zip").read_bytes()
    table = json.loads(Path(client.download_artifacts(run_id, "leaderboard.json", str(tmp_path))).read_text())
    board = pd.read_csv(table_run / "leaderboard.csv")
    assert table["columns"] == list(board.columns)
    assert [row[table["columns"].index("key")] for row in table["data"]] == board["key"].tolist()


def test_non_finite_metrics_are_skipped_and_named_in_a_tag(table_run, store, tmp_path, monkeypatch):
    run_dir = tmp_path / "nan-run"
    shutil.copytree(table_run, run_dir)
    d = json.loads((run_dir / "metrics.json").read_text())
    d["test"]["roc_auc"] = float("nan")
    d["cv"]["roc_auc_sd"] = float("inf")
    (run_dir / "metrics.json").write_text(json.dumps(d))

    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(store))  # honoured when no URI is given
    run_id = log_run(run_dir)
    run = client_of(store).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert "test_roc_auc" not in run.data.metrics and "cv_roc_auc_sd" not in run.data.metrics
    assert run.data.metrics["test_pr_auc"] == d["test"]["pr_auc"]
    assert math.isfinite(run.data.metrics["cv_roc_auc_mean"])
    note = run.data.tags["skipped_metrics"]
    assert "test_roc_auc" in note and "cv_roc_auc_sd" in note


def test_the_report_and_signatures_are_logged_when_the_run_has_them(table_run, store, tmp_path):
    run_dir = tmp_path / "signed-run"
    shutil.copytree(table_run, run_dir)
    shutil.copy(run_dir / "model.zip", run_dir / "model_no_leak.zip")
    for name in ("report.html", "model.zip.sig", "model_no_leak.zip.sig"):
        (run_dir / name).write_text(name)
    run_id = log_run(run_dir, tracking_uri=str(store))
    logged = artifacts(client_of(store), run_id)
    assert {"report.html", "model.zip.sig", "model_no_leak.zip", "model_no_leak.zip.sig"} <= logged
    assert "predictions.parquet" not in logged  # grows with the data; it stays in the run folder


@pytest.mark.slow  # the small events run behind it takes about 25 s of CPU, more on a busy machine
def test_an_events_run_is_logged_with_its_forecast(events_run, store, tmp_path):
    run_id = log_run(events_run, tracking_uri=f"sqlite:///{store / 'mlflow.db'}", experiment="events")
    client = client_of(store)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "events"
    m = load_forecast_run(events_run).metrics
    logged = run.data.metrics
    for name in SCORES:
        if math.isfinite(getattr(m.test, name)):
            assert logged[f"test_{name}"] == getattr(m.test, name)
        assert logged[f"cv_{name}_mean"] == m.cv[f"{name}_mean"]
    assert logged["baseline_tenure_only_pr_auc"] == m.baselines["tenure only"].pr_auc
    assert logged["forecast_expected"] == m.forecast.expected
    assert logged["threshold"] == m.policy.threshold

    info = json.loads((events_run / "run.json").read_text())
    params = run.data.params
    assert params["events"] == info["events"] and params["horizon"] == str(info["horizon"]) == "14"
    assert params["budget"] == info["budget"] and params["seed"] == str(info["seed"])
    assert params["families"] == "logreg" and params["objective"] == m.objective
    assert run.data.tags["kind"] == "events" and run.data.tags["chosen_family"] == m.chosen.family
    assert {"model.zip", "leaderboard.csv", "leaderboard.json", "backtest.csv"} <= artifacts(client, run_id)


def test_without_mlflow_the_message_says_how_to_install_it(table_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # makes `import mlflow` fail as when not installed
    with pytest.raises(InputError) as e:
        log_run(table_run)
    assert str(e.value) == "--mlflow needs MLflow: pip install 'upgrade-predictor[mlflow]'"


def test_a_folder_that_is_not_a_run_is_refused_before_anything_is_logged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "run.json").write_text("{}")
    for folder in (tmp_path / "missing", tmp_path / "notes"):
        with pytest.raises(InputError, match="run folder"):
            log_run(folder)
    assert not (tmp_path / "mlruns").exists()


def test_the_store_is_the_uri_given_else_the_environment_else_mlruns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = resolve_store(None)
    assert default.uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert default.artifact_location == (tmp_path / "mlruns" / "artifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert resolve_store(None).uri == "http://tracking.example:5000"
    assert resolve_store("").uri == "http://tracking.example:5000"
    for uri in ("sqlite:///x.db", "databricks", "file:///tmp/store", "https://host/path"):
        assert resolve_store(uri) == tracking.Store(uri)
    assert (
        resolve_store("elsewhere/store").uri == f"sqlite:///{tmp_path / 'elsewhere' / 'store' / 'mlflow.db'}"
    )
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(InputError, match="a file, not a folder"):
        resolve_store("a-file")


def test_importing_the_module_does_not_import_mlflow():
    code = "import sys, upgrade_predictor.tracking; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_train_with_mlflow_logs_the_run_it_just_published(tmp_path):
    """The command line's --mlflow goes through the API: one MLflow run, metrics equal to metrics.json."""
    synthetic_frame(300, seed=6).to_csv(tmp_path / "d.csv", index=False)
    r = run_cli(*TRAIN, "--data", "d.csv", "--out", "run", "--mlflow", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "logged to MLflow as run" in r.stderr
    client = client_of(tmp_path / "mlruns")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1
    metrics = RunMetrics.from_dict(json.loads((tmp_path / "run" / "metrics.json").read_text()))
    assert runs[0].data.metrics["test_pr_auc"] == metrics.test.pr_auc
    bad = run_cli(*TRAIN, "--data", "d.csv", "--out", "run2", "--tracking-uri", "x", cwd=tmp_path)
    assert bad.returncode == 2 and "add --mlflow" in bad.stderr and not (tmp_path / "run2").exists()
