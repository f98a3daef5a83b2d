"""The input contract a model was trained on, and row-level checks of new data against it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from .errors import InputError

Kind = Literal["numeric", "categorical"]
MISSING_CATEGORY = "(missing)"  # the level a missing categorical cell becomes


@dataclass
class Column:
    name: str
    kind: Kind
    nullable: bool = False  # had missing cells in training, so the pipeline imputes them
    minimum: float | None = None
    maximum: float | None = None
    categories: list[str] = field(default_factory=list)  # known codes, most frequent first

    @property
    def nonnegative(self) -> bool:
        return self.kind == "numeric" and self.minimum is not None and self.minimum >= 0


@dataclass
class Schema:
    columns: list[Column]
    target: str
    positive_label: str
    negative_label: str
    id_column: str | None = None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def numeric(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == "categorical"]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def without(self, names: list[str]) -> Schema:
        keep = [c for c in self.columns if c.name not in set(names)]
        return Schema(keep, self.target, self.positive_label, self.negative_label, self.id_column)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Schema:
        cols = [Column(**c) for c in d["columns"]]
        return cls(cols, d["target"], d["positive_label"], d["negative_label"], d.get("id_column"))

    @classmethod
    def infer(
        cls,
        X: pd.DataFrame,
        kinds: dict[str, Kind],
        target: str,
        positive: str,
        negative: str,
        id_column: str | None,
    ) -> Schema:
        cols = []
        for name in X.columns:
            s = X[name]
            if kinds[name] == "numeric":
                v = pd.to_numeric(s, errors="coerce")
                cols.append(Column(name, "numeric", bool(v.isna().any()), _finite(v.min()), _finite(v.max())))
            else:
                counts = s.dropna().astype(str).value_counts()
                cols.append(
                    Column(
                        name, "categorical", bool(s.isna().any()), categories=[str(k) for k in counts.index]
                    )
                )
        return cls(cols, target, positive, negative, id_column)

    # Row-level validation, shared by batch scoring, the service and drift checks.
    def check_columns(self, df: pd.DataFrame) -> None:
        """Raise if a required column is absent: no row could be scored."""
        missing = [n for n in self.names if n not in df.columns]
        if missing:
            raise InputError(
                f"missing column(s) {', '.join(missing)}; the model needs {', '.join(self.names)}"
            )

    def validate_rows(self, df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        """Coerce the feature columns to training types; return (features, reason per row).

        A row's reason is "" when it is valid (the first problem found otherwise). Unknown categories
        are valid (the encoder groups them), but non-numbers, missing cells where training had none,
        infinities and negative values in never-negative columns are not. Missing cells of a
        categorical column that had them in training become the training's missing level.
        """
        self.check_columns(df)
        n = len(df)
        # Vectorised: one integer code per row (0 = valid), texts looked up once at the end.
        code = np.zeros(n, dtype=np.int16)
        texts = [""]

        def flag(mask: np.ndarray, text: str) -> None:
            mask = np.asarray(mask, dtype=bool) & (code == 0)
            if mask.any():
                texts.append(text)
                code[mask] = len(texts) - 1

        out = {}
        for col in self.columns:
            raw = df[col.name]
            if col.kind == "numeric":
                if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
                    v = raw.to_numpy(dtype="float64", na_value=np.nan)
                    bad_type = None
                else:
                    num = pd.to_numeric(raw, errors="coerce")
                    v = num.to_numpy(dtype="float64", na_value=np.nan)
                    present = np.array(raw.notna(), dtype=bool)
                    if raw.dtype == object or pd.api.types.is_string_dtype(raw):
                        present &= (raw.astype("str").str.strip() != "").to_numpy()
                    bad_type = np.isnan(v) & present
                    flag(bad_type, f"{col.name} is not a number")
                nan = np.isnan(v)
                flag(np.isinf(v), f"{col.name} is infinite")
                if not col.nullable:
                    flag(nan if bad_type is None else nan & ~bad_type, f"{col.name} is missing")
                if col.nonnegative:
                    with np.errstate(invalid="ignore"):
                        flag(v < 0, f"{col.name} is negative")
                out[col.name] = v
            else:
                missing = raw.isna().to_numpy()
                v = raw if pd.api.types.is_string_dtype(raw) and raw.dtype != object else raw.astype("str")
                if missing.any():
                    if col.nullable:
                        v = v.where(~missing, MISSING_CATEGORY)
                    else:
                        flag(missing, f"{col.name} is missing")
                out[col.name] = v.astype("str") if v.dtype != "str" else v
        reasons = pd.Series(np.asarray(texts, dtype=object)[code], index=df.index, dtype=object)
        return pd.DataFrame(out, index=df.index), reasons


def _finite(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
