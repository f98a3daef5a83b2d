"""The model bundle: one zip holding the fitted pipeline (skops, never pickle), its metadata and card.

Loading trusts only the types listed in this module. The list is never read from the artifact, so a
bundle that asks for anything else (a tampered or foreign file) is refused before it is deserialised.

Integrity has two layers. MANIFEST.json lists the sha256 and size of every other member, and the zip's
comment holds the manifest's own sha256: that catches corruption and hand edits, but not a forger who
recomputes the hashes, since they live in the same file. A signature (`sign_bundle`, OpenSSF
model-signing with an elliptic-curve key, written beside the bundle as `<bundle>.sig`) covers every byte
of the file; loading with `verify_key` refuses a bundle that is unsigned, signed by another key, or
changed after signing. Every member is read with a size limit, so a small file that inflates to
gigabytes is refused without being inflated.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import io
import json
import math
import numbers
import os
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import skops.io as sio

from . import __version__
from .errors import InputError
from .files import write_atomic
from .schema import Schema

FORMAT = "upgrade-predictor-bundle"
FORMAT_VERSION = 2  # 2: MANIFEST.json and its digest in the zip comment; 1: pipeline_sha256 only
READABLE_VERSIONS = (1, 2)
PIPELINE_FILE = "pipeline.skops"
METADATA_FILE = "metadata.json"
CARD_FILE = "MODEL_CARD.md"
MANIFEST_FILE = "MANIFEST.json"
SIGNATURE_SUFFIX = ".sig"
SIGN_EXTRA = "pip install 'upgrade-predictor[sign]'"

_MIB = 1 << 20
# The most each member may inflate to. Real pipelines are a few MB; these leave two orders of margin
# while keeping a decompression bomb far from the machine's memory.
MEMBER_LIMITS = {
    PIPELINE_FILE: 512 * _MIB,
    METADATA_FILE: 16 * _MIB,
    CARD_FILE: 1 * _MIB,
    MANIFEST_FILE: 64 * 1024,
}
MAX_INFLATED_BYTES = sum(MEMBER_LIMITS.values())
MAX_BUNDLE_BYTES = MAX_INFLATED_BYTES + _MIB  # stored members plus the zip's own headers
MAX_SIGNATURE_BYTES = _MIB
MAX_KEY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 64
_COMMENT_PREFIX = b"upgrade-predictor manifest sha256:"
_CURVES = ("secp256r1", "secp384r1", "secp521r1")  # the curves model-signing accepts

# Every type the pipelines of models.py can contain, beyond what skops trusts by default.
TRUSTED_TYPES = sorted(
    {
        "builtins.slice",
        "collections.OrderedDict",
        "collections.defaultdict",
        "imblearn.FunctionSampler",
        "imblearn.base.FunctionSampler",
        "imblearn.over_sampling._random_over_sampler.RandomOverSampler",
        "imblearn.over_sampling._smote.base.SMOTE",
        "imblearn.over_sampling._smote.base.SMOTEN",
        "imblearn.over_sampling._smote.base.SMOTENC",
        "imblearn.pipeline.Pipeline",
        "imblearn.under_sampling._prototype_selection._random_under_sampler.RandomUnderSampler",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.number",
        "pandas.core.indexes.base.Index",
        "scipy.sparse._csr.csr_matrix",
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.frozen._frozen.FrozenEstimator",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.compose._column_transformer._RemainderColsList",
        "sklearn.compose._column_transformer.make_column_selector",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.kernel_approximation.Nystroem",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.model_selection._split.StratifiedKFold",
        "sklearn.neighbors._classification.KNeighborsClassifier",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.PowerTransformer",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._encoders.OrdinalEncoder",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
        "sklearn.svm._classes.LinearSVC",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
        "sklearn.utils._bunch.Bunch",
        "upgrade_predictor.features.EngagementFeatures",
        "upgrade_predictor.features.QuantileClipper",
        "upgrade_predictor.features.drop_columns",
        "upgrade_predictor.features.drop_reference_outliers",
        "upgrade_predictor.models.stratified_sample",
    }
)


@dataclass
class TrainingInfo:
    """The data a model was fitted on."""

    source: str | None = None
    fingerprint: str | None = None  # sha256 of the training file
    rows: int | None = None
    positive_share: float | None = None
    seed: int | None = None


@dataclass
class ModelMetrics:
    """The chosen model's scores: cross-validated (mean and sd per metric), on training and on the test."""

    cv: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    train: dict[str, float] = field(default_factory=dict)


