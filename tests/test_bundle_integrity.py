"""Tamper evidence of the model bundle: the manifest, bounded reading, readable refusals, and signatures."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import struct
import sys
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import fit_bundle, synthetic_frame
from test_bundle import _rewrite, new_users
from upgrade_predictor import bundle
from upgrade_predictor.api import TrainConfig
from upgrade_predictor.errors import InputError
from upgrade_predictor.scoring.scorer import Scorer
from upgrade_predictor.training.train import run_training

GIB = 1 << 30


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    return fit_bundle(tmp_path_factory.mktemp("integrity"), n=400)


@pytest.fixture(scope="module")
def model(fitted) -> Path:
    return fitted[0]


def write_keys(folder: Path, name: str, curve: ec.EllipticCurve | None = None) -> tuple[Path, Path]:
    """A PEM private key and its public key, as `openssl ecparam -genkey` and `openssl ec -pubout` write."""
    key = ec.generate_private_key(curve or ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    return write_keys(tmp_path_factory.mktemp("keys"), "signer")


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory) -> tuple[Path, Path]:
    return write_keys(tmp_path_factory.mktemp("other"), "other")


@pytest.fixture
def signed(model, keys, tmp_path) -> Path:
    """A signed copy of the bundle in its own folder."""
    path = shutil.copy(model, tmp_path / "model.zip")
    sig = bundle.sign_bundle(path, keys[0])
    assert sig == tmp_path / "model.zip.sig"
    return Path(path)


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def edited_metadata(path: Path, **changes) -> bytes:
    meta = json.loads(members(path)[bundle.METADATA_FILE])
    meta.update(changes)
    return json.dumps(meta).encode()


def with_signature_of(original: Path, forged: Path) -> Path:
    shutil.copy(bundle.signature_path(original), bundle.signature_path(forged))
    return forged


# --- the manifest -----------------------------------------------------------------------------------


def test_manifest_lists_every_member_and_its_digest_is_in_the_comment(model):
    files = members(model)
    manifest = json.loads(files[bundle.MANIFEST_FILE])
    assert manifest["format_version"] == bundle.FORMAT_VERSION == 2
    listed = manifest["members"]
    assert set(listed) == {bundle.PIPELINE_FILE, bundle.METADATA_FILE, bundle.CARD_FILE}
    for name, entry in listed.items():
        assert entry == {"sha256": hashlib.sha256(files[name]).hexdigest(), "size": len(files[name])}
    comment = zipfile.ZipFile(model).comment.decode()
    assert comment.endswith(hashlib.sha256(files[bundle.MANIFEST_FILE]).hexdigest())


@pytest.mark.parametrize(
    "edit",
    ["threshold", "nullable", "card", "manifest"],
)
def test_a_hand_edited_member_is_refused(model, tmp_path, edit):
    """The edits of the sweep: every user a "yes", a relaxed input contract, a changed card, and a
    manifest edited to match without its digest."""
    if edit == "threshold":
        replace = {bundle.METADATA_FILE: edited_metadata(model, threshold=0.0)}
    elif edit == "nullable":
        schema = json.loads(members(model)[bundle.METADATA_FILE])["schema"]
        for c in schema["columns"]:
            c["nullable"] = True
        replace = {bundle.METADATA_FILE: edited_metadata(model, schema=schema)}
    elif edit == "card":
        replace = {bundle.CARD_FILE: b"# A better model\n"}
    else:
        meta = edited_metadata(model, threshold=0.0)
        manifest = json.loads(members(model)[bundle.MANIFEST_FILE])
        manifest["members"][bundle.METADATA_FILE] = {
            "sha256": hashlib.sha256(meta).hexdigest(),
            "size": len(meta),
        }
        replace = {bundle.METADATA_FILE: meta, bundle.MANIFEST_FILE: json.dumps(manifest).encode()}
    bad = _rewrite(model, tmp_path / "bad.zip", reseal=False, **replace)
    for read in (bundle.load_bundle, bundle.read_metadata, Scorer.load):
        with pytest.raises(InputError, match="altered after training"):
            read(bad)


def test_a_lost_manifest_or_an_unknown_member_is_refused(model, tmp_path):
    files = members(model)
    stripped = tmp_path / "stripped.zip"
    with zipfile.ZipFile(stripped, "w") as z:
        for name, data in files.items():
            if name != bundle.MANIFEST_FILE:
                z.writestr(name, data)
    with pytest.raises(InputError, match="format 2 but no MANIFEST.json"):
        bundle.load_bundle(stripped)
    extra = _rewrite(model, tmp_path / "extra.zip", reseal=False, **{"payload.py": b"print(1)"})
    with pytest.raises(InputError, match="never has .'payload.py'"):
        bundle.load_bundle(extra)
    twice = tmp_path / "twice.zip"
    with zipfile.ZipFile(twice, "w") as z, pytest.warns(UserWarning, match="Duplicate"):
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(bundle.METADATA_FILE, edited_metadata(model, threshold=0.0))
    with pytest.raises(InputError, match="same member twice"):
        bundle.load_bundle(twice)


def test_a_forger_who_recomputes_every_hash_is_caught_only_by_the_signature(model, keys, tmp_path):
    """The documented limit: hashes kept in the file cannot stop someone who rewrites them."""
    signed = shutil.copy(model, tmp_path / "model.zip")
    bundle.sign_bundle(signed, keys[0])
    other_path, other = fit_bundle(tmp_path / "other", family="logreg", n=300)
    blob = members(other_path)[bundle.PIPELINE_FILE]
    forged = _rewrite(
        model,
        tmp_path / "forged.zip",
        **{
            bundle.PIPELINE_FILE: blob,
            bundle.METADATA_FILE: edited_metadata(
                model, pipeline_sha256=hashlib.sha256(blob).hexdigest(), threshold=0.0
            ),
        },
    )
    loaded = bundle.load_bundle(forged)  # no key: the forgery loads
    X = new_users(loaded.schema)
    np.testing.assert_array_equal(loaded.pipeline.predict_proba(X), other.predict_proba(X))
    assert loaded.threshold == 0.0
    with_signature_of(Path(signed), forged)
    for read in (bundle.load_bundle, bundle.read_metadata, Scorer.load):
        with pytest.raises(InputError, match="changed after it was signed"):
            read(forged, verify_key=keys[1])


# --- bounded reading --------------------------------------------------------------------------------


def raw_zip(entries: list[tuple[str, bytes, int, int]], comment: bytes = b"") -> bytes:
    """A zip written by hand: (name, bytes as written, declared inflated size, method 0 stored or 8
    deflated). zipfile cannot write a header that lies, and a bomb is cheapest built from raw deflate.
    Deflated members get CRC 0: they are refused before it is ever checked, or because of it."""
    out, central = bytearray(), bytearray()
    for name, data, size, method in entries:
        offset, encoded, crc = len(out), name.encode(), zlib.crc32(data) if method == 0 else 0
        fields = (method, 0, 33, crc, len(data), size, len(encoded), 0)  # 33: 1980-01-01
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, *fields) + encoded + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, *fields, 0, 0, 0, 0, offset)
        central += encoded
    n = len(entries)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(central), len(out), len(comment))
    return bytes(out + central + end + comment)


def zeros_deflated(mib: int) -> bytes:
    """Raw deflate of `mib` MiB of zeros, built in milliseconds: after a full flush the stream for each
    further MiB is the same bytes, so one block is compressed and repeated."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(b"\0" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15)
    return block * mib + end.compress(b"") + end.flush()


