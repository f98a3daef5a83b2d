"""The bundle's zip: writing its members with MANIFEST.json, and reading them back with every check that
does not deserialise the model.

MANIFEST.json lists the sha256 and size of every other member, and the zip's comment holds the
manifest's own sha256: that catches corruption and hand edits, but not a forger who recomputes the
hashes, since they live in the same file (signing.py covers that). Every member is read with a size
limit, so a small file that inflates to gigabytes is refused without being inflated."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import io
import json
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import InputError
from ..version import __version__
from .layout import (
    CARD_FILE,
    COMMENT_PREFIX,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_FILE,
    MAX_BUNDLE_BYTES,
    MAX_INFLATED_BYTES,
    MAX_JSON_DEPTH,
    MEMBER_LIMITS,
    METADATA_FILE,
    MIB,
    PIPELINE_FILE,
    READABLE_VERSIONS,
)
from .metadata import BundleMetadata


def library_versions() -> dict[str, str]:
    """The versions of the libraries a bundle's model depends on, as its metadata records them."""
    out = {}
    for name in ("scikit-learn", "imbalanced-learn", "lightgbm", "numpy", "pandas", "skops"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    out["upgrade-predictor"] = __version__
    return out


def manifest_of(members: dict[str, bytes]) -> bytes:
    """MANIFEST.json: the sha256 and size of every other member."""
    listed = {n: {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for n, b in members.items()}
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "members": listed}
    return json.dumps(doc, indent=2, sort_keys=True).encode()


def write_zip(f: IO[bytes], members: dict[str, bytes]) -> None:
    """The members, then the manifest, with the manifest's digest in the zip's comment."""
    manifest = manifest_of(members)
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        z.writestr(MANIFEST_FILE, manifest)
        z.comment = COMMENT_PREFIX + hashlib.sha256(manifest).hexdigest().encode()


@dataclass
class Opened:
    """A bundle's members after every check that does not deserialise the model."""

    pipeline: bytes
    metadata: BundleMetadata
    card: str
    file_sha256: str


def read_file(path: Path) -> bytes:
    """The bundle's bytes, read once (every later check sees the same bytes) and within MAX_BUNDLE_BYTES."""
    if path.is_dir():
        inside = path / "model.zip"
        hint = f"; use {inside}" if inside.is_file() else "; give the bundle file (model.zip of a run folder)"
        raise InputError(f"{path}: a folder, not a model bundle{hint}")
    if not path.exists():
        raise InputError(f"{path}: no such model bundle")
    if not path.is_file():  # checked before opening: opening a named pipe would wait for a writer
        raise InputError(f"{path}: not a regular file; give the model bundle (model.zip)")
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise InputError(f"{path}: not a regular file; give the model bundle (model.zip)")
            if st.st_size > MAX_BUNDLE_BYTES:
                raise InputError(_too_large(path, st.st_size))
            data = f.read(st.st_size + 1)  # read(n) reserves n bytes up front: ask for what is there
    except OSError as e:
        raise InputError(f"{path}: the model bundle cannot be read ({e.strerror})") from None
    if len(data) != st.st_size:
        raise InputError(f"{path}: the model bundle changed while it was read; try again once it is written")
    if data[:1] == b"\x80":
        raise InputError(
            f"{path}: this is a pickle; pickles can run code when loaded and are never "
            "loaded here. Use a bundle written by 'upgrade-predictor train'"
        )
    if data[:4] != b"PK\x03\x04":
        raise InputError(
            f"{path}: not a model bundle (expected the zip written by 'upgrade-predictor train')"
        )
    return data


def _too_large(path: Path, size: int) -> str:
    return (
        f"{path}: {size / MIB:.0f} MiB, over the {MAX_BUNDLE_BYTES // MIB} MiB a model bundle may be; "
        "not a bundle written by 'upgrade-predictor train'"
    )


def _altered(path: Path, what: str) -> InputError:
    return InputError(
        f"{path}: {what}; the file was altered after training or is damaged. Restore the original or "
        "retrain (sign bundles with --sign-key to detect deliberate forgery)"
    )


# All that zipfile and zlib raise on malformed archives.
_DAMAGED = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    NotImplementedError,
    RuntimeError,
    OverflowError,
)


