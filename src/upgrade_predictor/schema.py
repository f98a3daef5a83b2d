"""The input contract a model was trained on, and row-level checks of new data against it (a frame, or
an Arrow record batch read by the sources)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InputError
from .sources.columns import (
    SCORING_HINT,
    UNUSABLE,
    arrow_kind,
    check_unique_names,
    require_columns,
    unusable_column,
)
from .sources.messages import excerpt, shown_name

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schema:
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
    def check_columns(self, df: pd.DataFrame, where: str = "the input") -> None:
        """Raise if a required column is absent or named twice: no row could be scored."""
        names = [str(c) for c in df.columns]
        check_unique_names(where, names)
        require_columns(where, names, self.names)

    def validate_rows(self, df: pd.DataFrame) -> ValidatedRows:
        """Coerce the feature columns to training types and name the first problem of every row.

        Unknown categories are valid (the encoder groups them), but non-numbers (text, true/false, dates),
        missing cells where training had none, infinities and negative values in never-negative columns
        are not. Missing
        cells of a categorical column that had them in training become the training's missing level.
        """
        self.check_columns(df)
        n = len(df)
        # Vectorised: one integer code per row (0 = valid), problems looked up once at the end.
        code = np.zeros(n, dtype=np.int16)
        problems: list[Problem] = []

        def flag(mask: np.ndarray, column: str, what: str) -> None:
            mask = np.asarray(mask, dtype=bool) & (code == 0)
            if mask.any():
                problems.append(Problem(column, f"{column} {what}"))
                code[mask] = len(problems)

        out: dict[str, np.ndarray | pd.Series] = {}
        for col in self.columns:
            raw = df[col.name]
            if col.kind == "numeric":
                out[col.name] = _numeric(raw, col, flag)
            else:
                out[col.name] = _categorical(raw, col, flag)
        return ValidatedRows(pd.DataFrame(out, index=df.index), code, problems)


@dataclass(frozen=True)
class Problem:
    """Why a row cannot be scored: the offending column, and a sentence that names it."""

    column: str
    message: str


@dataclass
class ValidatedRows:
    """Every input row coerced to training types, with its first problem (if any)."""

    X: pd.DataFrame  # the feature columns, one row per input row
    code: np.ndarray  # per row: 0 when valid, else 1 + the index of its problem
    problems: list[Problem]

    @property
    def valid(self) -> np.ndarray:
        return self.code == 0

    def problem(self, i: int) -> Problem | None:
        """The problem of row i (a position), or None when it is valid."""
        c = int(self.code[i])
        return self.problems[c - 1] if c else None

    def _per_row(self, values: list[str], rows: np.ndarray | None) -> np.ndarray:
        table = np.asarray([""] + values, dtype=object)
        return table[self.code if rows is None else self.code[rows]]

    def messages(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The problem sentence of each row ("" when valid), of all rows or of a mask/positions."""
        return self._per_row([p.message for p in self.problems], rows)

    def columns(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The offending column of each row ("" when valid)."""
        return self._per_row([p.column for p in self.problems], rows)

    @property
    def reasons(self) -> pd.Series:
        """The problem sentence per row, "" when valid, on the input's index."""
        return pd.Series(self.messages(), index=self.X.index, dtype=object)

    def counts(self) -> dict[str, int]:
        """Rows per problem sentence."""
        per_code = np.bincount(self.code, minlength=len(self.problems) + 1)
        return {p.message: int(per_code[i + 1]) for i, p in enumerate(self.problems) if per_code[i + 1]}

    def slice(self, start: int, stop: int) -> ValidatedRows:
        return ValidatedRows(self.X.iloc[start:stop], self.code[start:stop], self.problems)


Flag = Callable[[np.ndarray, str, str], None]


def _numeric(raw: pd.Series, col: Column, flag: Flag) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        v = raw.to_numpy(dtype="float64", na_value=np.nan)
        bad_type = None
    elif _not_numbers(raw):
        # True/false and dates are not numbers (the service refuses them too), whatever they convert to.
        bad_type = np.array(raw.notna(), dtype=bool)
        v = np.full(len(raw), np.nan)
        flag(bad_type, col.name, "is not a number")
    else:
        v = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        present = np.array(raw.notna(), dtype=bool)
        if raw.dtype == object or pd.api.types.is_string_dtype(raw):
            present &= (raw.astype("str").str.strip() != "").to_numpy()
        bad_type = np.isnan(v) & present
        flag(bad_type, col.name, "is not a number")
    nan = np.isnan(v)
    flag(np.isinf(v), col.name, "is infinite")
    if not col.nullable:
        flag(nan if bad_type is None else nan & ~bad_type, col.name, "is missing")
    if col.nonnegative:
        with np.errstate(invalid="ignore"):
            flag(v < 0, col.name, "is negative")
    return v


def _not_numbers(raw: pd.Series) -> bool:
    """A column of true/false flags or of dates and times."""
    return bool(
        pd.api.types.is_bool_dtype(raw)
        or pd.api.types.is_datetime64_any_dtype(raw)
        or pd.api.types.is_timedelta64_dtype(raw)
        or isinstance(raw.dtype, pd.PeriodDtype)
    )


def _categorical(raw: pd.Series, col: Column, flag: Flag) -> pd.Series:
    missing = raw.isna().to_numpy()
    v = raw if pd.api.types.is_string_dtype(raw) and raw.dtype != object else raw.astype("str")
    if missing.any():
        if col.nullable:
            v = v.where(~missing, MISSING_CATEGORY)
        else:
            flag(missing, col.name, "is missing")
    return v.astype("str") if v.dtype != "str" else v


def batch_to_frame(batch: pa.RecordBatch | pa.Table, schema: Schema) -> pd.DataFrame:
    """The frame validate_rows expects, checked per column by Arrow type (vectorised, once per batch).

    Numeric columns: numbers pass; text is cast in Arrow when every cell parses as a finite-or-infinite
    number (a "NaN" text is not a missing cell: such batches stay text, so validate_rows names the cell);
    true/false flags and dates become text, so validate_rows rejects their rows as not numbers, as it
    does text in a number column (and the service does). Categorical columns: text, numbers and flags
    are codes; dates are refused (training never learns codes from them). Lists, records and raw bytes
    are refused by column name."""
    cols = {}
    for col in schema.columns:
        arr = batch.column(col.name)
        if pa.types.is_dictionary(arr.type):
            arr = pc.cast(arr, arr.type.value_type)
        kind = arrow_kind(arr.type)
        if kind in UNUSABLE:
            raise unusable_column("the input", col.name, arr.type, SCORING_HINT)
        if col.kind == "numeric":
            arr = _numeric_cells(arr, kind)
        elif kind == "time":
            raise InputError(
                f"the input: column {excerpt(col.name)} holds dates or times (type {shown_name(arr.type)}), "
                "but the model reads it as codes; write it as text, as in the training data"
            )
        cols[col.name] = arr
    table = pa.table(cols)
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _numeric_cells(arr: Any, kind: str) -> Any:
    """One numeric column of a batch as float64 when it holds numbers, else as text for validate_rows."""
    if kind == "number":
        return (
            arr
            if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)
            else pc.cast(arr, pa.float64())
        )
    if kind == "empty":
        return pa.nulls(len(arr), pa.float64())
    if kind != "text":  # flags and dates: text, which validate_rows names as not a number
        return pc.cast(arr, pa.string())
    try:
        cast = pc.cast(arr, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return arr  # validate_rows names the bad cells of this batch
    return arr if pc.any(pc.is_nan(cast)).as_py() else cast


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
