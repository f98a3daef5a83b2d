"""The family registry: every family and strategy it allows fits, saves and loads back, holding only the
types the family trusts; the registry's explainer, --explain and row-cap answers."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
import skops.io as sio
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from conftest import synthetic_frame
from upgrade_predictor import bundle, config, dataset, models
from upgrade_predictor.bundle import BundleMetadata
from upgrade_predictor.bundle.trust import TRUSTED_TYPES, trusted_types
from upgrade_predictor.calibration import calibrated
from upgrade_predictor.models import FAMILIES, family_of, inner_pipeline, row_caps
from upgrade_predictor.schema import Schema

ALLOWED = [(f, s) for f in FAMILIES for s in config.STRATEGIES if models.supports(f, s)]


@pytest.fixture(scope="module")
def table():
    frame = synthetic_frame(200, seed=2)
    X = dataset.coerce(frame.drop(columns="purchased"), dataset.infer_kinds(frame.drop(columns="purchased")))
    schema = Schema.infer(X, dataset.infer_kinds(X), "purchased", "1", "0", None)
    return X, frame["purchased"].to_numpy(), schema


def _round_trip(tmp_path, est, schema, family: str, strategy: str, X, name: str = ""):
    meta = BundleMetadata(schema=schema, threshold=0.5, family=family, strategy=strategy)
    held = set(sio.get_untrusted_types(data=sio.dumps(est)))
    assert held <= trusted_types(FAMILIES[family]), held - trusted_types(FAMILIES[family])
    path = bundle.save_bundle(tmp_path / f"{family}_{strategy}{name}.zip", est, meta, "")
    loaded = bundle.load_bundle(path)
    np.testing.assert_array_equal(loaded.pipeline.predict_proba(X), est.predict_proba(X))
    assert loaded.metadata.family == family
    return loaded


@pytest.mark.parametrize(("family", "strategy"), ALLOWED)
def test_every_family_and_strategy_saves_and_loads_with_trusted_types_only(table, tmp_path, family, strategy):
    X, y, schema = table
    # A row cap below the rows puts the sample step in, as a capped table run does.
    est = models.build_pipeline(schema, family, strategy, fit_rows=150).fit(X, y)
    loaded = _round_trip(tmp_path, est, schema, family, strategy, X)
    assert family_of(inner_pipeline(loaded.pipeline).steps[-1][1]) is FAMILIES[family]


@pytest.mark.parametrize("family", FAMILIES)
def test_calibrated_and_recalibrated_models_save_and_load(table, tmp_path, family):
    X, y, schema = table
    pipe = models.build_pipeline(schema, family, "none")
    _round_trip(tmp_path, calibrated(pipe).fit(X, y), schema, family, "none", X)
    # The events path: a fitted pipeline Platt-scaled on recent rows.
    recal = CalibratedClassifierCV(FrozenEstimator(pipe.fit(X, y)), method="sigmoid").fit(X, y)
    _round_trip(tmp_path, recal, schema, family, "none", X, "_recalibrated")
    assert family_of(inner_pipeline(recal).steps[-1][1]) is FAMILIES[family]


def test_the_trust_list_is_the_framework_and_the_families_types():
    assert set(TRUSTED_TYPES) == set().union(*(trusted_types(f) for f in FAMILIES.values()))


def test_the_registry_answers_what_other_stages_ask():
    assert set(FAMILIES) == set(get_args(config.FamilyName))
    assert models.EXPLAIN_FAMILIES == ("gbm",)
    assert {f.name: f.explainer for f in FAMILIES.values()} == {
        "logreg": "linear",
        "knn": "kernel",
        "svm": "kernel",
        "tree": "tree",
        "forest": "tree",
        "gbm": "contributions",
    }
    assert family_of(models.build_reference().steps[-1][1]) is FAMILIES["forest"]
    assert family_of(object()) is None


def test_row_caps_come_from_each_familys_class():
    standard = row_caps(config.BUDGETS["standard"].fit_rows)
    assert standard == {
        "knn": 5_000,
        "svm": 10_000,
        "forest": 10_000,
        "logreg": 100_000,
        "tree": 100_000,
        "gbm": 100_000,
        "reference": 20_000,
    }
    assert row_caps(config.EVENTS_FIT_ROWS) == {"knn": 60_000, "svm": 60_000, "forest": 60_000}
