"""The model bundle: round trip, model card, and refusal of tampered, foreign and pickled files."""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler

from conftest import fit_bundle, synthetic_frame
from upgrade_predictor import bundle, dataset, models
from upgrade_predictor.bundle import BundleMetadata
from upgrade_predictor.bundle.metadata import migrate
from upgrade_predictor.errors import InputError
from upgrade_predictor.schema import Schema


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    return fit_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def gbm_bundle(fitted) -> Path:
    return fitted[0]


def new_users(schema, n: int = 50, seed: int = 3):
    return dataset.coerce(
        synthetic_frame(n, seed=seed).drop(columns="purchased"), {c.name: c.kind for c in schema.columns}
    )


def _rewrite(src: Path, dst: Path, reseal: bool = True, **replace) -> Path:
    """A copy of the bundle with members replaced. With reseal, the manifest and its digest are
    recomputed as a forger would, so that the checks behind the manifest are what the test reaches."""
    with zipfile.ZipFile(src) as z:
        files = {n: z.read(n) for n in z.namelist()}
        comment = z.comment
    files.update(replace)
    if reseal and bundle.MANIFEST_FILE in files:
        files[bundle.MANIFEST_FILE] = json.dumps(
            {
                "format": bundle.FORMAT,
                "format_version": 2,
                "members": {
                    n: {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)}
                    for n, b in files.items()
                    if n != bundle.MANIFEST_FILE
                },
            }
        ).encode()
        comment = (
            b"upgrade-predictor manifest sha256:"
            + hashlib.sha256(files[bundle.MANIFEST_FILE]).hexdigest().encode()
        )
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, blob in files.items():
            z.writestr(name, blob)
        z.comment = comment
    return dst


def test_round_trip_keeps_predictions_and_writes_a_card(fitted):
    path, original = fitted
    b = bundle.load_bundle(path)
    X = new_users(b.schema)
    p = b.pipeline.predict_proba(X)[:, 1]
    assert p.shape == (50,) and np.all((p >= 0) & (p <= 1))
    np.testing.assert_array_equal(p, original.predict_proba(X)[:, 1])
    assert b.threshold == 0.4
    assert "Decision threshold: 0.4" in b.card and "Caveats" in b.card
    assert b.metadata.pipeline_sha256 and b.metadata.versions["scikit-learn"]


def test_metadata_is_typed_and_round_trips_through_metadata_json(gbm_bundle, tmp_path):
    meta = bundle.read_metadata(gbm_bundle)
    assert isinstance(meta, BundleMetadata)
    assert (meta.family, meta.strategy, meta.threshold, meta.calibrated) == ("gbm", "none", 0.4, False)
    assert meta.training is not None and meta.training.rows == 800
    assert meta.schema.names == bundle.load_bundle(gbm_bundle).schema.names
    with zipfile.ZipFile(gbm_bundle) as z:
        raw = json.loads(z.read(bundle.METADATA_FILE))
    assert meta.to_dict() == raw  # the same metadata.json, key for key
    assert BundleMetadata.from_dict(raw) == meta
    again = bundle.save_bundle(tmp_path / "again.zip", bundle.load_bundle(gbm_bundle).pipeline, meta, "")
    saved = bundle.read_metadata(again)  # a typed record saves as it was read
    assert replace(saved, created=meta.created, pipeline_sha256=meta.pipeline_sha256) == meta


@pytest.mark.parametrize(
    ("where", "key"),
    [((), "upgrade_valu"), (("training",), "row"), (("metrics",), "validation"), (("events",), "window")],
)
def test_an_unknown_metadata_key_is_refused_naming_it_and_the_file(gbm_bundle, tmp_path, where, key):
    with zipfile.ZipFile(gbm_bundle) as z:
        meta = json.loads(z.read(bundle.METADATA_FILE))
    if where == ("events",):
        meta["events"] = {"horizon": 30, "windows": [7], "data_end": "2024-01-31"}
    obj = meta[where[0]] if where else meta
    obj[key] = 1
    bad = _rewrite(gbm_bundle, tmp_path / "typo.zip", **{bundle.METADATA_FILE: json.dumps(meta).encode()})
    with pytest.raises(InputError, match=f"typo.zip: metadata.json.*unknown key `{key}`.*retrain"):
        bundle.read_metadata(bad)
    with pytest.raises(InputError, match=f"unknown key `{key}`"):
        bundle.save_bundle(tmp_path / "never.zip", bundle.load_bundle(gbm_bundle).pipeline, meta, "")
    assert not (tmp_path / "never.zip").exists()


def test_format_1_metadata_migrates_to_the_current_layout(gbm_bundle):
    with zipfile.ZipFile(gbm_bundle) as z:
        current = json.loads(z.read(bundle.METADATA_FILE))
    old = {k: v for k, v in current.items() if k not in LATER_KEYS}
    old["format_version"] = 1
    old["metrics"] = {"cv": current["metrics"]["cv"], "test": current["metrics"]["test"]}
    up = migrate(old)
    assert set(up) == set(current) and up["format_version"] == 1 and old["metrics"].keys() == {"cv", "test"}
    assert up["metrics"]["train"] == {} and up["excluded"] == [] and up["events"] is None
    meta = BundleMetadata.from_dict(old)
    assert (meta.reference_profile, meta.offer_cost, meta.metrics.train) == (None, None, {})
    assert meta.metrics.cv == current["metrics"]["cv"] and meta.threshold == current["threshold"]
    assert migrate(current) is current  # the current layout passes through untouched


