"""Batch scoring: equal to the pipeline, ranked, rejects with reasons, atomic output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import synthetic_frame
from test_bundle import make_bundle
from upgrade_predictor.cli import app
from upgrade_predictor.errors import InputError
from upgrade_predictor.scoring import scorer as scorer_module
from upgrade_predictor.scoring.batch import score_file
from upgrade_predictor.scoring.fast import FastPipeline
from upgrade_predictor.scoring.scorer import Scorer, format_reason
from upgrade_predictor.sources import tables


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bundles")
    return {
        "gbm": make_bundle(d),
        "cal": make_bundle(d, strategy="smote", calibrate=True),
        "logreg": make_bundle(d, family="logreg"),
        "id": make_bundle(d / "id", id_column="user_id"),
    }


def users(n: int = 500, seed: int = 7) -> pd.DataFrame:
    return synthetic_frame(n, seed=seed).drop(columns="purchased")


def expected(scorer: Scorer, df: pd.DataFrame) -> np.ndarray:
    X, reasons = scorer.schema.validate_rows(df)
    assert (reasons == "").all()
    return scorer.pipeline.predict_proba(X)[:, 1]


@pytest.mark.parametrize("kind", ["gbm", "cal", "logreg"])
def test_batch_equals_in_memory_predict_proba_and_is_ranked(kind, bundles, tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "BLOCK_BYTES", 4096)  # many Arrow batches
    monkeypatch.setattr(scorer_module, "SUB_ROWS", 64)
    scorer = Scorer.load(bundles[kind])
    df = users()
    df.to_csv(tmp_path / "users.csv", index=False)
    res = score_file(scorer, tmp_path / "users.csv", tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert (res.accepted, res.rejected, res.written) == (500, 0, 500)
    p = expected(scorer, df)
    np.testing.assert_allclose(out.sort_values("row")["probability"].to_numpy(), p, rtol=0, atol=1e-12)
    assert out["rank"].tolist() == list(range(1, 501))
    assert out["probability"].is_monotonic_decreasing
    assert (out["decision"] == (out["probability"] >= scorer.threshold)).all()
    if kind != "logreg":
        assert scorer._fast is not None  # the fast path was checked and kept


def test_namibia_is_a_country_and_rejects_carry_reasons(bundles, tmp_path):
    scorer = Scorer.load(bundles["gbm"])
    lines = [
        "student_country,days_on_platform,minutes_watched,courses_started,practice_exams_started,"
        "practice_exams_passed,minutes_spent_on_exams",
        "NA,10,5.5,1,0,0,0",
        "US,10,abc,1,0,0,0",
        "US,-3,5,1,0,0,0",
        "US,10,5,,0,0,0",
        ",10,5,1,0,0,0",
        "US,10,inf,1,0,0,0",
        "ZZ,10,5,1,0,0,0",
    ]
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    res = score_file(scorer, tmp_path / "in.csv", tmp_path / "out.csv")
    assert (res.rows, res.accepted, res.rejected) == (7, 2, 5)
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert sorted(out["row"]) == [0, 6]
    rej = pd.read_csv(tmp_path / "out.rejects.csv", keep_default_na=False)
    assert dict(zip(rej["row"], rej["reason"])) == {
        1: "minutes_watched is not a number",
        2: "days_on_platform is negative",
        3: "courses_started is missing",
        4: "student_country is missing",
        5: "minutes_watched is infinite",
    }
    assert rej.loc[rej["row"] == 1, "minutes_watched"].item() == "abc"


def test_top_and_budget_select_the_best_ranked(bundles, tmp_path):
    scorer = Scorer.load(bundles["gbm"])
    users(300).to_csv(tmp_path / "u.csv", index=False)
    full = score_file(scorer, tmp_path / "u.csv", tmp_path / "all.csv")
    score_file(scorer, tmp_path / "u.csv", tmp_path / "top.csv", top=10)
    score_file(scorer, tmp_path / "u.csv", tmp_path / "b.csv", budget=99.0, offer_cost=5.0)
    allr = pd.read_csv(tmp_path / "all.csv")
    assert full.written == 300
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "top.csv"), allr.head(10))
    assert len(pd.read_csv(tmp_path / "b.csv")) == 19  # 99 / 5 offers
    with pytest.raises(InputError, match="not both"):
        score_file(scorer, tmp_path / "u.csv", tmp_path / "x.csv", top=3, budget=10)


def test_parquet_in_and_out_with_ids(bundles, tmp_path):
    scorer = Scorer.load(bundles["id"])
    df = users(120)
    df.insert(0, "user_id", [f"id{i}" for i in range(120)])
    df.to_parquet(tmp_path / "u.parquet", index=False)
    score_file(scorer, tmp_path / "u.parquet", tmp_path / "out.parquet")
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["row", "user_id", "probability", "decision", "rank"]
    assert (out["user_id"] == "id" + out["row"].astype(str)).all()
    p = expected(scorer, df.drop(columns="user_id"))
    np.testing.assert_allclose(out.sort_values("row")["probability"].to_numpy(), p, rtol=0, atol=1e-12)


def test_missing_column_and_bad_files_are_input_errors(bundles, tmp_path):
    scorer = Scorer.load(bundles["gbm"])
    users(20).drop(columns="minutes_watched").to_csv(tmp_path / "u.csv", index=False)
    with pytest.raises(InputError, match="minutes_watched"):
        score_file(scorer, tmp_path / "u.csv", tmp_path / "out.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        score_file(scorer, tmp_path / "empty.csv", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_interrupted_run_leaves_no_output(bundles, tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "BLOCK_BYTES", 4096)
    scorer = Scorer.load(bundles["gbm"])
    users(2000).to_csv(tmp_path / "u.csv", index=False)
    calls = {"n": 0}
    real = scorer.predict

    def interrupted(X):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(X)

    monkeypatch.setattr(scorer, "predict", interrupted)
    with pytest.raises(KeyboardInterrupt):
        score_file(scorer, tmp_path / "u.csv", tmp_path / "out.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.csv"]  # no output, no temp file


def test_explain_gives_signed_reasons_that_add_up(bundles, tmp_path):
    scorer = Scorer.load(bundles["gbm"])
    df = users(200)
    X, _ = scorer.validate(df)
    contrib, names = scorer.contributions(X)
    assert names == scorer.schema.names
    model = scorer.pipeline.steps[-1][1]
    raw = model.booster_.predict(FastPipeline(scorer.pipeline).transform(X), raw_score=True)
    bias = model.booster_.predict(FastPipeline(scorer.pipeline).transform(X), pred_contrib=True)[:, -1]
    np.testing.assert_allclose(contrib.sum(axis=1) + bias, raw, atol=1e-9)  # nothing lost in aggregation
    df.to_csv(tmp_path / "u.csv", index=False)
    score_file(scorer, tmp_path / "u.csv", tmp_path / "out.csv", explain=True)
    out = pd.read_csv(tmp_path / "out.csv")
    first = out.iloc[0]
    c = contrib[int(first["row"])]
    top = np.argsort(-np.abs(c))[:3]
    assert [first[f"reason_{k}"] for k in (1, 2, 3)] == [format_reason(names[j], c[j]) for j in top]


def test_explain_on_a_model_without_contributions_is_an_input_error(bundles, tmp_path):
    scorer = Scorer.load(bundles["logreg"])
    users(20).to_csv(tmp_path / "u.csv", index=False)
    with pytest.raises(InputError, match="--explain"):
        score_file(scorer, tmp_path / "u.csv", tmp_path / "out.csv", explain=True)


def test_cli_score_counts_and_fails_on_too_many_rejects(bundles, tmp_path):
    df = users(50)
    df.loc[:9, "minutes_watched"] = -1.0
    df.to_csv(tmp_path / "u.csv", index=False)
    runner = CliRunner()
    ok = runner.invoke(
        app,
        [
            "score",
            str(bundles["gbm"]),
            str(tmp_path / "u.csv"),
            "--out",
            str(tmp_path / "o.csv"),
            "--max-reject-share",
            "0.5",
            "--no-progress",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "40 rows scored, 10 rejected" in ok.output
    bad = runner.invoke(
        app,
        [
            "score",
            str(bundles["gbm"]),
            str(tmp_path / "u.csv"),
            "--out",
            str(tmp_path / "o2.csv"),
            "--no-progress",
        ],
    )
    assert bad.exit_code == 1
    assert "over --max-reject-share" in bad.output
    assert (tmp_path / "o2.csv").exists()  # the accepted rows are still scored


@pytest.mark.slow
def test_real_rows_score_like_the_pipeline(real_data, tmp_path):
    """The real file (with its 9 Namibian rows) scored by a real-data bundle equals predict_proba."""
    from upgrade_predictor import bundle, dataset, models

    ds = dataset.load_dataset(real_data)
    pipe = models.build_pipeline(ds.schema, "gbm", "none").fit(ds.X, ds.y)
    path = bundle.save_bundle(tmp_path / "m.zip", pipe, {"schema": ds.schema.to_dict(), "threshold": 0.4}, "")
    scorer = Scorer.load(path)
    res = score_file(scorer, real_data, tmp_path / "out.parquet")
    assert (res.accepted, res.rejected) == (ds.n, 0)
    out = pd.read_parquet(tmp_path / "out.parquet").sort_values("row")
    np.testing.assert_allclose(
        out["probability"].to_numpy(), pipe.predict_proba(ds.X)[:, 1], rtol=0, atol=1e-12
    )


def test_a_fast_path_that_disagrees_is_dropped(bundles, monkeypatch):
    real = FastPipeline.predict_proba
    monkeypatch.setattr(FastPipeline, "predict_proba", lambda self, X: real(self, X) * 0.999)
    scorer = Scorer.load(bundles["gbm"])
    assert scorer._fast is None
    df = users(50)
    np.testing.assert_array_equal(scorer.predict(scorer.validate(df)[0]), expected(scorer, df))
