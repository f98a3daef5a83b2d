"""The model bundle: one zip holding the fitted pipeline (skops, never pickle), its metadata and card.

Loading trusts only the types listed in this module. The list is never read from the artifact, so a
bundle that asks for anything else (a tampered or foreign file) is refused before it is deserialised.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import zipfile
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
FORMAT_VERSION = 1
PIPELINE_FILE = "pipeline.skops"
METADATA_FILE = "metadata.json"
CARD_FILE = "MODEL_CARD.md"

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


@dataclass
class Bundle:
    pipeline: Any
    metadata: BundleMetadata
    card: str

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
    format, creation time, library versions and the pipeline's checksum are filled in here."""
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
    card = card or model_card(meta)
    write_atomic(path, lambda f: _write_zip(f, blob, meta.to_dict(), card))
    return path


def _write_zip(f: IO[bytes], blob: bytes, meta: dict[str, Any], card: str) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(PIPELINE_FILE, blob)
        z.writestr(METADATA_FILE, json.dumps(meta, indent=2, default=str))
        z.writestr(CARD_FILE, card)


def read_metadata(path: str | Path) -> BundleMetadata:
    """The bundle's metadata without deserialising the model."""
    return _open(Path(path))[1]


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle, refusing pickles, tampering, untrusted types and incompatible versions."""
    path = Path(path)
    blob, meta, card = _open(path)
    if hashlib.sha256(blob).hexdigest() != meta.pipeline_sha256:
        raise InputError(
            f"{path}: the model inside the bundle does not match its recorded checksum; "
            "the file was altered after training. Retrain or restore the original"
        )
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
    return Bundle(pipeline, meta, card)


def _open(path: Path) -> tuple[bytes, BundleMetadata, str]:
    if not path.exists():
        raise InputError(f"{path}: no such model bundle")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:1] == b"\x80":
        raise InputError(
            f"{path}: this is a pickle; pickles can run code when loaded and are never "
            "loaded here. Use a bundle written by 'upgrade-predictor train'"
        )
    if head != b"PK\x03\x04":
        raise InputError(
            f"{path}: not a model bundle (expected the zip written by 'upgrade-predictor train')"
        )
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if not {PIPELINE_FILE, METADATA_FILE}.issubset(names):
                raise InputError(
                    f"{path}: not a model bundle (no {PIPELINE_FILE} and {METADATA_FILE} inside)"
                )
            blob = z.read(PIPELINE_FILE)
            meta = json.loads(z.read(METADATA_FILE))
            card = z.read(CARD_FILE).decode() if CARD_FILE in names else ""
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: the bundle is damaged ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"{path}: not an upgrade-predictor bundle")
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{path}: bundle format {meta.get('format_version')} cannot be read by this version "
            f"(format {FORMAT_VERSION}); retrain with upgrade-predictor {__version__}"
        )
    trained = str((meta.get("versions") or {}).get("scikit-learn", ""))
    current = library_versions().get("scikit-learn", "")
    if trained.split(".")[:2] != current.split(".")[:2]:
        raise InputError(
            f"{path}: trained with scikit-learn {trained}, running {current}; models do not "
            "carry across scikit-learn minor versions. Retrain, or install the version it was "
            "trained with"
        )
    return blob, BundleMetadata.from_dict(meta, where=path), card