def refused(fn) -> tuple[int, str]:
    """fn must raise InputError: the peak Python memory while it ran, and the message."""
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as e:
            fn()
        return tracemalloc.get_traced_memory()[1], str(e.value)
    finally:
        tracemalloc.stop()


def test_zip_bomb_is_refused_without_inflating_it(model, tmp_path):
    meta = members(model)[bundle.METADATA_FILE]
    bomb = zeros_deflated(1024)
    assert len(bomb) < 2 << 20  # about 1 MB on disk ...
    honest = tmp_path / "honest.zip"  # ... declaring the 1 GiB it inflates to
    honest.write_bytes(
        raw_zip([(bundle.METADATA_FILE, meta, len(meta), 0), (bundle.PIPELINE_FILE, bomb, GIB, 8)])
    )
    peak, message = refused(lambda: bundle.load_bundle(honest))
    assert peak < 16 << 20 and "inflate past the 512 MiB" in message
    lying = tmp_path / "lying.zip"  # ... or declaring 1000 bytes: read no further than that
    lying.write_bytes(
        raw_zip([(bundle.PIPELINE_FILE, bomb, 1000, 8), (bundle.METADATA_FILE, meta, len(meta), 0)])
    )
    peak, message = refused(lambda: bundle.load_bundle(lying))
    assert peak < 16 << 20 and "damaged" in message


