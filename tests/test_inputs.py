"""Bad data files through the command line: one clear message naming the column and exit code 2, or the
documented per-row reject; never a traceback, never a silent wrong answer, nothing half-written left."""

from __future__ import annotations

import bz2
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from conftest import make_bundle, run_cli, synthetic_frame, users_frame
from upgrade_predictor import drift, features, profile
from upgrade_predictor.schema import Column, Schema
from upgrade_predictor.sources.messages import EXCERPT_CHARS, excerpt

TRAIN = ["train", "--budget", "quick", "--families", "tree", "--strategies", "none", "--no-report"]
MESSAGE_LIMIT = 600  # characters of one error message: a sentence, never a dump of the file


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("model"))


def refused(result, *fragments: str) -> str:
    """The error message of a command that must end with exit code 2 and name `fragments`."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and "internal error" not in output, output
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and message.isprintable(), message
    assert len(message) < MESSAGE_LIMIT, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def strict_json(path: Path) -> dict:
    """A JSON file read by a parser that refuses NaN and Infinity, as other languages' parsers do."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{path} holds {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def _with_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    """The table with column `name` replaced by `values` (or appended when it is not there)."""
    i = table.schema.get_field_index(name)
    return table.set_column(i, name, values) if i >= 0 else table.append_column(name, values)


def _duplicated_target_csv(path: Path) -> None:
    lines = synthetic_frame(300, seed=4).to_csv(index=False).splitlines()
    # the label twice: pandas would rename the copy "purchased.1" and learn the label from it
    rows = [row + "," + row.rsplit(",", 1)[1] for row in lines[1:]]
    path.write_text("\n".join([lines[0] + ",purchased", *rows]) + "\n")


def _frame_with(column: str, values: list) -> pd.DataFrame:
    df = synthetic_frame(300, seed=3).astype({column: object})
    for i, v in enumerate(values):
        df.loc[i * 2, column] = v
    return df


TRAINING_REFUSALS: dict[str, tuple[str, Callable[[Path], None], list[str]]] = {
    "infinities": (
        "d.csv",
        lambda p: _frame_with("minutes_watched", ["inf", "Infinity", "-inf"]).to_csv(p, index=False),
        ["'minutes_watched'", "3 infinite value(s)", "row(s) 2, 4, 6"],
    ),
    "text-standing-in-for-gaps": (
        "d.csv",
        lambda p: _frame_with("minutes_watched", ["NaN"] * 150).to_csv(p, index=False),
        ["'minutes_watched'", "'NaN'", "150 such cell(s)", "--categorical minutes_watched"],
    ),
    "parquet-list-column": (
        "d.parquet",
        lambda p: pq.write_table(
            _with_column(_table(synthetic_frame(200)), "tags", pa.array([[1, 2]] * 200)), p
        ),
        ["'tags'", "lists or records", "--exclude tags"],
    ),
    "parquet-struct-column": (
        "d.parquet",
        lambda p: pq.write_table(
            _with_column(_table(synthetic_frame(200)), "minutes_watched", pa.array([{"a": 1.0}] * 200)), p
        ),
        ["'minutes_watched'", "lists or records"],
    ),
    "parquet-dates": (
        "d.parquet",
        lambda p: pq.write_table(
            _with_column(
                _table(synthetic_frame(200)),
                "signup",
                pa.array(pd.date_range("2022-01-01", periods=200), pa.timestamp("ns")),
            ),
            p,
        ),
        ["'signup'", "dates or times", "--exclude signup"],
    ),
    "csv-duplicated-target": ("d.csv", _duplicated_target_csv, ["duplicated column name", "purchased"]),
    "parquet-duplicated-feature": (
        "d.parquet",
        lambda p: pq.write_table(
            _with_column(_table(synthetic_frame(200)), "x", pa.array(np.zeros(200))).rename_columns(
                [*synthetic_frame(1).columns, "minutes_watched"]
            ),
            p,
        ),
        ["duplicated column name", "minutes_watched"],
    ),
    "bzip2-named-csv": (
        "d.csv",
        lambda p: p.write_bytes(bz2.compress(synthetic_frame(200).to_csv(index=False).encode())),
        ["d.csv", "bzip2-compressed"],
    ),
    "binary-named-csv": (
        "d.csv",
        lambda p: p.write_bytes(bytes(np.random.default_rng(0).integers(1, 256, 20_000, dtype=np.uint8))),
        ["d.csv", "binary data"],
    ),
}


