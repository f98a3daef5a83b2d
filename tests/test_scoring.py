"""Batch scoring: equal to the pipeline, ranked, rejects with reasons, atomic output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import make_bundle, synthetic_frame
from upgrade_predictor.cli import app
from upgrade_predictor.errors import InputError
from upgrade_predictor.scoring import scorer as scorer_module
from upgrade_predictor.scoring.batch import score_file
from upgrade_predictor.scoring.fast import FastPipeline
from upgrade_predictor.scoring.scorer import Scorer, format_reason
from upgrade_predictor.sources import batches


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
    rows = scorer.schema.validate_rows(df)
    assert (rows.reasons == "").all()
    return scorer.pipeline.predict_proba(rows.X)[:, 1]


@pytest.mark.parametrize("kind", ["gbm", "cal", "logreg"])
def test_batch_equals_in_memory_predict_proba_and_is_ranked(kind, bundles, tmp_path, monkeypatch):
    monkeypatch.setattr(batches, "BLOCK_BYTES", 4096)  # many Arrow batches
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
    monkeypatch.setattr(batches, "BLOCK_BYTES", 4096)
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
    X = scorer.schema.validate_rows(df).X
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
    np.testing.assert_array_equal(scorer.predict(scorer.schema.validate_rows(df).X), expected(scorer, df))


# --- one input rule: a file, a folder of parts or a glob; CSV, gzipped CSV or Parquet ---------------


def write_parts(df: pd.DataFrame, folder: Path, fmt: str, size: int) -> Path:
    """The frame as parts of `size` rows, named so that name order is row order."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(range(0, len(df), size)):
        part = df.iloc[s : s + size]
        if fmt == "parquet":  # a column with text cells is text, as a lake may hold it
            mixed = {c: str for c in part.columns if part[c].dtype == object}
            part.astype(mixed).to_parquet(folder / f"part-{i:03d}.parquet", index=False)
        else:
            part.to_csv(folder / f"part-{i:03d}.{fmt}", index=False)  # .csv.gz: pandas compresses
    return folder


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet"])
def test_a_folder_or_glob_of_parts_scores_like_the_whole_file(fmt, bundles, tmp_path):
    scorer = Scorer.load(bundles["gbm"])
    df = users(700).astype({"minutes_watched": object})
    df.loc[[5, 333, 650], "minutes_watched"] = "abc"  # rejects in the first, a middle and the last part
    whole = tmp_path / "whole.csv"
    df.to_csv(whole, index=False)
    ref = score_file(scorer, whole, tmp_path / "ref.csv")
    parts = write_parts(df, tmp_path / "parts", fmt, 150)
    for data, name in ((parts, "folder"), (str(parts / f"part-*.{fmt}"), "glob")):
        res = score_file(scorer, data, tmp_path / f"{name}.csv")
        assert (res.rows, res.accepted, res.rejected, res.files) == (700, 697, 3, 5)
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / f"{name}.csv"), pd.read_csv(tmp_path / "ref.csv")
        )
        got_rej = pd.read_csv(tmp_path / f"{name}.rejects.csv", keep_default_na=False)
        assert got_rej["row"].tolist() == [5, 333, 650]  # numbered across the parts in name order
        assert (got_rej["column"] == "minutes_watched").all()
    assert ref.rejected == 3


def test_folders_with_mixed_formats_or_no_data_file_are_refused(bundles, tmp_path):
    scorer = Scorer.load(bundles["gbm"])
    (tmp_path / "mixed").mkdir()
    users(20).to_csv(tmp_path / "mixed" / "a.csv", index=False)
    users(20).to_parquet(tmp_path / "mixed" / "b.parquet", index=False)
    with pytest.raises(InputError, match=r"mixed: mixes formats \(a.csv is csv; b.parquet is parquet\)"):
        score_file(scorer, tmp_path / "mixed", tmp_path / "o.csv")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.txt").write_text("not data")
    with pytest.raises(InputError, match="notes: the folder holds no data file"):
        score_file(scorer, tmp_path / "notes", tmp_path / "o.csv")
    with pytest.raises(InputError, match="no file matches"):
        score_file(scorer, str(tmp_path / "nothing-*.csv"), tmp_path / "o.csv")
    assert not (tmp_path / "o.csv").exists()