def test_a_member_whose_size_disagrees_with_the_manifest_is_never_inflated(model, tmp_path):
    """Within the limits, a swapped-in bomb is still refused before it inflates: the manifest, read
    first, records another size."""
    files = members(model)
    bomb = zeros_deflated(400)
    bad = tmp_path / "swapped.zip"
    bad.write_bytes(
        raw_zip(
            [
                (bundle.PIPELINE_FILE, bomb, 400 << 20, 8),
                *[
                    (n, files[n], len(files[n]), 0)
                    for n in (bundle.METADATA_FILE, bundle.CARD_FILE, bundle.MANIFEST_FILE)
                ],
            ],
            zipfile.ZipFile(model).comment,
        )
    )
    peak, message = refused(lambda: bundle.load_bundle(bad))
    assert peak < 16 << 20 and "pipeline.skops does not have the size MANIFEST.json records" in message


# --- readable refusals ------------------------------------------------------------------------------


def test_a_flipped_byte_is_refused_with_a_sentence(model, tmp_path):
    data = bytearray(model.read_bytes())
    with zipfile.ZipFile(model) as z:
        info = z.getinfo(bundle.PIPELINE_FILE)
    data[info.header_offset + 30 + len(info.filename) + info.compress_size // 2] ^= 0x55
    bad = tmp_path / "flipped.zip"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match="damaged"):
        bundle.load_bundle(bad)


def test_any_flipped_byte_loads_the_same_model_or_is_refused(model, keys, tmp_path):
    """A sweep over the file: a flip either leaves what is loaded unchanged (zip fields nobody reads,
    such as timestamps) or is an InputError, never a traceback; under a signature every flip is refused."""
    original = model.read_bytes()
    expected = bundle.load_bundle(model)
    X = new_users(expected.schema, n=20)
    p = expected.pipeline.predict_proba(X)
    bad = tmp_path / "model.zip"
    bad.write_bytes(original)
    bundle.sign_bundle(bad, keys[0])
    rng = random.Random(0)
    positions = rng.sample(range(len(original)), 60) + list(range(len(original) - 120, len(original)))
    for i in positions:
        data = bytearray(original)
        data[i] ^= 1 << rng.randrange(8)
        bad.write_bytes(bytes(data))
        try:
            b = bundle.load_bundle(bad)
        except InputError:
            pass
        else:
            assert b.metadata == expected.metadata and b.card == expected.card, f"byte {i}"
            np.testing.assert_array_equal(b.pipeline.predict_proba(X), p)
        with pytest.raises(InputError):
            bundle.read_metadata(bad, verify_key=keys[1])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"threshold": "high"}, "'threshold' is 'high'"),
        ({"threshold": True}, "'threshold' is True"),
        ({"threshold": 7}, "not a probability"),
        ({"schema": None}, "'schema' is None"),
        ({"schema": "columns"}, "'schema' is 'columns'"),
        ({"training": [1]}, "'training' is \\[1\\]"),
        ({"metrics": {"test": {"f1": "good"}}}, "metrics.test.f1"),
        ({"reference_profile": 3}, "'reference_profile' is 3"),
        ({"calibrated": "yes"}, "'calibrated'"),
    ],
)
def test_metadata_of_the_wrong_type_is_refused(model, tmp_path, change, message):
    bad = _rewrite(model, tmp_path / "bad.zip", **{bundle.METADATA_FILE: edited_metadata(model, **change)})
    with pytest.raises(InputError, match=message + ".*retrain"):
        bundle.load_bundle(bad)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ({"nullable": "yes"}, "nullable"),
        ({"kind": "text"}, "kind"),
        ({"minimum": "0"}, "minimum"),
        ({"categories": [1, 2]}, "categories"),
        ({"name": 5}, "name"),
    ],
)
def test_schema_columns_of_the_wrong_type_are_refused(model, tmp_path, column, message):
    schema = json.loads(members(model)[bundle.METADATA_FILE])["schema"]
    schema["columns"][0].update(column)
    bad = _rewrite(
        model, tmp_path / "bad.zip", **{bundle.METADATA_FILE: edited_metadata(model, schema=schema)}
    )
    with pytest.raises(InputError, match=f"schema.columns\\[0\\].{message}"):
        bundle.read_metadata(bad)


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_metadata_is_refused(model, tmp_path, depth):
    deep = edited_metadata(model)[:-1] + b', "note": ' + b"[" * depth + b"]" * depth + b"}"
    bad = _rewrite(model, tmp_path / "deep.zip", **{bundle.METADATA_FILE: deep})
    with pytest.raises(InputError, match="nests deeper than 64 levels"):
        bundle.load_bundle(bad)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [(b"[1, 2]", "holds a JSON list"), (b"\xff\xfe", "damaged"), (b'{"schema": ', "damaged")],
)
def test_metadata_that_is_not_a_json_object_is_refused(model, tmp_path, metadata, message):
    bad = _rewrite(model, tmp_path / "bad.zip", **{bundle.METADATA_FILE: metadata})
    with pytest.raises(InputError, match=message):
        bundle.load_bundle(bad)


