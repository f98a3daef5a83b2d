"""The training reference profile stored in a bundle, and the population stability index against it.

The population stability index is a two-line formula over binned shares; no well-kept library
computes it over stored training bins, so it is written here (with the usual 0.1 / 0.2 rule of thumb).
Missing cells of a numeric column are a bin of their own, so a column that goes missing is drift, and
every index over at least one row is a finite number (a report is JSON without NaN).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import config
from .schema import Schema
from .sources.tables import excerpt

BINS = 10
TOP_CATEGORIES = 30  # categories kept by name in the profile; the rest share one "other" bin
PSI_WARN = config.PSI_WARN
PSI_ALERT = config.PSI_ALERT
NEW_CATEGORY_SHARE = config.NEW_CATEGORY_SHARE  # share of rows with codes never seen in training
RANGE_SHARE = config.RANGE_SHARE  # share of rows outside the training min..max
EPS = 1e-4  # floor for empty bins, so PSI stays finite
OTHER = "(other)"


def _cuts(values: np.ndarray, bins: int = BINS) -> list[float]:
    """Interior cut points at training quantiles, deduplicated (zero-heavy columns have few bins)."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return []
    q = np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1])
    return sorted({float(x) for x in q})


def _numeric_counts(values: np.ndarray, cuts: list[float]) -> tuple[list[int], int]:
    """Counts per bin ((-inf, c0], (c0, c1], ..., (c_k, inf)) and the number of missing values."""
    values = np.asarray(values, dtype="float64")
    missing = np.isnan(values)
    b = np.searchsorted(np.asarray(cuts, dtype="float64"), values[~missing], side="left")
    return np.bincount(b, minlength=len(cuts) + 1).astype(int).tolist(), int(missing.sum())


def reference_profile(X_train: pd.DataFrame, scores: np.ndarray, schema: Schema) -> dict[str, Any]:
    """Training bins and shares per feature and for the score (JSON-able; stored in the bundle)."""
    features: dict[str, dict[str, Any]] = {}
    for col in schema.columns:
        if col.name not in X_train.columns:
            continue
        s = X_train[col.name]
        if col.kind == "numeric":
            v = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64")
            cuts = _cuts(v)
            counts, missing = _numeric_counts(v, cuts)
            features[col.name] = {
                "kind": "numeric",
                "cuts": cuts,
                "counts": counts,
                "missing": missing,
                "min": _f(np.nanmin(v)),
                "max": _f(np.nanmax(v)),
            }
        else:
            per_code = s.astype("str").value_counts()
            top = per_code.head(TOP_CATEGORIES)
            features[col.name] = {
                "kind": "categorical",
                "counts": {str(k): int(c) for k, c in top.items()},
                "other": int(per_code.iloc[TOP_CATEGORIES:].sum()),
                "known": [str(k) for k in per_code.index],
            }
    p = np.asarray(scores, dtype="float64")
    cuts = _cuts(p)
    score_counts, _ = _numeric_counts(p, cuts)
    return {
        "rows": int(len(X_train)),
        "bins": BINS,
        "features": features,
        "score": {"cuts": cuts, "counts": score_counts},
    }