def _unzip(path: Path, data: bytes) -> dict[str, bytes]:
    """The members, each read with a bounded read and checked against the manifest when there is one.
    The sizes a zip declares are checked first but never trusted alone: whoever made the file wrote them."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            _check_listing(path, infos)
            members: dict[str, bytes] = {}
            listed: dict[str, Any] | None = None
            # The manifest is read first, so that members whose sizes disagree with it never inflate.
            for info in sorted(infos, key=lambda i: i.filename != MANIFEST_FILE):
                members[info.filename] = _bounded_read(path, z, info, MEMBER_LIMITS[info.filename])
                if info.filename == MANIFEST_FILE:
                    sizes = {i.filename: i.file_size for i in infos if i.filename != MANIFEST_FILE}
                    listed = _manifest_entries(path, members[MANIFEST_FILE], z.comment, sizes)
    except _DAMAGED as e:
        raise InputError(
            f"{path}: the bundle is damaged ({type(e).__name__}: {e}); restore it or retrain"
        ) from None
    for name, entry in (listed or {}).items():
        data = members[name]
        if entry.get("size") != len(data) or entry.get("sha256") != hashlib.sha256(data).hexdigest():
            raise _altered(path, f"{name} does not match its checksum in {MANIFEST_FILE}")
    return members


def _check_listing(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse, before anything inflates, members a bundle never has, twice or missing, and declared
    sizes or methods training never writes."""
    names = [i.filename for i in infos]
    unknown = sorted({n for n in names if n not in MEMBER_LIMITS})
    if unknown:
        shown = ", ".join(repr(n[:60]) for n in unknown[:3]) + (" ..." if len(unknown) > 3 else "")
        raise InputError(
            f"{path}: holds file(s) a model bundle never has ({shown}); refusing it. Use a bundle "
            "written by 'upgrade-predictor train'"
        )
    if len(names) != len(set(names)):
        raise _altered(path, "the bundle holds the same member twice")
    if not {PIPELINE_FILE, METADATA_FILE}.issubset(names):
        raise InputError(f"{path}: not a model bundle (no {PIPELINE_FILE} and {METADATA_FILE} inside)")
    for info in infos:
        if info.file_size > MEMBER_LIMITS[info.filename]:
            raise InputError(_inflates(path, info.filename, MEMBER_LIMITS[info.filename]))
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise InputError(
                f"{path}: {info.filename} is encrypted or compressed in a way training never "
                "writes; refusing it"
            )
    if sum(i.file_size for i in infos) > MAX_INFLATED_BYTES:
        raise InputError(_inflates(path, "its members", MAX_INFLATED_BYTES))


def _inflates(path: Path, what: str, limit: int) -> str:
    return (
        f"{path}: {what} would inflate past the {limit // MIB or 1} MiB a bundle may hold (a "
        "decompression bomb or not a bundle); refusing it"
    )