def test_a_broken_gzip_or_binary_file_is_named_without_raw_bytes(bundles, tmp_path):
    import gzip

    good = gzip.compress(users(200).to_csv(index=False).encode())
    (tmp_path / "cut.csv.gz").write_bytes(good[: len(good) // 2])  # truncated mid-stream
    (tmp_path / "junk.csv").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "ok.csv.gz").write_bytes(good)
    scorer = Scorer.load(bundles["gbm"])
    for name, message in (
        ("cut.csv.gz", "cut.csv.gz: cannot be read as gzip-compressed CSV"),
        ("junk.csv", "junk.csv: holds binary data, not CSV text"),
    ):
        with pytest.raises(InputError, match=message) as e:
            score_file(scorer, tmp_path / name, tmp_path / "o.csv")
        assert str(e.value).isprintable()  # no raw bytes reach the terminal
    assert not (tmp_path / "o.csv").exists()
    res = score_file(scorer, tmp_path / "ok.csv.gz", tmp_path / "o.csv")
    assert res.accepted == 200


def test_id_column_is_carried_even_when_training_named_none(bundles, tmp_path):
    scorer = Scorer.load(bundles["gbm"])
    assert scorer.schema.id_column is None
    df = users(300)
    df.insert(0, "user_id", [f"id{i}" for i in range(300)])
    df.loc[7, "minutes_watched"] = -1.0
    df.to_csv(tmp_path / "u.csv", index=False)
    res = score_file(scorer, tmp_path / "u.csv", tmp_path / "o.csv", id_column="user_id")
    out = pd.read_csv(tmp_path / "o.csv")
    assert list(out.columns) == ["row", "user_id", "probability", "decision", "rank"]
    assert (out["user_id"] == "id" + out["row"].astype(str)).all() and res.id_column == "user_id"
    rej = pd.read_csv(tmp_path / "o.rejects.csv")
    assert list(rej.columns[:2]) == ["row", "user_id"] and rej["user_id"].tolist() == ["id7"]
    assert list(rej.columns[-2:]) == ["column", "reason"]
    plain = score_file(scorer, tmp_path / "u.csv", tmp_path / "p.csv")  # without --id: row numbers only
    assert plain.id_column is None and "user_id" not in pd.read_csv(tmp_path / "p.csv").columns
    with pytest.raises(InputError, match="missing column.* nope"):
        score_file(scorer, tmp_path / "u.csv", tmp_path / "x.csv", id_column="nope")
    with pytest.raises(InputError, match="--id minutes_watched: a feature"):
        score_file(scorer, tmp_path / "u.csv", tmp_path / "x.csv", id_column="minutes_watched")


def test_a_duplicate_id_is_counted_and_kept(bundles, tmp_path):
    df = users(100)
    df.insert(0, "user_id", [f"id{i}" for i in range(100)])
    df.loc[[40, 90], "user_id"] = "id3"  # two repeats of one id
    df.loc[90, "minutes_watched"] = -1.0  # one of them rejected: still a repeat
    df.to_csv(tmp_path / "u.csv", index=False)
    res = score_file(Scorer.load(bundles["gbm"]), tmp_path / "u.csv", tmp_path / "o.csv", id_column="user_id")
    assert res.duplicate_ids == 2 and res.written == 99
    assert (pd.read_csv(tmp_path / "o.csv")["user_id"] == "id3").sum() == 2
    r = CliRunner().invoke(
        app,
        [
            "score",
            str(bundles["gbm"]),
            str(tmp_path / "u.csv"),
            "--out",
            str(tmp_path / "c.csv"),
            "--id",
            "user_id",
        ]
        + ["--no-progress"],
    )
    assert r.exit_code == 0, r.output
    assert "2 rows repeat an earlier row's user_id; all are kept" in r.output
    assert "id column user_id; 'row' counts data rows from 0" in r.output


def test_rows_name_their_problem_column_from_structured_problems(bundles):
    schema = Scorer.load(bundles["gbm"]).schema
    df = users(6).astype({"minutes_watched": object})
    df.loc[1, "minutes_watched"] = "abc"
    df.loc[2, "days_on_platform"] = -1
    df.loc[4, "student_country"] = None
    rows = schema.validate_rows(df)
    assert rows.valid.tolist() == [True, False, False, True, False, True]
    assert rows.columns().tolist() == ["", "minutes_watched", "days_on_platform", "", "student_country", ""]
    assert rows.problem(2).message == "days_on_platform is negative" and rows.problem(0) is None
    assert rows.counts() == {
        "minutes_watched is not a number": 1,
        "days_on_platform is negative": 1,
        "student_country is missing": 1,
    }
    with pytest.raises(InputError, match="the input: missing column.* minutes_watched; the model needs"):
        schema.validate_rows(df.drop(columns="minutes_watched"))


def test_decisions_come_from_score_frame_alone(bundles, tmp_path):
    scorer = Scorer.load(bundles["cal"])
    df = users(400)
    scored = scorer.score_frame(df)
    assert scored.decision.dtype == np.int8
    np.testing.assert_array_equal(scored.decision, scored.probability >= scorer.threshold)
    df.to_csv(tmp_path / "u.csv", index=False)
    score_file(scorer, tmp_path / "u.csv", tmp_path / "o.csv")
    out = pd.read_csv(tmp_path / "o.csv").sort_values("row")
    np.testing.assert_array_equal(out["decision"].to_numpy(), scored.decision)
    half = scored.slice(100, 300)  # a part of the frame keeps its own rows' scores and decisions
    np.testing.assert_array_equal(half.probability, scored.probability[100:300])
    np.testing.assert_array_equal(half.decision, scored.decision[100:300])


def test_carried_columns_sit_beside_the_id_as_text(bundles, tmp_path):
    df = users(120)
    df.insert(0, "user_id", [f"id{i}" for i in range(120)])
    df["cohort"] = np.where(np.arange(120) % 2, "a", "b")
    df.to_parquet(tmp_path / "u.parquet", index=False)
    scorer = Scorer.load(bundles["gbm"])
    score_file(
        scorer,
        tmp_path / "u.parquet",
        tmp_path / "o.parquet",
        id_column="user_id",
        carry=["cohort", "days_on_platform"],
    )
    out = pd.read_parquet(tmp_path / "o.parquet").sort_values("row")
    assert list(out.columns) == [
        "row",
        "user_id",
        "cohort",
        "days_on_platform",
        "probability",
        "decision",
        "rank",
    ]
    assert out["cohort"].tolist() == df["cohort"].tolist()
    assert out["days_on_platform"].tolist() == df["days_on_platform"].astype(str).tolist()
    np.testing.assert_allclose(
        out["probability"].to_numpy(), expected(scorer, users(120)), rtol=0, atol=1e-12
    )
