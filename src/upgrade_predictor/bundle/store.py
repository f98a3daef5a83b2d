"""Saving and loading a bundle: the fitted pipeline (skops, never pickle), its metadata and card in one
zip, written atomically and read back only after the archive, signature and trust checks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import skops.io as sio

from ..errors import InputError
from ..files import write_atomic
from ..schema import Schema
from .archive import Opened, library_versions, parse, read_file, write_zip
from .card import model_card
from .checks import check_types
from .layout import CARD_FILE, FORMAT, FORMAT_VERSION, MEMBER_LIMITS, METADATA_FILE, MIB, PIPELINE_FILE
from .metadata import BundleMetadata
from .signing import verify
from .trust import untrusted_in


@dataclass
class Bundle:
    pipeline: Any
    metadata: BundleMetadata
    card: str
    file_sha256: str | None = None  # of the exact bytes loaded (and verified, when a key was given)

    def __post_init__(self) -> None:
        if isinstance(self.metadata, dict):  # read strictly, as a bundle's metadata.json is
            self.metadata = BundleMetadata.from_dict(self.metadata)

    @property
    def schema(self) -> Schema:
        return self.metadata.schema

    @property
    def threshold(self) -> float:
        return self.metadata.threshold


def save_bundle(
    path: str | Path, pipeline: Any, metadata: BundleMetadata | dict[str, Any], card: str
) -> Path:
    """Write the bundle atomically (temp file, then rename); an empty card is written from the metadata.

    `metadata` is typed, or a dict read as BundleMetadata.from_dict reads a file; format, creation
    time, library versions, the pipeline's checksum and the manifest are filled in here."""
    path = Path(path)
    blob = sio.dumps(pipeline)
    extra = untrusted_in(blob)
    if extra:  # a pipeline we could not load back is a bug here, not a user error
        raise RuntimeError(f"pipeline holds types missing from bundle.trust.TRUSTED_TYPES: {extra}")
    meta = BundleMetadata.from_dict(metadata) if isinstance(metadata, dict) else metadata
    meta = replace(
        meta,
        format=FORMAT,
        format_version=FORMAT_VERSION,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=library_versions(),
        pipeline_sha256=hashlib.sha256(blob).hexdigest(),
    )
    written = meta.to_dict()
    try:
        check_types(written)
    except TypeError as e:  # metadata every load would refuse is a bug of its writer
        raise RuntimeError(f"{path}: the bundle's metadata would not load back ({e})") from None
    members = {
        PIPELINE_FILE: blob,
        METADATA_FILE: json.dumps(written, indent=2, default=str).encode(),
        CARD_FILE: (card or model_card(meta)).encode(),
    }
    for name, data in members.items():
        if len(data) > MEMBER_LIMITS[name]:  # it would be written, then refused by every load
            raise InputError(
                f"{path}: the model's {name} is {len(data) / MIB:.0f} MiB, over the "
                f"{MEMBER_LIMITS[name] // MIB} MiB a bundle may hold; choose a smaller model family"
            )
    write_atomic(path, lambda f: write_zip(f, members))
    return path


def read_metadata(path: str | Path, verify_key: Path | None = None) -> BundleMetadata:
    """The bundle's metadata after the integrity (and, with a key, signature) checks, without
    deserialising the model."""
    return _open(Path(path), verify_key).metadata


def load_bundle(path: str | Path, verify_key: Path | None = None) -> Bundle:
    """Load a bundle, refusing pickles, damaged or altered files, untrusted types and incompatible
    versions; with `verify_key` (a PEM public key), also a bundle not signed by its private key."""
    path = Path(path)
    opened = _open(path, verify_key)
    blob = opened.pipeline
    extra = untrusted_in(blob)
    if extra:
        raise InputError(
            f"{path}: the model asks for untrusted type(s) {', '.join(extra)}; refusing to load it"
        )
    try:
        pipeline = sio.loads(blob, trusted=sio.get_untrusted_types(data=blob))
    except Exception as e:  # skops raises many types for corrupt content
        raise InputError(f"{path}: the model could not be read ({type(e).__name__}: {e})") from None
    if not hasattr(pipeline, "predict_proba"):
        raise InputError(
            f"{path}: the bundle holds a {type(pipeline).__name__}, not a classifier with probabilities"
        )
    return Bundle(pipeline, opened.metadata, opened.card, opened.file_sha256)


def _open(path: Path, verify_key: Path | None) -> Opened:
    data = read_file(path)
    if verify_key is not None:
        verify(path, data, verify_key)
    return parse(path, data)
