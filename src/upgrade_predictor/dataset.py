"""A training table: find its target and feature types, and refuse input that cannot be trained on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import config
from .errors import InputError
from .schema import MISSING_CATEGORY, Kind, Schema
from .sources.tables import file_fingerprint, read_table

POSITIVE_WORDS = {"1", "1.0", "yes", "y", "true", "t", "positive", "pos", "purchased", "upgraded"}
NEGATIVE_WORDS = {"0", "0.0", "no", "n", "false", "f", "negative", "neg"}


@dataclass
class Dataset:
    X: pd.DataFrame  # feature columns only, typed (numeric float64, categorical str)
    y: np.ndarray  # 0/1, 1 = positive class
    schema: Schema
    ids: pd.Series | None
    source: str
    fingerprint: str  # sha256 of the file's bytes

    @property
    def n(self) -> int:
        return len(self.y)


def parse_target(s: pd.Series, positive: str | None = None) -> tuple[np.ndarray, str, str]:
    """Map a two-valued label column to 0/1 and say which value is the positive class."""
    name = s.name
    missing = s.isna()
    if missing.any():
        rows = _rows(missing)
        raise InputError(f"target column '{name}' has {int(missing.sum())} missing value(s) (rows {rows})")
    text = s.astype(str).str.strip()
    values = sorted(text.unique().tolist())
    if len(values) < 2:
        raise InputError(
            f"target column '{name}' has a single class ({values[0]!r}); "
            "a model needs examples of both outcomes"
        )
    if len(values) > 2:
        shown = ", ".join(repr(v) for v in values[:6])
        raise InputError(f"target column '{name}' is not binary: {len(values)} distinct values ({shown}...)")
    if positive is not None:
        if positive not in values:
            raise InputError(
                f"--positive {positive!r} is not a value of '{name}' ({values[0]!r}, {values[1]!r})"
            )
        pos = positive
    else:
        lower = {v.lower(): v for v in values}
        pos_hits = [lower[k] for k in lower if k in POSITIVE_WORDS]
        neg_hits = [lower[k] for k in lower if k in NEGATIVE_WORDS]
        if len(pos_hits) == 1:
            pos = pos_hits[0]
        elif len(neg_hits) == 1:
            pos = next(v for v in values if v != neg_hits[0])
        else:
            raise InputError(
                f"cannot tell which value of '{name}' is the positive class "
                f"({values[0]!r} or {values[1]!r}); pass --positive VALUE"
            )
    neg = next(v for v in values if v != pos)
    return (text == pos).to_numpy(dtype=np.int8), pos, neg


def infer_kinds(
    df: pd.DataFrame, numeric: Sequence[str] = (), categorical: Sequence[str] = ()
) -> dict[str, Kind]:
    kinds: dict[str, Kind] = {}
    for name in df.columns:
        s = df[name]
        if name in numeric:
            kinds[name] = "numeric"
        elif name in categorical:
            kinds[name] = "categorical"
        elif pd.api.types.is_bool_dtype(s):
            kinds[name] = "categorical"
        elif pd.api.types.is_numeric_dtype(s):
            kinds[name] = "numeric"
        else:
            parsed = pd.to_numeric(s.dropna(), errors="coerce")
            # A mostly numeric column with a few bad cells is a typo, not a category.
            if len(parsed) and parsed.notna().mean() >= 0.95:
                bad = s.notna() & pd.to_numeric(s, errors="coerce").isna()
                first = int(np.flatnonzero(bad.to_numpy())[0])
                raise InputError(
                    f"column '{name}' is numeric but row {first + 2} holds {s.iloc[first]!r} "
                    f"({int(bad.sum())} such cell(s)); fix the file or pass --categorical {name}"
                )
            kinds[name] = "categorical"
    return kinds


def coerce(df: pd.DataFrame, kinds: dict[str, Kind]) -> pd.DataFrame:
    """Numeric columns as float64, categorical ones as str with an explicit missing level."""
    out: dict[str, pd.Series] = {}
    for name, kind in kinds.items():
        s = df[name]
        if kind == "numeric":
            v = pd.to_numeric(s, errors="coerce")
            bad = v.isna() & s.notna()
            if bad.any():
                raise InputError(
                    f"column '{name}' must be numeric; row(s) {_rows(bad)} hold {s[bad].iloc[0]!r}"
                )
            out[name] = v.astype("float64")
        else:
            out[name] = s.astype(object).where(s.notna(), MISSING_CATEGORY).astype(str)
    return pd.DataFrame(out, index=df.index)


def load_dataset(
    path: str | Path | None = None,
    target: str = config.TARGET,
    id_column: str | None = None,
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    exclude: Sequence[str] = (),
    positive: str | None = None,
) -> Dataset:
    """Read and validate a training table; every problem is an InputError naming the column."""
    path = Path(path) if path is not None else config.default_data_path()
    df = read_table(path)
    if target not in df.columns:
        raise InputError(
            f"target column '{target}' not found; columns are: {', '.join(df.columns)}. Pass --target NAME"
        )
    for flag, names in (
        ("--id", [id_column] if id_column else []),
        ("--numeric", numeric),
        ("--categorical", categorical),
        ("--exclude", exclude),
    ):
        unknown = [n for n in names if n not in df.columns]
        if unknown:
            raise InputError(f"{flag}: column(s) {', '.join(unknown)} not in the file")
    y, pos, neg = parse_target(df[target], positive)
    ids = df[id_column].copy() if id_column else None
    features = df.drop(columns=[target] + ([id_column] if id_column else []) + list(exclude))
    # Columns with one value carry no signal; a column of nothing but missing cells neither.
    useless = [c for c in features.columns if features[c].nunique(dropna=True) <= 1]
    features = features.drop(columns=useless)
    if features.shape[1] == 0:
        raise InputError(
            f"no usable feature column: besides '{target}' every column is constant, "
            "empty, excluded or the id"
        )
    kinds = infer_kinds(features, numeric, categorical)
    X = coerce(features, kinds)
    schema = Schema.infer(features, kinds, target, pos, neg, id_column)
    return Dataset(X=X, y=y, schema=schema, ids=ids, source=str(path), fingerprint=file_fingerprint(path))


def _rows(mask: pd.Series, limit: int = 5) -> str:
    """File row numbers (header is row 1) of the first few flagged cells."""
    idx = np.flatnonzero(np.asarray(mask))[:limit] + 2
    more = "..." if int(np.asarray(mask).sum()) > limit else ""
    return ", ".join(str(i) for i in idx) + more
