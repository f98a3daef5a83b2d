"""The model bundle: one zip holding the fitted pipeline (skops, never pickle), its metadata and card.

Loading trusts only the types listed in this module. The list is never read from the artifact, so a
bundle that asks for anything else (a tampered or foreign file) is refused before it is deserialised.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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
class Bundle:
    pipeline: Any
    metadata: dict
    card: str

    @property
    def schema(self) -> Schema:
        return Schema.from_dict(self.metadata["schema"])

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

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


def model_card(metadata: dict) -> str:
    """A short Markdown model card from the bundle's metadata (what, how well, on what, caveats)."""
    m = metadata
    cv = (m.get("metrics") or {}).get("cv") or {}
    test = (m.get("metrics") or {}).get("test") or {}
    training = m.get("training") or {}
    schema = m.get("schema") or {}
    lines = [f"# Model card: {m.get('label') or m.get('key') or 'upgrade model'}", ""]
    lines += [
        f"- Predicts: probability that a free user upgrades ({schema.get('target', 'target')} = "
        f"{schema.get('positive_label', '1')})",
        f"- Model: {m.get('key', '?')} ({m.get('family', '?')}, imbalance strategy "
        f"{m.get('strategy', '?')}{', Platt-calibrated' if m.get('calibrated') else ''})",
        f"- Decision threshold: {m.get('threshold', '?')} ({m.get('threshold_objective', 'chosen in training')})",
        f"- Created: {m.get('created', '?')}; libraries: "
        + ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items()),
    ]
    if training:
        lines.append(
            f"- Training data: {training.get('rows', '?')} rows of {training.get('source', '?')} "
            f"(sha256 {str(training.get('fingerprint', ''))[:12]}...), positive share "
            f"{training.get('positive_share', float('nan')):.1%}"
        )
    cols = schema.get("columns") or []
    if cols:
        lines.append("- Inputs: " + ", ".join(f"{c['name']} ({c['kind']})" for c in cols))
    if m.get("excluded"):
        lines.append(f"- Left out: {', '.join(m['excluded'])}")
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
        "- Engagement columns are measured up to the first purchase for buyers, so totals such as "
        "days_on_platform tie to the label by construction; scores on users still in their free period "
        "are lower than the test metrics suggest. Compare with the no-leak bundle when one exists.",
        "- Country codes never seen in training are scored as rare codes; `drift` reports them.",
        "- Scores rank users; treat them as probabilities only if the model is calibrated.",
    ]
    return "\n".join(lines) + "\n"


def save_bundle(path: str | Path, pipeline: Any, metadata: dict, card: str) -> Path:
    """Write the bundle atomically (temp file, then rename); an empty card is written from the metadata."""
    path = Path(path)
    blob = sio.dumps(pipeline)
    extra = untrusted_in(blob)
    if extra:  # a pipeline we could not load back is a bug here, not a user error
        raise RuntimeError(f"pipeline holds types missing from bundle.TRUSTED_TYPES: {extra}")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
        "pipeline_sha256": hashlib.sha256(blob).hexdigest(),
        **metadata,
    }
    card = card or model_card(meta)
    write_atomic(path, lambda f: _write_zip(f, blob, meta, card))
    return path


def _write_zip(f, blob: bytes, meta: dict, card: str) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(PIPELINE_FILE, blob)
        z.writestr(METADATA_FILE, json.dumps(meta, indent=2, default=str))
        z.writestr(CARD_FILE, card)


def read_metadata(path: str | Path) -> dict:
    """The bundle's metadata without deserialising the model."""
    return _open(Path(path))[1]


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle, refusing pickles, tampering, untrusted types and incompatible versions."""
    path = Path(path)
    blob, meta, card = _open(path)
    if hashlib.sha256(blob).hexdigest() != meta.get("pipeline_sha256"):
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


def _open(path: Path) -> tuple[bytes, dict, str]:
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
    if meta.get("format") != FORMAT:
        raise InputError(f"{path}: not an upgrade-predictor bundle")
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{path}: bundle format {meta.get('format_version')} cannot be read by this version "
            f"(format {FORMAT_VERSION}); retrain with upgrade-predictor {__version__}"
        )
    trained = meta.get("versions", {}).get("scikit-learn", "")
    current = library_versions().get("scikit-learn", "")
    if trained.split(".")[:2] != current.split(".")[:2]:
        raise InputError(
            f"{path}: trained with scikit-learn {trained}, running {current}; models do not "
            "carry across scikit-learn minor versions. Retrain, or install the version it was "
            "trained with"
        )
    return blob, meta, card
