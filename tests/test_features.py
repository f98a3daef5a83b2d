"""The feature steps: ratios, clipping, rare codes, and scikit-learn's estimator checks."""

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import PowerTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from conftest import synthetic_frame
from upgrade_predictor.dataset import coerce, infer_kinds
from upgrade_predictor.features import (
    EngagementFeatures,
    QuantileClipper,
    SampledPowerTransformer,
)
from upgrade_predictor.models import FAMILIES, build_pipeline
from upgrade_predictor.schema import Schema


def _xy(n=400, seed=0):
    df = synthetic_frame(n, seed)
    y = df.pop("purchased").to_numpy()
    kinds = infer_kinds(df)
    return coerce(df, kinds), y, Schema.infer(df, kinds, "purchased", "1", "0", None)


def test_ratio_features_guard_zero_denominators():
    X = pd.DataFrame(
        {
            "minutes_watched": [30.0, 10.0],
            "courses_started": [0.0, 4.0],
            "practice_exams_started": [0.0, 2.0],
            "practice_exams_passed": [0.0, 1.0],
        }
    )
    out = EngagementFeatures().fit(X).transform(X)
    assert out["minutes_per_course"].tolist() == [30.0, 2.5]
    assert out["pass_rate"].tolist() == [0.0, 0.5]
    assert "minutes_per_day" not in out  # its source column is absent


def test_clipper_learns_limits_from_the_rows_it_is_fitted_on():
    train = np.array([[1.0], [2.0], [3.0], [1000.0]])
    clip = QuantileClipper(upper=0.75).fit(train)
    assert clip.high_[0] == np.quantile(train, 0.75)
    assert clip.transform(np.array([[5000.0], [2.0]]))[:, 0].tolist() == [clip.high_[0], 2.0]


def test_unseen_and_rare_countries_are_scored_by_every_family():
    X, y, schema = _xy()
    new = X.head(5).copy()
    new["student_country"] = ["XK", "ZZ", "NA", "US", "ZW"]  # never seen, never seen, known, known, rare
    for family in FAMILIES:
        pipe = build_pipeline(schema, family, "none").fit(X, y)
        p = pipe.predict_proba(new)[:, 1]
        assert p.shape == (5,) and np.all((p >= 0) & (p <= 1)), family
    enc = pipe.named_steps["encode"].named_transformers_["cat"]
    assert "NA" in list(enc.categories_[0])  # Namibia is a category of its own
    # never-seen codes land in the same column as the rare codes: identical encodings
    k = len(enc.get_feature_names_out())
    coded = pipe[:-1].transform(new)[:, :k]
    np.testing.assert_array_equal(coded[0], coded[1])
    np.testing.assert_array_equal(coded[0], coded[4])
    assert not np.array_equal(coded[0], coded[2])


@parametrize_with_checks([EngagementFeatures(), QuantileClipper(), SampledPowerTransformer(max_rows=30)])
def test_custom_transformers_pass_the_scikit_learn_estimator_checks(estimator, check):
    # Every check applies: both accept frames and dense numeric arrays, and keep missing cells.
    check(estimator)


def test_engagement_features_refuse_columns_other_than_those_fitted():
    X, _, _ = _xy(50)
    step = EngagementFeatures().fit(X)
    assert list(step.transform(X).columns) == list(step.get_feature_names_out())
    with pytest.raises(ValueError, match="feature names"):
        step.transform(X[X.columns[::-1]])


def _skewed(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.c_[rng.gamma(0.5, 30, n), rng.poisson(2, n), rng.lognormal(1, 1, n)]


def test_power_transform_below_its_sample_size_is_yeo_johnson_on_every_row():
    X = _skewed(2_000)
    ours, plain = SampledPowerTransformer(max_rows=5_000).fit(X), PowerTransformer().fit(X)
    np.testing.assert_array_equal(ours.lambdas_, plain.lambdas_)
    np.testing.assert_allclose(ours.transform(X), plain.transform(X))


def test_power_transform_learns_lambdas_from_a_sample_and_transforms_every_row():
    X = _skewed(60_000, seed=1)
    ours = SampledPowerTransformer(max_rows=10_000)
    Z = ours.fit_transform(X)
    plain = PowerTransformer().fit(X)
    assert Z.shape == X.shape
    np.testing.assert_allclose(ours.lambdas_, plain.lambdas_, atol=0.05)
    assert not np.allclose(ours.lambdas_, plain.lambdas_, atol=1e-9)  # a sample, not the whole
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=0.05)  # standardised on the sample, near 0 on all
    assert (np.diff(Z[np.argsort(X[:, 0]), 0]) >= 0).all()  # monotone: the ranking is the data's
