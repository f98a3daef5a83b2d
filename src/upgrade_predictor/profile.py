"""The training reference profile stored in a bundle, and the population stability index against it.

The population stability index is a two-line formula over binned shares; no well-kept library
computes it over stored training bins, so it is written here (with the usual 0.1 / 0.2 rule of thumb).
Missing cells of a numeric column are a bin of their own, so a column that goes missing is drift, and
every index over at least one row is a finite number (a report is JSON without NaN).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
import pandas as pd

from .errors import InputError
from .records import as_object, check_keys
from .schema import Schema

BINS = 10
TOP_CATEGORIES = 30  # categories kept by name in the profile; the rest share one "other" bin
EPS = 1e-4  # floor for empty bins, so PSI stays finite


def _cuts(values: np.ndarray, bins: int = BINS) -> list[float]:
    """Interior cut points at training quantiles, deduplicated (zero-heavy columns have few bins)."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return []
    q = np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1])
    return sorted({float(x) for x in q})


def numeric_counts(values: np.ndarray, cuts: list[float]) -> tuple[list[int], int]:
    """Counts per bin ((-inf, c0], (c0, c1], ..., (c_k, inf)) and the number of missing values."""
    values = np.asarray(values, dtype="float64")
    missing = np.isnan(values)
    b = np.searchsorted(np.asarray(cuts, dtype="float64"), values[~missing], side="left")
    return np.bincount(b, minlength=len(cuts) + 1).astype(int).tolist(), int(missing.sum())


@dataclass(frozen=True, kw_only=True)
class NumericProfile:
    """A numeric column in training: counts between the cut points, the missing cells, the range."""

    kind: Literal["numeric"] = "numeric"
    cuts: list[float]
    counts: list[int]  # one more than cuts: (-inf, c0], (c0, c1], ..., (c_k, inf)
    missing: int
    min: float | None  # None when every training cell was missing
    max: float | None

    @classmethod
    def from_dict(cls, d: Any, where: str) -> NumericProfile:
        check_keys(d, where, [f.name for f in fields(cls)])
        return cls(
            cuts=[float(c) for c in d["cuts"]],
            counts=[int(c) for c in d["counts"]],
            missing=int(d["missing"]),
            min=_opt_float(d["min"]),
            max=_opt_float(d["max"]),
        )


@dataclass(frozen=True, kw_only=True)
class CategoricalProfile:
    """A categorical column in training: the most common codes by name, the rest together, every code."""

    kind: Literal["categorical"] = "categorical"
    counts: dict[str, int]  # the TOP_CATEGORIES most common codes, most common first
    other: int  # rows of the other codes
    known: list[str]  # every code seen in training

    @classmethod
    def from_dict(cls, d: Any, where: str) -> CategoricalProfile:
        check_keys(d, where, [f.name for f in fields(cls)])
        return cls(
            counts={str(k): int(c) for k, c in as_object(d["counts"], f"{where}.counts").items()},
            other=int(d["other"]),
            known=[str(k) for k in d["known"]],
        )


FeatureProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class ScoreProfile:
    """The training scores binned at their own quantiles."""

    cuts: list[float]
    counts: list[int]


@dataclass(frozen=True)
class ReferenceProfile:
    """Training bins and shares per feature and for the score, stored in the bundle's metadata.

    The fields are in the order of the stored JSON, so `to_dict` (and `dataclasses.asdict`) write
    exactly what every earlier version wrote."""

    rows: int
    bins: int
    features: dict[str, FeatureProfile]
    score: ScoreProfile

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "reference_profile") -> ReferenceProfile:
        """Read a stored profile; an unknown, missing or malformed entry is refused naming it."""
        check_keys(d, where, [f.name for f in fields(cls)])
        try:
            features: dict[str, FeatureProfile] = {}
            for name, f in as_object(d["features"], f"{where}.features").items():
                at = f"{where}.features.{name}"
                kind = as_object(f, at).get("kind")
                if kind == "numeric":
                    features[str(name)] = NumericProfile.from_dict(f, at)
                elif kind == "categorical":
                    features[str(name)] = CategoricalProfile.from_dict(f, at)
                else:
                    raise InputError(f"{at}.kind is {kind!r}, not 'numeric' or 'categorical'")
            check_keys(d["score"], f"{where}.score", ["cuts", "counts"])
            score = ScoreProfile(
                [float(c) for c in d["score"]["cuts"]], [int(c) for c in d["score"]["counts"]]
            )
            return cls(rows=int(d["rows"]), bins=int(d["bins"]), features=features, score=score)
        except (TypeError, ValueError) as e:
            raise InputError(
                f"{where}: not a reference profile this version reads ({type(e).__name__}: {e}); "
                "retrain with 'upgrade-predictor train'"
            ) from None


def reference_profile(X_train: pd.DataFrame, scores: np.ndarray, schema: Schema) -> ReferenceProfile:
    """Training bins and shares per feature and for the score (stored in the bundle)."""
    features: dict[str, FeatureProfile] = {}
    for col in schema.columns:
        if col.name not in X_train.columns:
            continue
        s = X_train[col.name]
        if col.kind == "numeric":
            v = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64")
            cuts = _cuts(v)
            counts, missing = numeric_counts(v, cuts)
            features[col.name] = NumericProfile(
                cuts=cuts, counts=counts, missing=missing, min=_f(np.nanmin(v)), max=_f(np.nanmax(v))
            )
        else:
            per_code = s.astype("str").value_counts()
            top = per_code.head(TOP_CATEGORIES)
            features[col.name] = CategoricalProfile(
                counts={str(k): int(c) for k, c in top.items()},
                other=int(per_code.iloc[TOP_CATEGORIES:].sum()),
                known=[str(k) for k in per_code.index],
            )
    p = np.asarray(scores, dtype="float64")
    cuts = _cuts(p)
    score_counts, _ = numeric_counts(p, cuts)
    return ReferenceProfile(
        rows=int(len(X_train)), bins=BINS, features=features, score=ScoreProfile(cuts, score_counts)
    )


def psi(expected: np.ndarray | list[int], actual: np.ndarray | list[int]) -> float:
    """Population stability index of two count vectors over the same bins."""
    e = np.asarray(expected, dtype="float64")
    a = np.asarray(actual, dtype="float64")
    if e.sum() == 0 or a.sum() == 0:
        return float("nan")
    e = np.maximum(e / e.sum(), EPS)
    a = np.maximum(a / a.sum(), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def _f(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)