def _bounded_read(path: Path, z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    out = bytearray()
    with z.open(info) as f:
        while chunk := f.read(MIB):
            out += chunk
            if len(out) > limit:
                raise InputError(_inflates(path, info.filename, limit))
            if len(out) > info.file_size:  # zipfile stops at the declared size; never rely on it alone
                raise _altered(path, f"{info.filename} inflates past the size the zip declares")
    return bytes(out)


def _json_object(path: Path, name: str, raw: bytes) -> dict[str, Any]:
    """One JSON object, refused with a sentence when it is not UTF-8 JSON, nests absurdly or is not
    an object."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(
            f"{path}: {name} inside the bundle is damaged ({e}); restore it or retrain"
        ) from None
    except RecursionError:  # the JSON parser recurses once per level
        raise InputError(_too_deep(path, name)) from None
    if _depth(obj) > MAX_JSON_DEPTH:
        raise InputError(_too_deep(path, name))
    if not isinstance(obj, dict):
        raise InputError(
            f"{path}: {name} holds a JSON {type(obj).__name__}, not the object training writes; "
            "not an upgrade-predictor bundle"
        )
    return obj


def _too_deep(path: Path, name: str) -> str:
    return (
        f"{path}: {name} nests deeper than {MAX_JSON_DEPTH} levels, which training never writes; refusing it"
    )


def _depth(obj: Any) -> int:
    """How deeply lists and objects nest (a walk with its own stack: no recursion to exhaust)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            stack.extend((v, level + 1) for v in (node.values() if isinstance(node, dict) else node))
    return deepest


def _manifest_entries(path: Path, manifest: bytes, comment: bytes, sizes: dict[str, int]) -> dict[str, Any]:
    """The manifest's entry per member, once the manifest matches the digest in the zip comment and
    lists exactly the other members, at the sizes the zip declares for them."""
    recorded = (
        comment[len(COMMENT_PREFIX) :].decode("ascii", "replace")
        if comment.startswith(COMMENT_PREFIX)
        else None
    )
    if recorded != hashlib.sha256(manifest).hexdigest():
        raise _altered(path, f"{MANIFEST_FILE} does not match the digest recorded with it")
    doc = _json_object(path, MANIFEST_FILE, manifest)
    listed = doc.get("members")
    if doc.get("format") != FORMAT or not isinstance(listed, dict):
        raise _altered(path, f"{MANIFEST_FILE} is not the manifest training writes")
    if set(listed) != set(sizes):
        missing, added = sorted(set(listed) - set(sizes)), sorted(set(sizes) - set(listed))
        raise _altered(
            path,
            f"its members differ from {MANIFEST_FILE} (missing: {', '.join(missing) or 'none'}; "
            f"not listed: {', '.join(added) or 'none'})",
        )
    for name, size in sizes.items():
        if not isinstance(listed[name], dict) or listed[name].get("size") != size:
            raise _altered(path, f"{name} does not have the size {MANIFEST_FILE} records")
    return listed


def parse(path: Path, data: bytes) -> Opened:
    """Every check that does not deserialise the model: structure, manifest, metadata, versions."""
    members = _unzip(path, data)
    meta = _json_object(path, METADATA_FILE, members[METADATA_FILE])
    if meta.get("format") != FORMAT:
        raise InputError(f"{path}: not an upgrade-predictor bundle")
    version = meta.get("format_version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise InputError(
            f"{path}: bundle format {version} cannot be read by this version "
            f"(format {FORMAT_VERSION}); retrain with upgrade-predictor {__version__}"
        )
    # Format 1 had no manifest; a later bundle without one has lost it.
    if (version >= 2) != (MANIFEST_FILE in members):
        raise _altered(path, f"format {version} but {'no' if version >= 2 else 'a'} {MANIFEST_FILE}")
    trained = str((meta.get("versions") or {}).get("scikit-learn", ""))
    current = library_versions().get("scikit-learn", "")
    if trained.split(".")[:2] != current.split(".")[:2]:
        raise InputError(
            f"{path}: trained with scikit-learn {trained}, running {current}; models do not "
            "carry across scikit-learn minor versions. Retrain, or install the version it was "
            "trained with"
        )
    typed = BundleMetadata.from_dict(meta, where=path)
    blob = members[PIPELINE_FILE]
    if hashlib.sha256(blob).hexdigest() != typed.pipeline_sha256:
        raise InputError(
            f"{path}: the model inside the bundle does not match its recorded checksum; "
            "the file was altered after training. Retrain or restore the original"
        )
    try:
        card = members.get(CARD_FILE, b"").decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{path}: {CARD_FILE} inside the bundle is damaged ({e}); restore it or retrain"
        ) from None
    return Opened(blob, typed, card, hashlib.sha256(data).hexdigest())