def test_a_folder_or_a_special_file_is_refused(model, tmp_path):
    with pytest.raises(InputError, match="a folder, not a model bundle; give the bundle file"):
        bundle.load_bundle(tmp_path)
    shutil.copy(model, tmp_path / "model.zip")
    with pytest.raises(InputError, match=f"use {tmp_path / 'model.zip'}"):
        Scorer.load(tmp_path)
    pipe = tmp_path / "pipe.zip"
    os.mkfifo(pipe)  # opening it would wait for a writer forever
    for special in (Path("/dev/zero"), pipe):
        with pytest.raises(InputError, match="not a regular file"):
            bundle.load_bundle(special)


# --- format 1 ---------------------------------------------------------------------------------------


def test_format_1_bundles_load_with_the_checks_they_support(model, tmp_path):
    files = members(model)
    meta = json.loads(files[bundle.METADATA_FILE])

    def v1(name: str, **changes) -> Path:
        path = tmp_path / name
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(bundle.PIPELINE_FILE, changes.pop("pipeline", files[bundle.PIPELINE_FILE]))
            z.writestr(bundle.METADATA_FILE, json.dumps({**meta, "format_version": 1, **changes}))
            z.writestr(bundle.CARD_FILE, files[bundle.CARD_FILE])
        return path

    old = bundle.load_bundle(v1("old.zip"))
    new = bundle.load_bundle(model)
    X = new_users(old.schema)
    np.testing.assert_array_equal(old.pipeline.predict_proba(X), new.pipeline.predict_proba(X))
    with pytest.raises(InputError, match="altered"):  # the pipeline checksum still applies
        bundle.load_bundle(v1("pipeline.zip", pipeline=files[bundle.PIPELINE_FILE][:-1] + b"x"))
    # Its metadata had no checksum: an edit loads (sign format-1 bundles to protect them).
    assert bundle.read_metadata(v1("threshold.zip", threshold=0.0)).threshold == 0.0


# --- signatures -------------------------------------------------------------------------------------


def test_a_signed_bundle_verifies_and_predicts_the_same(signed, keys, fitted, tmp_path):
    scorer = Scorer.load(signed, verify_key=keys[1])
    X = new_users(scorer.schema)
    np.testing.assert_array_equal(scorer.predict(X), fitted[1].predict_proba(X)[:, 1])
    assert scorer.bundle.file_sha256 == hashlib.sha256(signed.read_bytes()).hexdigest()
    moved = tmp_path / "elsewhere" / "renamed.zip"  # the signature names no path
    moved.parent.mkdir()
    shutil.copy(signed, moved)
    shutil.copy(bundle.signature_path(signed), bundle.signature_path(moved))
    assert bundle.read_metadata(moved, verify_key=keys[1]).threshold == 0.4