def psi(expected: np.ndarray | list[int], actual: np.ndarray | list[int]) -> float:
    """Population stability index of two count vectors over the same bins."""
    e = np.asarray(expected, dtype="float64")
    a = np.asarray(actual, dtype="float64")
    if e.sum() == 0 or a.sum() == 0:
        return float("nan")
    e = np.maximum(e / e.sum(), EPS)
    a = np.maximum(a / a.sum(), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def _level(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    return "alert" if value >= PSI_ALERT else "warn" if value >= PSI_WARN else "ok"


class Tally:
    """Counts of new data in the training bins, added batch by batch (a file never sits in memory)."""

    def __init__(self, profile: dict[str, Any], schema: Schema):
        self.profile = profile
        self.schema = schema
        self.n = 0
        self.numeric: dict[str, dict[str, Any]] = {}
        self.categorical: dict[str, pd.Series] = {}
        self.score_counts = np.zeros(len(profile["score"]["cuts"]) + 1, dtype=np.int64)
        self.score_sum = 0.0

    def add(self, X: pd.DataFrame, scores: np.ndarray) -> None:
        self.n += len(X)
        for col in self.schema.columns:
            ref = self.profile["features"].get(col.name)
            if ref is None or col.name not in X.columns:
                continue
            if ref["kind"] == "numeric":
                v = X[col.name].to_numpy(dtype="float64")
                counts, missing = _numeric_counts(v, ref["cuts"])
                t = self.numeric.setdefault(
                    col.name,
                    {
                        "counts": np.zeros(len(counts), np.int64),
                        "missing": 0,
                        "below": 0,
                        "above": 0,
                        "max": None,
                    },
                )
                t["counts"] += counts
                t["missing"] += missing
                if ref.get("min") is not None:
                    t["below"] += int(np.sum(v < ref["min"]))
                if ref.get("max") is not None:
                    t["above"] += int(np.sum(v > ref["max"]))
                if len(v) and not np.all(np.isnan(v)):
                    m = float(np.nanmax(v))
                    t["max"] = m if t["max"] is None else max(t["max"], m)
            else:
                vc = X[col.name].astype("str").value_counts()
                prev = self.categorical.get(col.name)
                self.categorical[col.name] = vc if prev is None else prev.add(vc, fill_value=0)
        c, _ = _numeric_counts(np.asarray(scores, dtype="float64"), self.profile["score"]["cuts"])
        self.score_counts += c
        self.score_sum += float(np.sum(scores))

    def report(
        self,
        psi_alert: float = PSI_ALERT,
        new_category_share: float = NEW_CATEGORY_SHARE,
        range_share: float = RANGE_SHARE,
    ) -> dict[str, Any]:
        n = self.n
        rows = []
        alerts: list[str] = []
        for col in self.schema.columns:
            ref = self.profile["features"].get(col.name)
            if ref is None or (col.name not in self.numeric and col.name not in self.categorical):
                continue
            entry: dict[str, Any] = {"feature": col.name, "kind": col.kind}
            if ref["kind"] == "numeric":
                t = self.numeric[col.name]
                entry["psi"] = psi([*ref["counts"], ref.get("missing", 0)], [*t["counts"], t["missing"]])
                lo, hi = ref.get("min"), ref.get("max")
                entry.update(
                    below_min=t["below"],
                    above_max=t["above"],
                    out_of_range_share=(t["below"] + t["above"]) / n if n else 0.0,
                    train_min=lo,
                    train_max=hi,
                    max=t["max"],
                    missing=t["missing"],
                )
                if entry["out_of_range_share"] > range_share:
                    alerts.append(
                        f"{col.name}: {entry['out_of_range_share']:.1%} of rows outside the training "
                        f"range {lo:g}..{hi:g}"
                    )
            else:
                vc = self.categorical[col.name].astype("int64").sort_values(ascending=False, kind="stable")
                known_named = list(ref["counts"])
                known_all = set(ref.get("known", known_named)) | set(self.schema.column(col.name).categories)
                actual = [int(vc.get(k, 0)) for k in known_named]
                actual.append(int(n - sum(actual)))
                expected = [ref["counts"][k] for k in known_named] + [ref["other"]]
                entry["psi"] = psi(expected, actual)
                new = vc[~vc.index.isin(list(known_all))]
                entry.update(
                    new_categories={str(k): int(c) for k, c in new.head(20).items()},
                    new_category_rows=int(new.sum()),
                    new_category_share=float(new.sum() / n) if n else 0.0,
                )
                if entry["new_category_share"] > new_category_share:
                    alerts.append(
                        f"{col.name}: {entry['new_category_share']:.1%} of rows carry codes never "
                        f"seen in training ({', '.join(excerpt(c) for c in list(entry['new_categories'])[:5])})"
                    )
            entry["level"] = _level(entry["psi"])
            if np.isfinite(entry["psi"]) and entry["psi"] >= psi_alert:
                alerts.append(f"{col.name}: PSI {entry['psi']:.3f} >= {psi_alert}")
            entry["psi"] = _f(entry["psi"])  # None only over no rows at all: JSON has no NaN
            rows.append(entry)
        score_psi = psi(self.profile["score"]["counts"], self.score_counts)
        if np.isfinite(score_psi) and score_psi >= psi_alert:
            alerts.append(f"score: PSI {score_psi:.3f} >= {psi_alert}")
        return {
            "rows": n,
            "features": rows,
            "score": {
                "psi": _f(score_psi),
                "level": _level(score_psi),
                "mean": self.score_sum / n if n else None,
            },
            "thresholds": {
                "psi_alert": psi_alert,
                "new_category_share": new_category_share,
                "range_share": range_share,
            },
            "alerts": alerts,
            "drifted": bool(alerts),
        }


def _f(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
