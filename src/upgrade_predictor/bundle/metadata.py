"""metadata.json of a bundle as typed records, read strictly: a key this version does not write is
refused by name, and metadata of an older layout is upgraded by one migration step before it is read."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..profile import ReferenceProfile
from ..records import check_keys
from ..schema import Schema
from .checks import check_types
from .layout import FORMAT, FORMAT_VERSION, METADATA_FILE


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
    """metadata.json of a bundle: the input contract, the decision threshold, and how the model was made."""

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
    reference_profile: ReferenceProfile | None = None  # what `drift` compares new data with
    versions: dict[str, str] = field(default_factory=dict)
    created: str | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    pipeline_sha256: str | None = None
    events: EventsInfo | None = None  # set for a model trained on event tables

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # the schema, metrics and training info become plain dicts too

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str | Path = METADATA_FILE) -> BundleMetadata:
        """Read metadata as training writes it; an unknown key, or a missing or malformed entry, says
        to retrain."""
        d = migrate(d)
        _refuse_unknown(d, where)
        missing = [k for k in ("schema", "threshold") if k not in d]
        try:
            if missing:
                raise ValueError(f"no {' or '.join(missing)}")
            check_types(d)
            return _typed(d, where)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(
                f"{where}: the bundle's metadata is not what this version writes ({type(e).__name__}: {e}); "
                "retrain with 'upgrade-predictor train'"
            ) from None


def _typed(d: dict[str, Any], where: str | Path) -> BundleMetadata:
    training = d.get("training")
    metrics = d.get("metrics") or {}
    return BundleMetadata(
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
        reference_profile=_profile(d.get("reference_profile"), where),
        versions={str(k): str(v) for k, v in (d.get("versions") or {}).items()},
        created=_opt(str, d.get("created")),
        format=str(d.get("format", FORMAT)),
        format_version=int(d.get("format_version", FORMAT_VERSION)),
        pipeline_sha256=_opt(str, d.get("pipeline_sha256")),
        events=None if d.get("events") is None else EventsInfo(**d["events"]),
    )


def _profile(stored: Any, where: str | Path) -> ReferenceProfile | None:
    # An empty profile is how bundles without drift support said they had none.
    return ReferenceProfile.from_dict(stored, f"{where}: reference_profile") if stored else None


def _opt(kind: Any, value: Any) -> Any:
    return None if value is None else kind(value)


def _names(record: type) -> list[str]:
    return [f.name for f in fields(record)]


# The keys of each object of the metadata, as this version writes them.
KNOWN_KEYS: dict[str, list[str]] = {
    "": _names(BundleMetadata),
    "metrics": _names(ModelMetrics),
    "training": _names(TrainingInfo),
    "events": _names(EventsInfo),
}


def _refuse_unknown(d: dict[str, Any], where: str | Path) -> None:
    """A misspelt or foreign key would otherwise be dropped while its field silently took its default."""
    for part, known in KNOWN_KEYS.items():
        obj = d.get(part) if part else d
        if not isinstance(obj, dict):
            continue  # a wrong type is reported by the type checks, with what was expected
        file = str(where) if str(where) == METADATA_FILE else f"{where}: {METADATA_FILE}"
        inside = file + (f" `{part}`" if part else "")
        try:
            check_keys(obj, inside, required=(), optional=known)
        except InputError as e:
            raise InputError(f"{e}; retrain with 'upgrade-predictor train'") from None


def migrate(d: dict[str, Any]) -> dict[str, Any]:
    """Metadata of an older layout, upgraded to the current one (a new dict; the input is left as is).

    Format 1 (bundles without MANIFEST.json) wrote the same keys but could leave out those added
    since: the training scores, the excluded columns, the economics, the reference profile and the
    events info. They get the values an absent key always meant. `format_version` keeps the file's
    own version: the archive checks read it."""
    if d.get("format_version") != 1:
        return d
    out = {
        "excluded": [],
        "reference_profile": None,
        "offer_cost": None,
        "upgrade_value": None,
        "events": None,
        **d,
    }
    metrics = out.get("metrics")
    if isinstance(metrics, dict):
        out["metrics"] = {"cv": {}, "test": {}, "train": {}, **metrics}
    return out
