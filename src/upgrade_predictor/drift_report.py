"""The drift report: per feature and for the score how far new data moved from training, and what
was checked (drift.json, key for key as every earlier version wrote it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from .errors import InputError
from .records import as_object, check_keys


@dataclass(frozen=True)
class NumericDrift:
    feature: str
    kind: Literal["numeric"]
    psi: float | None  # None only over no rows at all: JSON has no NaN
    below_min: int
    above_max: int
    out_of_range_share: float
    train_min: float | None
    train_max: float | None
    max: float | None  # the largest new value
    missing: int
    level: str  # ok, warn, alert or n/a


@dataclass(frozen=True)
class CategoricalDrift:
    feature: str
    kind: Literal["categorical"]
    psi: float | None
    new_categories: dict[str, int]  # the most common codes never seen in training, with their rows
    new_category_rows: int
    new_category_share: float
    level: str


FeatureDrift = NumericDrift | CategoricalDrift


@dataclass(frozen=True)
class ScoreDrift:
    psi: float | None
    level: str
    mean: float | None


@dataclass(frozen=True)
class Thresholds:
    psi_alert: float
    new_category_share: float
    range_share: float


@dataclass(frozen=True)
class DriftReport:
    """New data against the training reference profile."""

    rows: int
    features: list[FeatureDrift]
    score: ScoreDrift
    thresholds: Thresholds
    alerts: list[str]
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "drift.json") -> DriftReport:
        check_keys(d, where, [f.name for f in fields(cls)])
        features: list[FeatureDrift] = []
        for i, f in enumerate(d["features"]):
            at = f"{where}: features[{i}]"
            kind = as_object(f, at).get("kind")
            if kind not in _FEATURE_KINDS:
                raise InputError(f"{at}.kind is {kind!r}, not 'numeric' or 'categorical'")
            features.append(_read(_FEATURE_KINDS[kind], f, at))
        return cls(
            rows=int(d["rows"]),
            features=features,
            score=_read(ScoreDrift, d["score"], f"{where}: score"),
            thresholds=_read(Thresholds, d["thresholds"], f"{where}: thresholds"),
            alerts=[str(a) for a in d["alerts"]],
            drifted=bool(d["drifted"]),
        )


@dataclass(frozen=True)
class RejectedRow:
    """A row that failed validation: its number as `score` numbers rows, its id, the first problem."""

    row: int
    id: Any = None  # the id column's value, when the check names rows by an id
    column: str | None = None
    reason: str | None = None

    def to_dict(self, id_column: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row}
        if id_column:
            out[id_column] = self.id
        if self.reason is not None:
            out.update(column=self.column, reason=self.reason)
        return out


@dataclass(frozen=True)
class DriftCheck:
    """A file, folder or glob checked against a bundle: the report over its valid rows, and its rejects."""

    drift: DriftReport
    source: str
    files: int
    id_column: str | None
    rows_read: int
    rows_rejected: int
    reject_reasons: dict[str, int]  # each reason with its row count
    rejected_rows: list[RejectedRow]  # the first few
    duplicate_ids: int

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.drift.to_dict(),
            "source": self.source,
            "files": self.files,
            "id_column": self.id_column,
            "rows_read": self.rows_read,
            "rows_rejected": self.rows_rejected,
            "reject_reasons": self.reject_reasons,
            "rejected_rows": [r.to_dict(self.id_column) for r in self.rejected_rows],
            "duplicate_ids": self.duplicate_ids,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "drift.json") -> DriftCheck:
        check_keys(d, where, [*(f.name for f in fields(DriftReport)), *_CHECK_KEYS])
        id_column = None if d["id_column"] is None else str(d["id_column"])
        rejected = []
        for i, r in enumerate(d["rejected_rows"]):
            at = f"{where}: rejected_rows[{i}]"
            check_keys(r, at, ["row", *([id_column] if id_column else [])], ["column", "reason"])
            rejected.append(
                RejectedRow(int(r["row"]), r.get(id_column or ""), r.get("column"), r.get("reason"))
            )
        return cls(
            drift=DriftReport.from_dict({k: v for k, v in d.items() if k not in _CHECK_KEYS}, where),
            source=str(d["source"]),
            files=int(d["files"]),
            id_column=id_column,
            rows_read=int(d["rows_read"]),
            rows_rejected=int(d["rows_rejected"]),
            reject_reasons={str(k): int(n) for k, n in as_object(d["reject_reasons"], where).items()},
            rejected_rows=rejected,
            duplicate_ids=int(d["duplicate_ids"]),
        )


_CHECK_KEYS = [f.name for f in fields(DriftCheck) if f.name != "drift"]
_FEATURE_KINDS: dict[str, type[NumericDrift] | type[CategoricalDrift]] = {
    "numeric": NumericDrift,
    "categorical": CategoricalDrift,
}


def _read(cls: Any, d: Any, where: str) -> Any:
    """A flat record of `cls` from `d`, every key known and present."""
    check_keys(d, where, [f.name for f in fields(cls)])
    return cls(**d)
