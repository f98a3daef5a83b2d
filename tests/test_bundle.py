"""The model bundle: round trip, model card, and refusal of tampered, foreign and pickled files."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler

from conftest import synthetic_frame
from upgrade_predictor import bundle, config, dataset, models, profile
from upgrade_predictor.errors import InputError


def make_bundle(
    folder: Path,
    family: str = "gbm",
    strategy: str = "none",
    calibrate: bool = False,
    n: int = 800,
    threshold: float = 0.4,
    id_column: str | None = None,
) -> Path:
    """Fit a small pipeline on a synthetic frame and save it as training does."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = synthetic_frame(n, seed=1)
    if id_column:
        frame.insert(0, id_column, [f"u{i}" for i in range(n)])
    csv = folder / "train.csv"
    frame.to_csv(csv, index=False)
    ds = dataset.load_dataset(csv, id_column=id_column)
    pipe = models.build_pipeline(ds.schema, family, strategy)
    est = models.calibrated(pipe) if calibrate else pipe
    est.fit(ds.X, ds.y)
    p = est.predict_proba(ds.X)[:, 1]
    meta = {
        "schema": ds.schema.to_dict(),
        "threshold": threshold,
        "key": f"{family}/{strategy}",
        "family": family,
        "strategy": strategy,
        "calibrated": calibrate,
        "training": {
            "source": ds.source,
            "fingerprint": ds.fingerprint,
            "rows": ds.n,
            "positive_share": float(ds.y.mean()),
        },
        "reference_profile": profile.reference_profile(ds.X, p, ds.schema),
    }
    return bundle.save_bundle(folder / f"{family}_{strategy}{'_cal' if calibrate else ''}.zip", est, meta, "")


@pytest.fixture(scope="module")
def gbm_bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"))


def _rewrite(src: Path, dst: Path, **replace) -> Path:
    with zipfile.ZipFile(src) as z:
        files = {n: z.read(n) for n in z.namelist()}
    files.update(replace)
    with zipfile.ZipFile(dst, "w") as z:
        for name, blob in files.items():
            z.writestr(name, blob)
    return dst


def test_round_trip_keeps_predictions_and_writes_a_card(gbm_bundle):
    b = bundle.load_bundle(gbm_bundle)
    X = dataset.coerce(
        synthetic_frame(50, seed=3).drop(columns="purchased"), {c.name: c.kind for c in b.schema.columns}
    )
    p = b.pipeline.predict_proba(X)[:, 1]
    assert p.shape == (50,) and np.all((p >= 0) & (p <= 1))
    assert b.threshold == 0.4
    assert "Decision threshold: 0.4" in b.card and "Caveats" in b.card
    assert b.metadata["pipeline_sha256"] and b.metadata["versions"]["scikit-learn"]


def test_altered_model_is_refused(gbm_bundle, tmp_path):
    with zipfile.ZipFile(gbm_bundle) as z:
        blob = bytearray(z.read(bundle.PIPELINE_FILE))
    blob[len(blob) // 2] ^= 0xFF
    bad = _rewrite(gbm_bundle, tmp_path / "bad.zip", **{bundle.PIPELINE_FILE: bytes(blob)})
    with pytest.raises(InputError, match="altered"):
        bundle.load_bundle(bad)


def _swap_model(path, dest, obj):
    """A copy of the bundle with another object inside and a checksum that matches it."""
    import hashlib

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


@pytest.mark.parametrize("family", config.FAMILIES)
def test_every_family_saves_and_loads(family, tmp_path):
    path = make_bundle(
        tmp_path,
        family=family,
        strategy="smote" if family == "gbm" else "none",
        calibrate=family == "gbm",
        n=300,
    )
    assert bundle.load_bundle(path).pipeline is not None


def test_reference_recipe_saves_and_loads(tmp_path):
    ds_frame = synthetic_frame(300)
    X = dataset.coerce(
        ds_frame.drop(columns="purchased"), dataset.infer_kinds(ds_frame.drop(columns="purchased"))
    )
    ref = models.build_reference().fit(X, ds_frame["purchased"].to_numpy())
    path = bundle.save_bundle(tmp_path / "ref.zip", ref, {"schema": {}, "threshold": 0.5}, "card")
    assert bundle.load_bundle(path).card == "card"