def test_without_a_valid_signature_a_verify_key_refuses_the_bundle(signed, model, keys, other_keys, tmp_path):
    unsigned = shutil.copy(model, tmp_path / "unsigned.zip")
    with pytest.raises(InputError, match="not signed \\(unsigned.zip.sig is missing"):
        bundle.load_bundle(unsigned, verify_key=keys[1])
    with pytest.raises(InputError, match="signed by another key"):
        bundle.load_bundle(signed, verify_key=other_keys[1])
    bundle.sign_bundle(unsigned, other_keys[0])  # a signature by another key, relabelled as ours
    sig = json.loads(bundle.signature_path(unsigned).read_text())
    ours = json.loads(bundle.signature_path(signed).read_text())
    sig["verificationMaterial"] = ours["verificationMaterial"]
    bundle.signature_path(unsigned).write_text(json.dumps(sig))
    with pytest.raises(InputError, match="not valid for --verify-key"):
        bundle.load_bundle(unsigned, verify_key=keys[1])
    bundle.signature_path(unsigned).write_text("not a signature")
    with pytest.raises(InputError, match="not a bundle signature"):
        bundle.load_bundle(unsigned, verify_key=keys[1])
    threshold = _rewrite(
        signed, tmp_path / "zero.zip", **{bundle.METADATA_FILE: edited_metadata(signed, threshold=0.0)}
    )
    with pytest.raises(InputError, match="changed after it was signed"):
        bundle.load_bundle(with_signature_of(signed, threshold), verify_key=keys[1])


def test_bad_key_files_are_refused_with_what_to_do(signed, keys, tmp_path):
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(
        rsa.generate_private_key(65537, 2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    locked = tmp_path / "locked.pem"
    locked.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    odd, _ = write_keys(tmp_path, "k1", ec.SECP256K1())
    text = tmp_path / "notes.txt"
    text.write_text("not a key")
    before = bundle.signature_path(signed).read_bytes()
    for key, message in [
        (tmp_path / "missing.pem", "no such key file"),
        (text, "not a PEM private key"),
        (signed, "over 64 KiB, not a PEM key file"),
        (keys[1], "a public key; signing needs the elliptic-curve private key"),
        (rsa_key, "a key of type RSA"),
        (odd, "a key of type secp256k1"),
        (locked, "encrypted"),
    ]:
        with pytest.raises(InputError, match=message):
            bundle.sign_bundle(signed, key)
    assert bundle.signature_path(signed).read_bytes() == before
    with pytest.raises(
        InputError, match="--verify-key .*a private key; verifying needs the signer's public key"
    ):
        bundle.load_bundle(signed, verify_key=keys[0])
    with pytest.raises(InputError, match="--verify-key .*no such key file"):
        bundle.load_bundle(signed, verify_key=tmp_path / "none.pub")


def test_an_altered_bundle_is_never_signed(model, keys, tmp_path):
    bad = _rewrite(model, tmp_path / "bad.zip", reseal=False, **{bundle.CARD_FILE: b"edited"})
    with pytest.raises(InputError, match="altered"):
        bundle.sign_bundle(bad, keys[0])
    assert not bundle.signature_path(bad).exists()


def test_without_the_sign_extra_the_message_says_how_to_install_it(signed, keys, monkeypatch):
    monkeypatch.setitem(sys.modules, "model_signing", None)
    with pytest.raises(InputError, match=r"pip install 'upgrade-predictor\[sign\]'"):
        bundle.load_bundle(signed, verify_key=keys[1])
    with pytest.raises(InputError, match=r"pip install 'upgrade-predictor\[sign\]'"):
        bundle.check_signing_key(keys[0])  # before training, not after it
    bundle.load_bundle(signed)  # loading without a key never needs it


def test_training_with_a_sign_key_publishes_signed_bundles(keys, other_keys, tmp_path):
    synthetic_frame(300).to_csv(tmp_path / "d.csv", index=False)
    cfg = TrainConfig(
        data=tmp_path / "d.csv",
        out=tmp_path / "run",
        budget="quick",
        report=False,
        families=["logreg"],
        strategies=["none"],
        jobs=1,
        sign_key=keys[0],
    )
    run = run_training(cfg)
    bundles = sorted(run.glob("*.zip"))
    assert bundles and all(bundle.signature_path(b).is_file() for b in bundles)
    assert not list(run.glob(".*.tmp"))
    for b in bundles:
        Scorer.load(b, verify_key=keys[1])
        with pytest.raises(InputError, match="another key"):
            Scorer.load(b, verify_key=other_keys[1])
