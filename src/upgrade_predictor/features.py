"""Feature engineering and preprocessing steps; every fitted statistic is learnt inside the pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, PowerTransformer
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from . import config

# Ratios of engagement totals: (new column, numerator, denominator). A denominator below 1 counts
# as 1, so a student with no exam has a pass rate of 0 rather than a division by zero.
RATIOS = [
    ("minutes_per_course", "minutes_watched", "courses_started"),
    ("pass_rate", "practice_exams_passed", "practice_exams_started"),
    ("exam_minutes_per_exam", "minutes_spent_on_exams", "practice_exams_started"),
    ("minutes_per_day", "minutes_watched", "days_on_platform"),
    ("courses_per_day", "courses_started", "days_on_platform"),
]


# Event features: `<table>_days_since_last` is empty for a user never active before the cutoff.
RECENCY_SUFFIX = "_days_since_last"
TENURE = "tenure_days"


class EngagementFeatures(TransformerMixin, BaseEstimator):
    """Add the ratio features whose source columns are present, and give event features' "never active"
    a value; stateless apart from names.

    A never-active user's days since the last activity becomes tenure + 1 ("not since before
    registration"), which is true and keeps the column's order; median imputation would make such a
    user look recently active.

    Only numeric columns take part: a column the user declared categorical (--categorical) holds codes,
    which are neither divided nor filled."""

    def fit(self, X: pd.DataFrame, y=None):
        X = self._frame(X, reset=True)
        numbers = set(numeric_columns(X))
        self.ratios_ = [r for r in RATIOS if r[1] in numbers and r[2] in numbers]
        self.recency_ = [c for c in numbers if c.endswith(RECENCY_SUFFIX)] if TENURE in numbers else []
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "ratios_")
        out = self._add(self._frame(X, reset=False))
        return out if isinstance(X, pd.DataFrame) else out.to_numpy()  # an array in, an array out

    def _add(self, X: pd.DataFrame) -> pd.DataFrame:
        recency = getattr(self, "recency_", [])  # bundles written before event features have none
        if recency:
            never = X[TENURE].to_numpy(dtype="float64") + 1.0
            # Each column keeps its type: float32 event features stay float32.
            X = X.assign(
                **{
                    c: np.where(np.isnan(v := X[c].to_numpy(dtype="float64")), never, v).astype(X[c].dtype)
                    for c in recency
                }
            )
        if not self.ratios_:
            return X
        new = {
            name: X[num].to_numpy(dtype="float64") / np.maximum(X[den].to_numpy(dtype="float64"), 1.0)
            for name, num, den in self.ratios_
        }
        return pd.concat([X, pd.DataFrame(new, index=X.index)], axis=1)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "ratios_")
        names = _check_feature_names_in(self, input_features)
        return np.asarray(list(names) + [r[0] for r in self.ratios_], dtype=object)

    def _frame(self, X, reset: bool) -> pd.DataFrame:
        """X as a frame whose columns are those seen in fit. A frame is checked for its column names
        only: its dtypes are the schema's, and converting it would copy every cell. Anything else must
        be a dense numeric array, whose columns are known by position only (so no ratio applies)."""
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            return X
        A = validate_data(self, X, reset=reset, dtype="numeric", ensure_all_finite="allow-nan")
        return pd.DataFrame(A, columns=[f"x{i}" for i in range(A.shape[1])])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # a missing cell stays missing; imputation comes later
        return tags


def sample_rows(X, max_rows: int | None):
    """At most `max_rows` rows of X drawn at random (a fixed draw, in row order); X itself when smaller.

    Column statistics (medians, quantiles) of hundreds of thousands of rows are estimated as well from
    a large random sample, at a fraction of the time and memory; scikit-learn's QuantileTransformer and
    KBinsDiscretizer subsample the same way. Tables smaller than the sample are used whole."""
    n = X.shape[0]
    if max_rows is None or n <= max_rows:
        return X
    rows = np.sort(np.random.default_rng(0).choice(n, max_rows, replace=False))
    return X.iloc[rows] if isinstance(X, pd.DataFrame) else X[rows]


class SampledImputer(SimpleImputer):
    """SimpleImputer whose statistics are learnt on at most `max_rows` random rows of its fit data
    (see `sample_rows`); every row is transformed."""

    def __init__(self, *, strategy: str = "median", max_rows: int | None = config.FIT_STAT_ROWS):
        super().__init__(strategy=strategy)
        self.max_rows = max_rows

    def fit(self, X, y=None):
        return super().fit(sample_rows(X, self.max_rows), y)

    def fit_transform(self, X, y=None, **params):
        return self.fit(X, y).transform(X)


class SampledPowerTransformer(PowerTransformer):
    """Yeo-Johnson whose lambdas and scaling are learnt on at most `max_rows` random rows of its fit data
    (see `sample_rows`); every row is transformed.

    Each lambda is a one-dimensional likelihood maximisation that evaluates the whole column dozens of
    times: on an events design of 600k rows it cost most of a linear model's fit, while a 30k-row sample
    moves the typical lambda by under 0.01 (a monotone reshaping, so ranks are unchanged)."""

    def __init__(self, *, standardize: bool = True, max_rows: int | None = config.POWER_FIT_ROWS):
        super().__init__(method="yeo-johnson", standardize=standardize)
        self.max_rows = max_rows

    def fit(self, X, y=None):
        # A sparse matrix goes to PowerTransformer whole, which refuses it with its own message.
        if not issparse(X):
            X = sample_rows(X if isinstance(X, pd.DataFrame) else np.asarray(X), self.max_rows)
        return super().fit(X, y)

    def fit_transform(self, X, y=None):
        return self.fit(X, y).transform(X)


class QuantileClipper(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Winsorise each column at quantiles of the data it was fitted on (outliers kept, not dropped),
    estimated on at most `max_rows` random rows (see `sample_rows`)."""

    def __init__(
        self,
        lower: float = 0.0,
        upper: float = config.CLIP_QUANTILE,
        max_rows: int | None = config.FIT_STAT_ROWS,
    ):
        self.lower = lower
        self.upper = upper
        self.max_rows = max_rows

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_all_finite="allow-nan")
        S = sample_rows(X, self.max_rows).astype(np.float64)
        self.low_ = np.nanquantile(S, self.lower, axis=0)
        self.high_ = np.nanquantile(S, self.upper, axis=0)
        return self

    def transform(self, X):
        check_is_fitted(self, "high_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_all_finite="allow-nan", reset=False)
        return np.clip(X, self.low_.astype(X.dtype), self.high_.astype(X.dtype))  # float32 stays float32

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # quantiles ignore missing cells, and clipping keeps them
        return tags


def numeric_steps(scale: bool) -> Pipeline:
    """Impute, clip heavy tails, and for distance/linear models remove skew and scale."""
    steps = [("impute", SampledImputer(strategy="median")), ("clip", QuantileClipper())]
    if scale:
        # Yeo-Johnson handles zeros and negatives, unlike a plain log.
        steps.append(("power", SampledPowerTransformer(standardize=True)))
    return Pipeline(steps)


def prepare_step(scale: bool) -> ColumnTransformer:
    """Numeric preprocessing; categorical columns pass through so a sampler can see them as such."""
    return ColumnTransformer(
        [
            ("num", numeric_steps(scale), make_column_selector(dtype_include=np.number)),
            ("cat", "passthrough", make_column_selector(dtype_exclude=np.number)),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")


def encode_step() -> ColumnTransformer:
    """One-hot encode categories; rare and never-seen codes share one 'infrequent' column."""
    onehot = OneHotEncoder(
        min_frequency=config.MIN_CATEGORY_FREQUENCY,
        handle_unknown="infrequent_if_exist",
        sparse_output=False,
        # float32 codes: beside float64 numbers the output is float64 as before; beside an events
        # design's float32 features it stays float32, at half the memory.
        dtype=np.float32,
    )
    return ColumnTransformer(
        [("cat", onehot, make_column_selector(dtype_exclude=np.number))],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )


def ordinal_step() -> ColumnTransformer:
    """The reference recipe's country encoding: one integer per code, -1 for unseen codes."""
    ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    return ColumnTransformer(
        [("cat", ordinal, make_column_selector(dtype_exclude=np.number))],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )


def numeric_columns(X: pd.DataFrame) -> list[str]:
    """The columns of X that hold numbers (the ones every numeric step selects)."""
    return [str(c) for c in X.select_dtypes(include=np.number).columns]


def drop_reference_outliers(X: pd.DataFrame, y):
    """The course's outlier rule, as a sampler: it removes training rows only, never scored ones.

    It applies to numeric columns only (a column declared categorical holds codes, not amounts), and
    a missing value is no outlier: the rule keeps its row."""
    keep = np.ones(len(X), dtype=bool)
    numbers = set(numeric_columns(X))
    for col, limit in config.REFERENCE_OUTLIER_LIMITS.items():
        if col in numbers:
            keep &= ~(X[col].to_numpy(dtype="float64") > limit)
    return X[keep], np.asarray(y)[keep]


def drop_columns(X: pd.DataFrame, columns=()) -> pd.DataFrame:
    return X.drop(columns=[c for c in columns if c in X.columns])


def source_columns(
    transformed: list[str], original: list[str], categorical: list[str]
) -> list[dict[str, float]]:
    """For each column the pipeline feeds the model, the original input columns it stands for and
    their shares: one-hot columns map to their category column, a ratio splits evenly between its
    numerator and denominator (SHAP values add up, so shares keep the row total)."""
    ratios = {name: (a, b) for name, a, b in RATIOS}
    out = []
    for name in transformed:
        if name in original:
            out.append({name: 1.0})
        elif name in ratios and all(s in original for s in ratios[name]):
            a, b = ratios[name]
            out.append({a: 0.5, b: 0.5})
        else:
            owner = next(
                (c for c in sorted(categorical, key=len, reverse=True) if name.startswith(c + "_")), None
            )
            out.append({owner: 1.0} if owner else {name: 1.0})
    return out


def source_weights(transformed: list[str], original: list[str], categorical: list[str]) -> np.ndarray:
    """`source_columns` as a matrix (transformed x original): contributions of the columns a model sees,
    multiplied by it, add up to contributions of the input's columns."""
    index = {c: i for i, c in enumerate(original)}
    weights = np.zeros((len(transformed), len(original)))
    for j, shares in enumerate(source_columns(transformed, original, categorical)):
        for col, w in shares.items():
            if col in index:
                weights[j, index[col]] += w
    return weights


def encoded_names(inner: Pipeline) -> list[str]:
    """Names of the columns the model of a fitted pipeline sees, after every encoding step."""
    names: np.ndarray | None = None
    for _, step in inner.steps[:-1]:
        if step is None or step == "passthrough" or hasattr(step, "fit_resample"):
            continue
        names = step.get_feature_names_out(names)
    return [str(n) for n in (names if names is not None else [])]
