"""The events protocol's fits: a country gets a one-hot column only when it covers a share of the rows."""

import numpy as np
import pandas as pd

from upgrade_predictor import config
from upgrade_predictor.dataset import coerce, infer_kinds
from upgrade_predictor.forecast.protocol import events_pipeline
from upgrade_predictor.schema import Schema
from upgrade_predictor.training.candidates import Candidate


def _design(rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, Schema]:
    """A design whose country has two common codes and many codes of 30 rows each (one user's worth)."""
    rng = np.random.default_rng(seed)
    rare = [f"R{i}" for i in range(40)]
    country = np.r_[np.repeat(rare, 30), rng.choice(["IN", "US"], rows - 30 * len(rare))]
    df = pd.DataFrame(
        {"tenure_days": rng.integers(0, 200, rows).astype("float64"), "student_country": country}
    )
    y = (rng.random(rows) < 0.1).astype(int)
    kinds = infer_kinds(df)
    return coerce(df, kinds), y, Schema.infer(df, kinds, "label", "1", "0", None)


def _columns(pipe) -> list[str]:
    return [str(c) for c in pipe.named_steps["encode"].get_feature_names_out()]


def test_rare_codes_of_a_large_fit_share_the_infrequent_column():
    X, y, schema = _design(200_000)
    cand = Candidate("logreg", "none")
    floor = int(config.EVENTS_CATEGORY_SHARE * len(y))
    assert floor > 30 > config.MIN_CATEGORY_FREQUENCY  # 30 rows pass the count, not the share
    small = _columns(cand.build(schema, 0).fit(X, y))
    large = _columns(events_pipeline(cand, schema, 0, len(y)).fit(X, y))
    assert "student_country_R0" in small and "student_country_R0" not in large
    assert {"student_country_IN", "student_country_US", "student_country_infrequent_sklearn"} <= set(large)
    assert len(large) < len(small) - 30


def test_a_small_fit_keeps_the_usual_count_floor_and_the_reference_its_codes():
    X, y, schema = _design(5_000)
    cand = Candidate("logreg", "none")
    assert _columns(events_pipeline(cand, schema, 0, len(y)).fit(X, y)) == _columns(
        cand.build(schema, 0).fit(X, y)
    )
    ref = events_pipeline(Candidate("reference", "none"), schema, 0, 10**7)
    assert ref.get_params()["encode__cat__min_frequency"] is None  # the course recipe, untouched
