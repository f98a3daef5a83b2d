import numpy as np
import pandas as pd
import pytest

from conftest import synthetic_frame
from upgrade_predictor.dataset import load_dataset, parse_target
from upgrade_predictor.errors import InputError
from upgrade_predictor.sources.tables import read_table


def test_namibia_is_a_country_not_a_missing_value(real_data):
    ds = load_dataset(real_data)
    assert ds.n == 17761
    assert (ds.X["student_country"] == "NA").sum() == 9
    assert ds.X.isna().sum().sum() == 0
    assert ds.schema.positive_label == "1"
    assert ds.y.mean() == pytest.approx(0.0918, abs=1e-4)


def test_semicolon_csv_and_parquet_read_alike(tmp_path):
    df = synthetic_frame(50)
    df.to_csv(tmp_path / "a.csv", sep=";", index=False)
    df.to_parquet(tmp_path / "a.parquet", index=False)
    a, b = read_table(tmp_path / "a.csv"), read_table(tmp_path / "a.parquet")
    assert list(a.columns) == list(df.columns) == list(b.columns)
    assert (a["student_country"] == "NA").sum() == (df["student_country"] == "NA").sum()
    np.testing.assert_allclose(a["minutes_watched"], b["minutes_watched"])


@pytest.mark.parametrize(
    "labels,positive",
    [(("yes", "no"), "yes"), (("True", "False"), "True"), (("upgraded", "free"), "upgraded")],
)
def test_word_labels_name_the_positive_class(labels, positive):
    s = pd.Series([labels[0], labels[1], labels[1], labels[0]], name="t")
    y, pos, neg = parse_target(s)
    assert pos == positive and neg != positive
    assert y.tolist() == [1, 0, 0, 1]


def test_unclear_labels_ask_for_positive():
    s = pd.Series(["cat", "dog", "cat"], name="t")
    with pytest.raises(InputError, match="--positive"):
        parse_target(s)
    y, pos, _ = parse_target(s, positive="dog")
    assert pos == "dog" and y.tolist() == [0, 1, 0]


def test_id_column_is_carried_not_a_feature(tmp_path):
    df = synthetic_frame(40)
    df.insert(0, "user_id", [f"u{i}" for i in range(40)])
    df.to_csv(tmp_path / "d.csv", index=False)
    ds = load_dataset(tmp_path / "d.csv", id_column="user_id")
    assert "user_id" not in ds.X.columns and ds.ids.iloc[3] == "u3"


def _write(tmp_path, df, name="d.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda df: df.drop(columns="purchased"), "target column 'purchased' not found"),
        (lambda df: df.assign(purchased=1), "single class"),
        (lambda df: df.assign(purchased=np.arange(len(df)) % 3), "not binary"),
        (lambda df: df[["purchased"]], "no usable feature"),
        (lambda df: df.assign(purchased=df["purchased"].astype(float).where(df.index != 4)), "missing value"),
    ],
)
def test_bad_tables_get_one_clear_message(tmp_path, mutate, message):
    path = _write(tmp_path, mutate(synthetic_frame(60)))
    with pytest.raises(InputError, match=message):
        load_dataset(path)


def test_a_text_cell_in_a_numeric_column_names_column_and_row(tmp_path):
    df = synthetic_frame(60).astype({"minutes_watched": object})
    df.loc[7, "minutes_watched"] = "abc"
    with pytest.raises(InputError, match=r"minutes_watched.*row 9.*'abc'"):
        load_dataset(_write(tmp_path, df))


def test_empty_missing_and_unreadable_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        read_table(tmp_path / "empty.csv")
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "header.csv").write_text("a,b,purchased\n")
    with pytest.raises(InputError, match="no data rows"):
        read_table(tmp_path / "header.csv")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(InputError, match="cannot be read"):
        read_table(tmp_path / "bad.parquet")


def test_gzipped_csv_reads_like_plain_whatever_its_name(tmp_path):
    df = synthetic_frame(50)
    df.to_csv(tmp_path / "a.csv", index=False)
    df.to_csv(tmp_path / "a.csv.gz", index=False)
    (tmp_path / "a.gz.data").write_bytes((tmp_path / "a.csv.gz").read_bytes())  # gzip known by its bytes
    plain = read_table(tmp_path / "a.csv")
    for name in ("a.csv.gz", "a.gz.data"):
        pd.testing.assert_frame_equal(read_table(tmp_path / name), plain)
    assert (plain["student_country"] == "NA").sum() == (df["student_country"] == "NA").sum()


def test_input_files_takes_parts_in_name_order_and_skips_bookkeeping(tmp_path):
    from upgrade_predictor.sources.inputs import input_files

    df = synthetic_frame(30)
    for name in ("b.csv", "a.csv", "c.csv.gz"):
        df.to_csv(tmp_path / name, index=False)
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".a.csv.crc").write_text("x")
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(InputError, match=r"mixes formats \(a.csv is csv; c.csv.gz is csv.gz\)"):
        input_files(tmp_path)
    (tmp_path / "c.csv.gz").unlink()
    inputs = input_files(tmp_path)
    assert [f.name for f in inputs.files] == ["a.csv", "b.csv"] and inputs.format == "csv"
    assert [f.name for f in input_files(str(tmp_path / "*.csv")).files] == ["a.csv", "b.csv"]
    df.to_csv(tmp_path / "c.csv", index=False, sep=";")
    with pytest.raises(InputError, match=r"c.csv: separates cells with ';' but a.csv with ','"):
        input_files(tmp_path)
    (tmp_path / "d.csv").write_text("")
    with pytest.raises(InputError, match="d.csv: the file is empty"):
        input_files(tmp_path)
