import numpy as np
import pandas as pd

from conftest import synthetic_frame
from upgrade_predictor.audit import audit, univariate_auc
from upgrade_predictor.dataset import load_dataset


def test_real_data_audit_finds_the_documented_pitfalls(real_data):
    report = audit(load_dataset(real_data))
    assert report["rows"] == 17761
    assert report["leakage_flags"] == ["days_on_platform"]
    assert report["exact_duplicates"] == 575
    assert report["conflicting_groups"] == 13
    assert report["class_balance"]["positive"] == 1631
    country = next(c for c in report["feature_columns"] if c["name"] == "student_country")
    assert country["distinct"] == 172 and country["rare_categories"] == 93
    tails = {c["name"] for c in report["feature_columns"] if c.get("heavy_tail")}
    assert {"minutes_watched", "practice_exams_started"} <= tails
    assert any("rows are ordered" in w for w in report["warnings"])


def test_leakage_flag_follows_the_signal(tmp_path):
    df = synthetic_frame(400)
    df["leak"] = df["purchased"] * 10 + np.random.default_rng(0).normal(0, 1, len(df))
    df.to_csv(tmp_path / "d.csv", index=False)
    report = audit(load_dataset(tmp_path / "d.csv"))
    assert report["leakage_flags"] == ["leak"]
    assert report["missing_cells"] == 0


def test_category_auc_is_cross_fitted_so_unique_codes_do_not_look_predictive():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    ids = pd.Series([f"user{i}" for i in range(500)])  # one code per row: memorisable, not predictive
    assert univariate_auc(ids, y, "categorical") < 0.6
