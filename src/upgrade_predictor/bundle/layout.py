"""What a bundle file holds: its format, its members and how large each may inflate."""

from __future__ import annotations

FORMAT = "upgrade-predictor-bundle"
FORMAT_VERSION = 2  # 2: MANIFEST.json and its digest in the zip comment; 1: pipeline_sha256 only
READABLE_VERSIONS = (1, 2)
PIPELINE_FILE = "pipeline.skops"
METADATA_FILE = "metadata.json"
CARD_FILE = "MODEL_CARD.md"
MANIFEST_FILE = "MANIFEST.json"

MIB = 1 << 20
# The most each member may inflate to. Real pipelines are a few MB; these leave two orders of margin
# while keeping a decompression bomb far from the machine's memory.
MEMBER_LIMITS = {
    PIPELINE_FILE: 512 * MIB,
    METADATA_FILE: 16 * MIB,
    CARD_FILE: 1 * MIB,
    MANIFEST_FILE: 64 * 1024,
}
MAX_INFLATED_BYTES = sum(MEMBER_LIMITS.values())
MAX_BUNDLE_BYTES = MAX_INFLATED_BYTES + MIB  # stored members plus the zip's own headers
MAX_JSON_DEPTH = 64
COMMENT_PREFIX = b"upgrade-predictor manifest sha256:"
