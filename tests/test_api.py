"""The Python API: the same runs as the command line, typed results, one exception type, and a notebook
that runs from top to bottom on the real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import upgrade_predictor as up
from conftest import run_cli, synthetic_frame, users_frame

OPTIONS = {"budget": "quick", "families": ["logreg", "tree"], "strategies": ["none", "class_weight"]}


@pytest.fixture(scope="module")
def api_run(tmp_path_factory) -> up.TrainedRun:
    d = tmp_path_factory.mktemp("api")
    frame = synthetic_frame(500, seed=11)
    frame.to_csv(d / "train.csv", index=False)
    return up.train(d / "train.csv", out=d / "run", report=False, **OPTIONS)


def test_api_and_cli_give_the_same_leaderboard(api_run: up.TrainedRun, tmp_path: Path) -> None:
    data = api_run.dir.parent / "train.csv"
    result = run_cli(
        "train", "--data", str(data), "--out", str(tmp_path / "cli"), "--no-report", "--budget", "quick",
        "--families", "logreg,tree", "--strategies", "none,class_weight",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    cli_board = pd.read_csv(tmp_path / "cli" / "leaderboard.csv")
    timing = [c for c in cli_board.columns if "seconds" in c]  # wall time differs run to run
    pd.testing.assert_frame_equal(api_run.leaderboard.drop(columns=timing), cli_board.drop(columns=timing))
    assert isinstance(api_run.metrics, up.api.RunMetrics)
    assert 0 <= api_run.metrics.test.pr_auc <= 1
    assert api_run.report_path is None  # report=False
    assert "leaderboard" not in api_run._repr_html_() or "<table" in api_run._repr_html_()
    assert "test PR AUC" in api_run._repr_html_()


def test_a_dataframe_trains_and_is_kept_beside_the_run(tmp_path: Path) -> None:
    frame = synthetic_frame(400, seed=12)
    run = up.train(
        frame, out=tmp_path / "r", report=False, budget="quick", families=["logreg"], strategies=["none"]
    )
    kept = tmp_path / "r.data.parquet"
    assert kept.is_file()
    pd.testing.assert_frame_equal(pd.read_parquet(kept), frame)
    assert run.model_path.is_file()


def test_a_grouped_run_keeps_its_group_out_of_the_model_and_says_so_in_the_report(tmp_path: Path) -> None:
    frame = synthetic_frame(400, seed=13)
    frame.insert(0, "user", [f"u{i // 2}" for i in range(len(frame))])  # two rows per user
    run = up.train(frame, out=tmp_path / "r", group_column="user", budget="quick", families=["logreg"])
    assert run.metrics.split.group_column == "user"
    assert "user" not in run.load_model().scorer.schema.names
    assert run.report_path is not None
    first = run.report_path.read_text()
    assert "kept the rows of each user on one side (--group user)" in first
    run.report_path.unlink()
    rebuilt = up.report(run.dir)  # the rebuild reads the group from run.json and leaves it out again
    assert "(--group user)" in rebuilt.read_text()


def test_model_scores_like_the_command_line(api_run: up.TrainedRun, tmp_path: Path) -> None:
    users = users_frame(300)
    users["minutes_watched"] = users["minutes_watched"].astype(object)
    users.loc[3, "minutes_watched"] = "lots"  # one invalid row
    csv = tmp_path / "users.csv"
    users.to_csv(csv, index=False)
    result = run_cli("score", str(api_run.model_path), str(csv), "--out", str(tmp_path / "t.csv"))
    assert result.returncode == 0, result.stderr
    cli = pd.read_csv(tmp_path / "t.csv")
    model = up.load_model(api_run.model_path)
    ranked = model.score(users)
    np.testing.assert_array_equal(ranked["row"].to_numpy(), cli["row"].to_numpy())
    np.testing.assert_allclose(ranked["probability"].to_numpy(), cli["probability"].to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(ranked["decision"].to_numpy(), cli["decision"].to_numpy())
    assert list(ranked.attrs["rejects"]["row"]) == [3]
    assert len(model.score(users, top=7)) == 7
    with pytest.raises(up.InputError, match="row 3"):
        model.predict_proba(users)
    valid = users.drop(index=3)
    valid["minutes_watched"] = valid["minutes_watched"].astype(float)
    p = model.predict_proba(valid)
    assert p.shape == (len(valid),) and np.all((p >= 0) & (p <= 1))


def test_errors_are_one_type_with_the_cli_message(tmp_path: Path) -> None:
    with pytest.raises(up.InputError, match="no such model bundle|model"):
        up.load_model(tmp_path / "missing.zip")
    with pytest.raises(up.InputError, match="unknown option budgett"):
        up.train(tmp_path / "x.csv", budgett="quick")
    with pytest.raises(up.InputError, match="--seed -1"):
        up.train(synthetic_frame(100), seed=-1, out=tmp_path / "r")
    assert not (tmp_path / "r").exists() and not (tmp_path / "r.data.parquet").exists()


def test_audit_has_a_table_and_a_notebook_view() -> None:
    frame = synthetic_frame(300, seed=13)
    a = up.audit(frame)
    assert set(a.table["feature"]) == set(frame.columns) - {"purchased"}
    assert a.report.rows == 300
    assert "<table" in a._repr_html_()


@pytest.mark.slow
def test_quickstart_notebook_runs_on_the_real_data(real_data: Path, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = Path(__file__).parents[1] / "examples" / "quickstart.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    os.environ["QUICKSTART_OUT"] = str(tmp_path / "runs")
    try:
        NotebookClient(
            nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        os.environ.pop("QUICKSTART_OUT", None)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert (tmp_path / "runs" / "quickstart" / "report.html").is_file()
    assert any("test PR AUC" in o.get("text", "") for o in outputs)