@dataclass
class EventsInfo:
    """How an events model builds its inputs: the label horizon, the feature windows, the data's last day."""

    horizon: int
    windows: list[int]
    data_end: str


@dataclass
class BundleMetadata:
    """metadata.json of a bundle: the input contract, the decision threshold, and how the model was made.

    Keys this version does not know are kept in `extra` and written back unchanged."""

    schema: Schema
    threshold: float
    threshold_objective: str | None = None
    offer_cost: float | None = None
    upgrade_value: float | None = None
    key: str | None = None
    family: str | None = None
    strategy: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    calibrated: bool = False
    metrics: ModelMetrics = field(default_factory=ModelMetrics)
    training: TrainingInfo | None = None
    excluded: list[str] = field(default_factory=list)
    reference_profile: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    created: str | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    pipeline_sha256: str | None = None
    events: EventsInfo | None = None  # set for a model trained on event tables
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)  # the schema, metrics and training info become plain dicts too
        extra = d.pop("extra")
        return {**d, **extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str | Path = METADATA_FILE) -> BundleMetadata:
        """Read metadata as training writes it; a missing or malformed entry says to retrain."""
        missing = [k for k in ("schema", "threshold") if k not in d]
        try:
            if missing:
                raise ValueError(f"no {' or '.join(missing)}")
            _check_types(d)
            training = d.get("training")
            metrics = d.get("metrics") or {}
            return cls(
                schema=Schema.from_dict(d["schema"]),
                threshold=float(d["threshold"]),
                threshold_objective=_opt(str, d.get("threshold_objective")),
                offer_cost=_opt(float, d.get("offer_cost")),
                upgrade_value=_opt(float, d.get("upgrade_value")),
                key=_opt(str, d.get("key")),
                family=_opt(str, d.get("family")),
                strategy=_opt(str, d.get("strategy")),
                params=dict(d.get("params") or {}),
                label=_opt(str, d.get("label")),
                calibrated=bool(d.get("calibrated", False)),
                metrics=ModelMetrics(**{k: dict(v or {}) for k, v in metrics.items()}),
                training=None if training is None else TrainingInfo(**training),
                excluded=[str(c) for c in d.get("excluded") or []],
                reference_profile=d.get("reference_profile"),
                versions={str(k): str(v) for k, v in (d.get("versions") or {}).items()},
                created=_opt(str, d.get("created")),
                format=str(d.get("format", FORMAT)),
                format_version=int(d.get("format_version", FORMAT_VERSION)),
                pipeline_sha256=_opt(str, d.get("pipeline_sha256")),
                events=None if d.get("events") is None else EventsInfo(**d["events"]),
                extra={k: v for k, v in d.items() if k not in _FIELDS},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(
                f"{where}: the bundle's metadata is not what this version writes ({type(e).__name__}: {e}); "
                "retrain with 'upgrade-predictor train'"
            ) from None


_FIELDS = {f.name for f in fields(BundleMetadata)} - {"extra"}


def _opt(kind: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else kind(value)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _expect(ok: bool, what: str, value: Any, kind: str) -> None:
    if not ok:
        shown = repr(value) if len(repr(value)) <= 60 else f"a {type(value).__name__}"
        raise TypeError(f"'{what}' is {shown}, not {kind}")


def _check_types(d: dict[str, Any]) -> None:
    """Refuse metadata whose entries have the wrong JSON types, before any of them is used: a wrong type
    found later would surface as a traceback in scoring rather than as a message here."""
    t = d["threshold"]
    # Just above 1 is the policy that sends nothing (no probability reaches it); more is not a threshold.
    _expect(
        _is_number(t) and 0 <= t <= math.nextafter(1.0, 2.0), "threshold", t, "a probability between 0 and 1"
    )
    _check_schema(d["schema"])
    for key in ("params", "metrics", "training", "reference_profile", "events", "versions"):
        v = d.get(key)
        _expect(v is None or isinstance(v, dict), key, v, "an object")
    for key in ("threshold_objective", "key", "family", "strategy", "label", "created", "pipeline_sha256"):
        v = d.get(key)
        _expect(v is None or isinstance(v, str), key, v, "a text")
    for key in ("offer_cost", "upgrade_value"):
        v = d.get(key)
        _expect(v is None or _is_number(v), key, v, "a number")
    _expect(isinstance(d.get("calibrated", False), bool), "calibrated", d.get("calibrated"), "true or false")
    excluded = d.get("excluded") or []
    _expect(isinstance(excluded, list), "excluded", excluded, "a list of column names")
    for part, scores in (d.get("metrics") or {}).items():
        _expect(scores is None or isinstance(scores, dict), f"metrics.{part}", scores, "an object")
        for k, v in (scores or {}).items():
            _expect(v is None or _is_number(v), f"metrics.{part}.{k}", v, "a number")
    training = d.get("training") or {}
    for key in ("source", "fingerprint"):
        _expect(
            training.get(key) is None or isinstance(training[key], str),
            f"training.{key}",
            training.get(key),
            "a text",
        )
    for key in ("rows", "seed"):
        v = training.get(key)
        _expect(
            v is None or isinstance(v, int) and not isinstance(v, bool),
            f"training.{key}",
            v,
            "a whole number",
        )
    v = training.get("positive_share")
    _expect(v is None or _is_number(v), "training.positive_share", v, "a number")
    events = d.get("events")
    if events is not None:
        h, w = events.get("horizon"), events.get("windows")
        _expect(isinstance(h, int) and not isinstance(h, bool), "events.horizon", h, "a whole number")
        _expect(
            isinstance(w, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in w),
            "events.windows",
            w,
            "a list of whole numbers",
        )
        _expect(isinstance(events.get("data_end"), str), "events.data_end", events.get("data_end"), "a date")


def _check_schema(schema: Any) -> None:
    """The input contract must be exactly what training writes: scoring validates rows with it."""
    _expect(isinstance(schema, dict), "schema", schema, "an object")
    cols = schema.get("columns")
    _expect(isinstance(cols, list) and len(cols) > 0, "schema.columns", cols, "a list of columns")
    for key in ("target", "positive_label", "negative_label"):
        _expect(isinstance(schema.get(key), str), f"schema.{key}", schema.get(key), "a text")
    id_col = schema.get("id_column")
    _expect(id_col is None or isinstance(id_col, str), "schema.id_column", id_col, "a text")
    seen: set[str] = set()
    for i, c in enumerate(cols):
        where = f"schema.columns[{i}]"
        _expect(isinstance(c, dict), where, c, "an object")
        name = c.get("name")
        _expect(
            isinstance(name, str) and name != "" and name not in seen,
            f"{where}.name",
            name,
            "a new column name",
        )
        seen.add(name)
        _expect(
            c.get("kind") in ("numeric", "categorical"),
            f"{where}.kind",
            c.get("kind"),
            "numeric or categorical",
        )
        _expect(
            isinstance(c.get("nullable", False), bool),
            f"{where}.nullable",
            c.get("nullable"),
            "true or false",
        )
        for key in ("minimum", "maximum"):
            v = c.get(key)
            _expect(v is None or _is_number(v), f"{where}.{key}", v, "a number")
        cats = c.get("categories", [])
        _expect(
            isinstance(cats, list) and all(isinstance(x, str) for x in cats),
            f"{where}.categories",
            cats,
            "a list of texts",
        )


@dataclass
class Bundle:
    pipeline: Any
    metadata: BundleMetadata
    card: str
    file_sha256: str | None = None  # of the exact bytes loaded (and verified, when a key was given)

    def __post_init__(self) -> None:
        if isinstance(self.metadata, dict):  # the form training and older callers build
            self.metadata = BundleMetadata.from_dict(self.metadata)

    @property
    def schema(self) -> Schema:
        return self.metadata.schema

    @property
    def threshold(self) -> float:
        return self.metadata.threshold


def library_versions() -> dict[str, str]:

    out = {}
    for name in ("scikit-learn", "imbalanced-learn", "lightgbm", "numpy", "pandas", "skops"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    out["upgrade-predictor"] = __version__
    return out


def untrusted_in(pipeline_bytes: bytes) -> list[str]:
    return [t for t in sio.get_untrusted_types(data=pipeline_bytes) if t not in TRUSTED_TYPES]


def model_card(m: BundleMetadata) -> str:
    """A short Markdown model card from the bundle's metadata (what, how well, on what, caveats)."""
    cv, test = m.metrics.cv, m.metrics.test
    schema = m.schema
    lines = [f"# Model card: {m.label or m.key or 'upgrade model'}", ""]
    lines += [
        f"- Predicts: probability that a free user upgrades ({schema.target or 'target'} = "
        f"{schema.positive_label or '1'})",
        f"- Model: {m.key or '?'} ({m.family or '?'}, imbalance strategy "
        f"{m.strategy or '?'}{', Platt-calibrated' if m.calibrated else ''})",
        f"- Decision threshold: {m.threshold} ({m.threshold_objective or 'chosen in training'})",
        f"- Created: {m.created or '?'}; libraries: " + ", ".join(f"{k} {v}" for k, v in m.versions.items()),
    ]
    t = m.training
    if t is not None:
        share = f"{t.positive_share:.1%}" if t.positive_share is not None else "?"
        lines.append(
            f"- Training data: {t.rows if t.rows is not None else '?'} rows of {t.source or '?'} "
            f"(sha256 {(t.fingerprint or '')[:12]}...), positive share {share}"
        )
    if schema.columns:
        lines.append("- Inputs: " + ", ".join(f"{c.name} ({c.kind})" for c in schema.columns))
    if m.excluded:
        lines.append(f"- Left out: {', '.join(m.excluded)}")
    lines += ["", "## Performance", "", "| metric | cross-validated | held-out test |", "| --- | --- | --- |"]
    for k in ("roc_auc", "pr_auc", "f1", "precision", "recall", "brier"):
        if f"{k}_mean" in cv or k in test:
            cvs = f"{cv[f'{k}_mean']:.3f} ± {cv.get(f'{k}_sd', 0):.3f}" if f"{k}_mean" in cv else ""
            ts = f"{test[k]:.3f}" if k in test else ""
            lines.append(f"| {k} | {cvs} | {ts} |")
    lines += [
        "",
        "## Caveats",
        "",
        (
            f"- Trained on event tables: features use only events dated before the cutoff, the label is a "
            f"first upgrade within {m.events.horizon} days of it, and the test metrics come from the latest "
            "period of the data, after the training rows' labels had closed. Rates move with campaigns: "
            "check `drift` before trusting counts."
            if m.events is not None
            else "- Engagement columns are measured up to the first purchase for buyers, so totals such as "
            "days_on_platform tie to the label by construction; scores on users still in their free period "
            "are lower than the test metrics suggest. Compare with the no-leak bundle when one exists."
        ),
        "- Country codes never seen in training are scored as rare codes; `drift` reports them.",
        "- Scores rank users; treat them as probabilities only if the model is calibrated.",
    ]
    return "\n".join(lines) + "\n"


def save_bundle(
    path: str | Path, pipeline: Any, metadata: BundleMetadata | dict[str, Any], card: str
) -> Path:
    """Write the bundle atomically (temp file, then rename); an empty card is written from the metadata.

    `metadata` is typed, or the dict training builds (read as BundleMetadata.from_dict reads a file);
    format, creation time, library versions, the pipeline's checksum and the manifest are filled in here."""
    path = Path(path)
    blob = sio.dumps(pipeline)
    extra = untrusted_in(blob)
    if extra:  # a pipeline we could not load back is a bug here, not a user error
        raise RuntimeError(f"pipeline holds types missing from bundle.TRUSTED_TYPES: {extra}")
    meta = BundleMetadata.from_dict(metadata) if isinstance(metadata, dict) else metadata
    meta = replace(
        meta,
        format=FORMAT,
        format_version=FORMAT_VERSION,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=library_versions(),
        pipeline_sha256=hashlib.sha256(blob).hexdigest(),
    )
    members = {
        PIPELINE_FILE: blob,
        METADATA_FILE: json.dumps(meta.to_dict(), indent=2, default=str).encode(),
        CARD_FILE: (card or model_card(meta)).encode(),
    }
    for name, data in members.items():
        if len(data) > MEMBER_LIMITS[name]:  # it would be written, then refused by every load
            raise InputError(
                f"{path}: the model's {name} is {len(data) / _MIB:.0f} MiB, over the "
                f"{MEMBER_LIMITS[name] // _MIB} MiB a bundle may hold; choose a smaller model family"
            )
    write_atomic(path, lambda f: _write_zip(f, members))
    return path


def _manifest(members: dict[str, bytes]) -> bytes:
    listed = {n: {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for n, b in members.items()}
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "members": listed}
    return json.dumps(doc, indent=2, sort_keys=True).encode()


def _write_zip(f: IO[bytes], members: dict[str, bytes]) -> None:
    manifest = _manifest(members)
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        z.writestr(MANIFEST_FILE, manifest)
        z.comment = _COMMENT_PREFIX + hashlib.sha256(manifest).hexdigest().encode()


def signature_path(path: str | Path) -> Path:
    """Where a bundle's signature lives: beside it, named `<bundle>.sig`."""
    path = Path(path)
    return path.with_name(path.name + SIGNATURE_SUFFIX)


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


def sign_bundle(path: str | Path, private_key: Path) -> Path:
    """Sign the bundle with a PEM elliptic-curve private key; write `<bundle>.sig` beside it (atomically)
    and return its path. The bundle must pass the integrity checks first: a damaged or altered file is
    never signed."""
    path = Path(path)
    check_signing_key(private_key)
    data = _read_file(path)
    _parse(path, data)
    signing, _ = _model_signing()
    with tempfile.TemporaryDirectory(prefix="upgrade-predictor-sign-") as d:
        # The bytes checked above are the bytes signed, even if the file changes meanwhile.
        copy, sig = Path(d) / path.name, Path(d) / "signature"
        copy.write_bytes(data)
        try:
            signing.Config().use_elliptic_key_signer(private_key=Path(private_key)).sign(copy, sig)
        except Exception as e:  # the key was checked above; anything left is the library's own
            raise InputError(
                f"--sign-key {private_key}: could not sign {path} ({type(e).__name__}: {e})"
            ) from None
        signature = sig.read_bytes()
    out = signature_path(path)
    write_atomic(out, lambda f: f.write(signature))
    return out


def check_signing_key(private_key: Path) -> None:
    """Refuse a signing key that cannot sign (missing, not a PEM key, a public key, an unsupported
    curve, encrypted) before any work is done."""
    key = Path(private_key)
    data = _read_key(key, "--sign-key")
    serialization, ec = _crypto()
    _model_signing()  # a missing extra is found now, not after training
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's way of saying the key needs a password
        raise InputError(
            f"--sign-key {key}: the private key is encrypted, and password-protected keys are not "
            "supported; sign with an unencrypted key readable only by the signer"
        ) from None
    except (ValueError, ImportError):
        what = "a public key" if b"PUBLIC KEY" in data else "not a PEM private key"
        raise InputError(
            f"--sign-key {key}: {what}; signing needs the elliptic-curve private key "
            "(make one with: openssl ecparam -genkey -name prime256v1 -noout -out signing.pem)"
        ) from None
    _check_curve(key, "--sign-key", loaded, ec.EllipticCurvePrivateKey)


def _check_curve(key: Path, option: str, loaded: Any, kind: type) -> None:
    curve = getattr(loaded, "curve", None)
    if not isinstance(loaded, kind) or curve is None or curve.name not in _CURVES:
        kind_name = type(loaded).__name__.strip("_").replace("PrivateKey", "").replace("PublicKey", "")
        name = curve.name if curve is not None else kind_name
        raise InputError(
            f"{option} {key}: holds a key of type {name}; bundles are signed with elliptic-curve "
            "keys on P-256, P-384 or P-521 (openssl ecparam -genkey -name prime256v1 -noout -out "
            "signing.pem)"
        )


def _read_key(key: Path, option: str) -> bytes:
    if not key.is_file():
        what = "not a regular file" if key.exists() else "no such key file"
        raise InputError(f"{option} {key}: {what}; give the PEM key file")
    try:
        with open(key, "rb") as f:
            data = f.read(MAX_KEY_BYTES + 1)
    except OSError as e:
        raise InputError(f"{option} {key}: cannot be read ({e.strerror})") from None
    if len(data) > MAX_KEY_BYTES:
        raise InputError(f"{option} {key}: over {MAX_KEY_BYTES // 1024} KiB, not a PEM key file")
    return data


def _crypto() -> tuple[Any, Any]:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        raise InputError(f"signing and verifying bundles needs the 'sign' extra: {SIGN_EXTRA}") from None
    return serialization, ec


def _model_signing() -> tuple[Any, Any]:
    """OpenSSF model-signing, imported only when a bundle is signed or verified (it is an extra)."""
    try:
        from model_signing import signing, verifying
    except ImportError:
        raise InputError(f"signing and verifying bundles needs the 'sign' extra: {SIGN_EXTRA}") from None
    return signing, verifying


def _public_key_hint(verify_key: Path) -> str:
    """sha256 of the public key's PEM, as model-signing records it in the signature to name the key."""
    data = _read_key(verify_key, "--verify-key")
    serialization, ec = _crypto()
    try:
        loaded = serialization.load_pem_public_key(data)
    except (ValueError, ImportError):
        what = "a private key" if b"PRIVATE KEY" in data else "not a PEM public key"
        raise InputError(
            f"--verify-key {verify_key}: {what}; verifying needs the signer's public key "
            "(openssl ec -in signing.pem -pubout -out signing.pub)"
        ) from None
    _check_curve(verify_key, "--verify-key", loaded, ec.EllipticCurvePublicKey)
    pem = loaded.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def _verify(path: Path, data: bytes, verify_key: Path) -> None:
    """Refuse the bundle's bytes unless `<bundle>.sig` is a signature of exactly them by verify_key."""
    hint = _public_key_hint(Path(verify_key))
    sig_path = signature_path(path)
    if not sig_path.is_file():
        raise InputError(
            f"{path}: not signed ({sig_path.name} is missing beside it) and --verify-key was given; "
            "use a bundle trained with --sign-key, or get its signature from whoever published it"
        )
    try:
        with open(sig_path, "rb") as f:
            sig = f.read(MAX_SIGNATURE_BYTES + 1)
        if len(sig) > MAX_SIGNATURE_BYTES:
            raise ValueError(f"over {MAX_SIGNATURE_BYTES // _MIB} MiB")
        # Read here first so that model-signing only ever sees a signature that names its key.
        doc = json.loads(sig)
        recorded = doc["verificationMaterial"]["publicKey"]["hint"]
        if not isinstance(doc["dsseEnvelope"], dict) or not isinstance(recorded, str) or not recorded:
            raise ValueError("no signing key named in it")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise InputError(
            f"{sig_path}: not a bundle signature ({type(e).__name__}: {e}); sign the bundle again with "
            "--sign-key"
        ) from None
    if recorded != hint:
        raise InputError(
            f"{path}: signed by another key than --verify-key {verify_key}; use the public key of "
            "whoever signed it, or refuse this bundle"
        )
    from cryptography.exceptions import InvalidSignature

    _, verifying = _model_signing()
    with tempfile.TemporaryDirectory(prefix="upgrade-predictor-verify-") as d:
        # Verify a private copy of the very bytes that will be loaded: the file cannot change between.
        copy, sig_copy = Path(d) / path.name, Path(d) / sig_path.name
        copy.write_bytes(data)
        sig_copy.write_bytes(sig)
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=Path(verify_key)).verify(copy, sig_copy)
        except InvalidSignature:
            raise InputError(
                f"{sig_path}: the signature is not valid for --verify-key {verify_key} (forged or "
                "damaged); refuse this bundle or get a fresh signature from its publisher"
            ) from None
        except Exception as e:  # model-signing reports a changed file as ValueError("Signature mismatch")
            if isinstance(e, ValueError) and str(e).startswith("Signature mismatch"):
                raise InputError(
                    f"{path}: changed after it was signed (its bytes no longer match {sig_path.name}); "
                    "restore the original bundle or retrain"
                ) from None
            raise InputError(
                f"{sig_path}: the signature could not be checked ({type(e).__name__}: {e}); sign the "
                "bundle again with --sign-key"
            ) from None


@dataclass
class _Opened:
    """A bundle's members after every check that does not deserialise the model."""

    pipeline: bytes
    metadata: BundleMetadata
    card: str
    file_sha256: str


def _open(path: Path, verify_key: Path | None) -> _Opened:
    data = _read_file(path)
    if verify_key is not None:
        _verify(path, data, verify_key)
    return _parse(path, data)


def _read_file(path: Path) -> bytes:
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
        f"{path}: {size / _MIB:.0f} MiB, over the {MAX_BUNDLE_BYTES // _MIB} MiB a model bundle may be; "
        "not a bundle written by 'upgrade-predictor train'"
    )


def _altered(path: Path, what: str) -> InputError:
    return InputError(
        f"{path}: {what}; the file was altered after training or is damaged. Restore the original or "
        "retrain (sign bundles with --sign-key to detect deliberate forgery)"
    )


def _unzip(path: Path, data: bytes) -> dict[str, bytes]:
    """The members, each read with a bounded read and checked against the manifest when there is one.
    The sizes a zip declares are checked first but never trusted alone: whoever made the file wrote them."""
    damaged = (
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
    )  # all that zipfile and zlib raise on malformed archives
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
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
                raise InputError(
                    f"{path}: not a model bundle (no {PIPELINE_FILE} and {METADATA_FILE} inside)"
                )
            for info in infos:  # every declared size and method is checked before anything inflates
                if info.file_size > MEMBER_LIMITS[info.filename]:
                    raise InputError(_inflates(path, info.filename, MEMBER_LIMITS[info.filename]))
                if info.flag_bits & 0x1 or info.compress_type not in (
                    zipfile.ZIP_STORED,
                    zipfile.ZIP_DEFLATED,
                ):
                    raise InputError(
                        f"{path}: {info.filename} is encrypted or compressed in a way training never "
                        "writes; refusing it"
                    )
            if sum(i.file_size for i in infos) > MAX_INFLATED_BYTES:
                raise InputError(_inflates(path, "its members", MAX_INFLATED_BYTES))
            members: dict[str, bytes] = {}
            listed: dict[str, Any] | None = None
            # The manifest is read first, so that members whose sizes disagree with it never inflate.
            for info in sorted(infos, key=lambda i: i.filename != MANIFEST_FILE):
                members[info.filename] = _bounded_read(path, z, info, MEMBER_LIMITS[info.filename])
                if info.filename == MANIFEST_FILE:
                    sizes = {i.filename: i.file_size for i in infos if i.filename != MANIFEST_FILE}
                    listed = _manifest_entries(path, members[MANIFEST_FILE], z.comment, sizes)
    except damaged as e:
        raise InputError(
            f"{path}: the bundle is damaged ({type(e).__name__}: {e}); restore it or retrain"
        ) from None
    for name, entry in (listed or {}).items():
        data = members[name]
        if entry.get("size") != len(data) or entry.get("sha256") != hashlib.sha256(data).hexdigest():
            raise _altered(path, f"{name} does not match its checksum in {MANIFEST_FILE}")
    return members


def _inflates(path: Path, what: str, limit: int) -> str:
    return (
        f"{path}: {what} would inflate past the {limit // _MIB or 1} MiB a bundle may hold (a "
        "decompression bomb or not a bundle); refusing it"
    )


def _bounded_read(path: Path, z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    out = bytearray()
    with z.open(info) as f:
        while chunk := f.read(_MIB):
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
        comment[len(_COMMENT_PREFIX) :].decode("ascii", "replace")
        if comment.startswith(_COMMENT_PREFIX)
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


def _parse(path: Path, data: bytes) -> _Opened:
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
    return _Opened(blob, typed, card, hashlib.sha256(data).hexdigest())