# The keys a format-1 writer could leave out.
LATER_KEYS = ("excluded", "reference_profile", "offer_cost", "upgrade_value", "events")


@pytest.mark.parametrize("drop", ["threshold", "schema"])
def test_metadata_without_threshold_or_schema_says_to_retrain(gbm_bundle, tmp_path, drop):
    with zipfile.ZipFile(gbm_bundle) as z:
        meta = json.loads(z.read(bundle.METADATA_FILE))
    meta.pop(drop)
    old = _rewrite(gbm_bundle, tmp_path / "old.zip", **{bundle.METADATA_FILE: json.dumps(meta).encode()})
    with pytest.raises(InputError, match=f"no {drop}.*retrain"):
        bundle.load_bundle(old)
    meta = {**json.loads(zipfile.ZipFile(gbm_bundle).read(bundle.METADATA_FILE)), "threshold": "high"}
    bad = _rewrite(gbm_bundle, tmp_path / "bad.zip", **{bundle.METADATA_FILE: json.dumps(meta).encode()})
    with pytest.raises(InputError, match="retrain"):
        bundle.read_metadata(bad)


def test_altered_model_is_refused(gbm_bundle, tmp_path):
    with zipfile.ZipFile(gbm_bundle) as z:
        blob = bytearray(z.read(bundle.PIPELINE_FILE))
    blob[len(blob) // 2] ^= 0xFF
    bad = _rewrite(gbm_bundle, tmp_path / "bad.zip", **{bundle.PIPELINE_FILE: bytes(blob)})
    with pytest.raises(InputError, match="altered"):
        bundle.load_bundle(bad)


def _swap_model(path, dest, obj):
    """A copy of the bundle with another object inside and a checksum that matches it."""
    blob = sio.dumps(obj)
    with zipfile.ZipFile(path) as z:
        meta = json.loads(z.read(bundle.METADATA_FILE))
    meta["pipeline_sha256"] = hashlib.sha256(blob).hexdigest()
    return _rewrite(
        path, dest, **{bundle.PIPELINE_FILE: blob, bundle.METADATA_FILE: json.dumps(meta).encode()}
    )


def test_untrusted_type_is_refused_even_with_a_matching_checksum(gbm_bundle, tmp_path):
    bad = _swap_model(gbm_bundle, tmp_path / "foreign.zip", FunctionTransformer(func=print))
    with pytest.raises(InputError, match="untrusted type"):
        bundle.load_bundle(bad)


def test_a_bundle_without_a_classifier_is_refused(gbm_bundle, tmp_path):
    bad = _swap_model(gbm_bundle, tmp_path / "scaler.zip", MinMaxScaler().fit(np.eye(3)))
    with pytest.raises(InputError, match="not a classifier"):
        bundle.load_bundle(bad)


def test_pickle_and_other_files_are_refused(tmp_path):
    pk = tmp_path / "model.pkl"
    pk.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(InputError, match="pickle"):
        bundle.load_bundle(pk)
    txt = tmp_path / "model.zip"
    txt.write_text("hello")
    with pytest.raises(InputError, match="not a model bundle"):
        bundle.load_bundle(txt)
    with pytest.raises(InputError, match="no such"):
        bundle.load_bundle(tmp_path / "missing.zip")


def test_incompatible_versions_are_refused(gbm_bundle, tmp_path):
    with zipfile.ZipFile(gbm_bundle) as z:
        meta = json.loads(z.read(bundle.METADATA_FILE))
    meta["versions"]["scikit-learn"] = "0.24.2"
    bad = _rewrite(gbm_bundle, tmp_path / "old.zip", **{bundle.METADATA_FILE: json.dumps(meta).encode()})
    with pytest.raises(InputError, match="scikit-learn 0.24.2"):
        bundle.load_bundle(bad)
    meta["format_version"] = 99
    bad = _rewrite(gbm_bundle, tmp_path / "future.zip", **{bundle.METADATA_FILE: json.dumps(meta).encode()})
    with pytest.raises(InputError, match="format 99"):
        bundle.load_bundle(bad)


def test_reference_recipe_saves_and_loads(tmp_path):
    ds_frame = synthetic_frame(300)
    X = dataset.coerce(
        ds_frame.drop(columns="purchased"), dataset.infer_kinds(ds_frame.drop(columns="purchased"))
    )
    ref = models.build_reference().fit(X, ds_frame["purchased"].to_numpy())
    schema = Schema.infer(X, dataset.infer_kinds(X), "purchased", "1", "0", None)
    path = bundle.save_bundle(
        tmp_path / "ref.zip", ref, {"schema": schema.to_dict(), "threshold": 0.5}, "card"
    )
    loaded = bundle.load_bundle(path)
    assert loaded.card == "card"
    np.testing.assert_array_equal(loaded.pipeline.predict_proba(X), ref.predict_proba(X))