@pytest.mark.parametrize("case", list(TRAINING_REFUSALS))
def test_training_refuses_a_bad_file_by_column_and_leaves_no_run(case, tmp_path):
    name, write, fragments = TRAINING_REFUSALS[case]
    write(tmp_path / name)
    result = run_cli(*TRAIN, "--data", name, "--out", "run", cwd=tmp_path)
    refused(result, *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_gzipped_file_named_csv_is_read_as_gzip_not_echoed(tmp_path):
    (tmp_path / "d.csv").write_bytes(gzip.compress(synthetic_frame(200).to_csv(index=False).encode()))
    result = run_cli(*TRAIN, "--data", "d.csv", "--target", "nope", "--out", "run", cwd=tmp_path)
    # the header was decompressed: the real column names are listed, not bytes
    refused(result, "target column 'nope' not found", "student_country, days_on_platform")
    assert not (tmp_path / "run").exists()


def test_categorical_numbers_and_half_missing_columns_train(tmp_path):
    df = synthetic_frame(400).astype({"minutes_spent_on_exams": float, "courses_started": float})
    df.loc[::2, "minutes_spent_on_exams"] = np.nan  # half missing, in a column the reference recipe clips
    df.loc[::7, "courses_started"] = np.nan  # a ratio's source and a clipped column, declared categorical
    df.to_csv(tmp_path / "d.csv", index=False)
    result = run_cli(
        *TRAIN, "--data", "d.csv", "--categorical", "courses_started", "--out", "run", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    audit = {
        c["name"]: c for c in json.loads((tmp_path / "run" / "audit.json").read_text())["feature_columns"]
    }
    assert audit["courses_started"]["kind"] == "categorical"
    assert audit["minutes_spent_on_exams"]["missing"] == 200


def test_engagement_features_and_the_reference_rule_leave_codes_alone():
    X = pd.DataFrame(
        {
            "minutes_watched": [10.0, 5000.0, np.nan, 20.0],
            "courses_started": ["1", "(missing)", "12", "2"],  # declared categorical
            "days_on_platform": [3.0, 4.0, 5.0, 6.0],
        }
    )
    fitted = features.EngagementFeatures().fit(X)
    assert [r[0] for r in fitted.ratios_] == ["minutes_per_day"]  # none from the categorical column
    assert list(fitted.transform(X).columns) == [*X.columns, "minutes_per_day"]
    kept, y = features.drop_reference_outliers(X, np.array([0, 1, 0, 1]))
    # the outlier (5000 minutes) goes, the missing value stays, the codes are never compared with 10
    assert kept["minutes_watched"].isna().sum() == 1 and len(kept) == 3 and y.tolist() == [0, 0, 1]


# --- scoring and drift ----------------------------------------------------------------------------------


NOT_NUMBERS = {
    "text": pa.array(["12"] * 199 + ["many"]),  # one bad cell: Arrow cannot cast the column
    "timestamps": pa.array(pd.date_range("2022-01-01", periods=200), pa.timestamp("ns")),
    "booleans": pa.array([True, False] * 100),
}


@pytest.mark.parametrize("kind", list(NOT_NUMBERS))
def test_dates_and_flags_in_a_number_column_are_rejected_like_text(kind, model, tmp_path):
    values = NOT_NUMBERS[kind]
    pq.write_table(_with_column(_table(users_frame(200)), "days_on_platform", values), tmp_path / "u.parquet")
    result = run_cli(
        "score", str(model), "u.parquet", "--out", "r.csv", "--max-reject-share", "1", cwd=tmp_path
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    rejects = pd.read_csv(tmp_path / "r.rejects.csv", keep_default_na=False)
    bad = 1 if kind == "text" else 200
    assert len(rejects) == bad and len(pd.read_csv(tmp_path / "r.csv")) == 200 - bad
    assert set(rejects["reason"]) == {"days_on_platform is not a number"}
    assert set(rejects["column"]) == {"days_on_platform"}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_scoring_refuses_duplicated_column_names(fmt, model, tmp_path):
    t = _table(users_frame(100))
    t = t.append_column("minutes_watched", t.column("minutes_watched"))
    if fmt == "csv":
        pacsv.write_csv(t, tmp_path / "u.csv")
    else:
        pq.write_table(t, tmp_path / "u.parquet")
    result = run_cli("score", str(model), f"u.{fmt}", "--out", "r.csv", cwd=tmp_path)
    refused(result, f"u.{fmt}", "duplicated column name", "minutes_watched (2 times)")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"u.{fmt}"]


def test_scoring_and_drift_refuse_a_list_column_by_name(model, tmp_path):
    t = _with_column(_table(users_frame(100)), "minutes_watched", pa.array([[1.0, 2.0]] * 100))
    pq.write_table(t, tmp_path / "u.parquet")
    score = run_cli("score", str(model), "u.parquet", "--out", "r.csv", cwd=tmp_path)
    refused(score, "u.parquet", "'minutes_watched'", "lists or records")
    drift = run_cli("drift", str(model), "u.parquet", "--out", "d.json", cwd=tmp_path)
    refused(drift, "u.parquet", "'minutes_watched'", "lists or records")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.parquet"]


def test_infinities_are_rejected_rows_in_scoring_and_drift(model, tmp_path):
    df = users_frame(200).astype({"minutes_watched": object})
    df.loc[[3, 50, 120], "minutes_watched"] = ["inf", "-Infinity", "1e400"]
    df.to_csv(tmp_path / "u.csv", index=False)
    score = run_cli("score", str(model), "u.csv", "--out", "r.csv", cwd=tmp_path)
    assert score.returncode == 0, score.stderr
    rejects = pd.read_csv(tmp_path / "r.rejects.csv")
    assert rejects["row"].tolist() == [3, 50, 120]
    assert set(rejects["reason"]) == {"minutes_watched is infinite"}
    drift = run_cli("drift", str(model), "u.csv", "--out", "d.json", cwd=tmp_path)
    assert drift.returncode in (0, 1) and "Traceback" not in drift.stderr, drift.stderr
    report = strict_json(tmp_path / "d.json")
    assert report["rows_rejected"] == 3 and report["rows"] == 197
    assert report["reject_reasons"] == {"minutes_watched is infinite": 3}


def test_drift_with_no_valid_row_is_an_error_not_a_clean_report(model, tmp_path):
    users_frame(50).assign(minutes_watched="lots").to_csv(tmp_path / "u.csv", index=False)
    result = run_cli("drift", str(model), "u.csv", "--out", "d.json", cwd=tmp_path)
    refused(result, "no row of u.csv passed validation", "50 x minutes_watched is not a number")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.csv"]


def test_compressed_or_binary_input_is_named_in_one_short_line(model, tmp_path):
    (tmp_path / "u.csv").write_bytes(bz2.compress(users_frame(100).to_csv(index=False).encode()))
    refused(run_cli("score", str(model), "u.csv", "--out", "r.csv", cwd=tmp_path), "u.csv", "bzip2")
    # one long header line of printable junk: the message quotes a short excerpt of it, not the line
    (tmp_path / "u.csv").write_text("x" * 20_000 + "\n1\n")
    message = refused(run_cli("score", str(model), "u.csv", "--out", "r.csv", cwd=tmp_path), "missing column")
    assert "x" * (EXCERPT_CHARS + 1) not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.csv"]


def test_excerpts_are_short_and_escaped():
    assert excerpt("US") == "'US'"
    shown = excerpt("\x1b[31m" + "z" * 500)
    assert shown.isprintable() and "\x1b" not in shown and len(shown) < EXCERPT_CHARS + 10


def test_drift_psi_counts_missing_cells_and_is_never_nan():
    schema = Schema([Column("a", "numeric", nullable=True, minimum=0.0, maximum=9.0)], "y", "1", "0")
    train = pd.DataFrame({"a": np.r_[np.arange(10.0).repeat(10), [np.nan] * 10]})
    ref = profile.reference_profile(train, np.linspace(0, 1, len(train)), schema)
    tally = drift.Tally(ref, schema)
    tally.add(pd.DataFrame({"a": [np.nan] * 50}), np.full(50, 0.5))  # the column went missing
    report = tally.report()
    psi = report.features[0].psi
    assert psi is not None and np.isfinite(psi) and psi >= drift.PSI_ALERT and report.drifted
    json.dumps(report.to_dict(), allow_nan=False)


# --- run folders ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["[]", "3"])
def test_a_run_json_that_is_not_an_object_is_named(text, tmp_path):
    from upgrade_predictor.training.runs import RUN_FILES

    run = tmp_path / "run"
    run.mkdir()
    for name in RUN_FILES:
        (run / name).write_text("{}")
    (run / "run.json").write_text(text)
    kind = "array" if text == "[]" else "number"
    refused(run_cli("report", "run", cwd=tmp_path), "run.json", f"holds a JSON {kind}")
    assert sorted(p.name for p in run.iterdir()) == sorted(RUN_FILES)


def test_an_events_run_json_file_that_is_not_an_object_is_named(tmp_path):
    from upgrade_predictor.forecast.runs import FILES, KIND

    run = tmp_path / "run"
    run.mkdir()
    for name in FILES:
        (run / name).write_text("{}")
    (run / "run.json").write_text(json.dumps({"kind": KIND}))
    (run / "metrics.json").write_text("[]")
    refused(run_cli("report", "run", cwd=tmp_path), "metrics.json", "holds a JSON array")
    assert not (run / "report.html").exists()
