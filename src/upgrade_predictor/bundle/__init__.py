"""The model bundle: one zip holding the fitted pipeline (skops, never pickle), its metadata and card.

layout: the format, members and size limits; archive: the zip and its manifest; trust: the types a
pipeline may hold; signing: signatures beside the bundle; metadata: the typed metadata.json (checks:
its JSON types); card: the model card; store: saving and loading."""

from .layout import CARD_FILE, FORMAT, FORMAT_VERSION, MANIFEST_FILE, METADATA_FILE, PIPELINE_FILE
from .metadata import BundleMetadata, EventsInfo, ModelMetrics, TrainingInfo
from .signing import check_signing_key, sign_bundle, signature_path
from .store import Bundle, load_bundle, read_metadata, save_bundle

__all__ = [
    "CARD_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "METADATA_FILE",
    "PIPELINE_FILE",
    "Bundle",
    "BundleMetadata",
    "EventsInfo",
    "ModelMetrics",
    "TrainingInfo",
    "check_signing_key",
    "load_bundle",
    "read_metadata",
    "save_bundle",
    "sign_bundle",
    "signature_path",
]
