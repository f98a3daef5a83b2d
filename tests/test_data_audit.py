import json

import numpy as np
import pandas as pd
import pytest

from conftest import synthetic_frame
from upgrade_predictor.data_audit import AuditReport, audit, univariate_auc
from upgrade_predictor.dataset import load_dataset
from upgrade_predictor.errors import InputError

# The layout of audit.json since its first version: readers of older runs depend on it.
AUDIT_KEYS = [
    "source",
    "fingerprint",
    "rows",
    "columns",
    "target",
    "positive_label",
    "class_balance",
    "missing_cells",
    "exact_duplicates",
    "conflicting_groups",
    "conflicting_rows",
    "feature_columns",
    "leakage_flags",
    "warnings",
]
NUMERIC_KEYS = ["name", "kind", "missing", "min", "median", "p99", "max", "skew", "zeros_share", "heavy_tail"]
CATEGORY_KEYS = ["name", "kind", "missing", "distinct", "rare_categories", "rare_rows", "top"]


def test_real_data_audit_finds_the_documented_pitfalls(real_data):
    report = audit(load_dataset(real_data))
    assert report.rows == 17761
    assert report.leakage_flags == ["days_on_platform"]
    assert report.exact_duplicates == 575
    assert report.conflicting_groups == 13
    assert report.class_balance.positive == 1631
    country = report.column("student_country").categorical
    assert country.distinct == 172 and country.rare_categories == 93
    tails = {c.name for c in report.feature_columns if c.heavy_tail}
    assert {"minutes_watched", "practice_exams_started"} <= tails
    assert any("rows are ordered" in w for w in report.warnings)


def test_leakage_flag_follows_the_signal(tmp_path):
    df = synthetic_frame(400)
    df["leak"] = df["purchased"] * 10 + np.random.default_rng(0).normal(0, 1, len(df))
    df.to_csv(tmp_path / "d.csv", index=False)
    report = audit(load_dataset(tmp_path / "d.csv"))
    assert report.leakage_flags == ["leak"]
    assert report.missing_cells == 0


def test_category_auc_is_cross_fitted_so_unique_codes_do_not_look_predictive():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    ids = pd.Series([f"user{i}" for i in range(500)])  # one code per row: memorisable, not predictive
    assert univariate_auc(ids, y, "categorical") < 0.6


def test_audit_json_keeps_its_layout_and_reads_back_equal(synthetic_csv):
    report = audit(load_dataset(synthetic_csv))
    d = json.loads(json.dumps(report.to_dict()))  # as written to and read from audit.json
    assert list(d) == AUDIT_KEYS
    assert list(d["class_balance"]) == ["positive", "negative", "positive_share"]
    for c in d["feature_columns"]:
        expected = NUMERIC_KEYS if c["kind"] == "numeric" else CATEGORY_KEYS
        assert list(c) == expected + ["univariate_auc", "leakage_flag"]
    assert AuditReport.from_dict(d) == report
    country = report.column("student_country")
    assert country.numeric is None and sum(country.categorical.top.values()) == report.rows


def test_an_audit_without_the_later_counts_still_loads(synthetic_csv):
    d = audit(load_dataset(synthetic_csv)).to_dict()
    for key in ("missing_cells", "exact_duplicates", "conflicting_groups", "conflicting_rows", "warnings"):
        del d[key]
    report = AuditReport.from_dict(d)
    assert report.exact_duplicates == 0 and report.warnings == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("feature_columns"),
        lambda d: next(c for c in d["feature_columns"] if c["kind"] == "numeric").pop("p99"),
        lambda d: d.update(class_balance=[1, 2]),
        lambda d: d.update(rows="many"),
    ],
)
def test_a_malformed_audit_says_how_to_get_a_readable_run(synthetic_csv, damage):
    d = audit(load_dataset(synthetic_csv)).to_dict()
    damage(d)
    with pytest.raises(InputError, match=r"^runs/x/audit\.json: .*retrain with 'upgrade-predictor train'"):
        AuditReport.from_dict(d, where="runs/x/audit.json")
