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
from .sources.formats import file_fingerprint
from .sources.messages import excerpt, shown_name
from .sources.tables import read_table

PLACEHOLDER_TEXTS = 3  # a numeric column whose other cells hold at most this many texts marks gaps with them
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
    groups: np.ndarray | None = None  # --group: rows sharing a value stay on one side of every split

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
            f"target column '{name}' has a single class ({excerpt(values[0])}); "
            "a model needs examples of both outcomes"
        )
    if len(values) > 2:
        shown = ", ".join(excerpt(v) for v in values[:6])
        raise InputError(f"target column '{name}' is not binary: {len(values)} distinct values ({shown}...)")
    if positive is not None:
        if positive not in values:
            raise InputError(
                f"--positive {positive!r} is not a value of '{name}' ({excerpt(values[0])}, {excerpt(values[1])})"
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
                f"({excerpt(values[0])} or {excerpt(values[1])}); pass --positive VALUE"
            )
    neg = next(v for v in values if v != pos)
    return (text == pos).to_numpy(dtype=np.int8), pos, neg


def infer_kinds(
    df: pd.DataFrame, numeric: Sequence[str] = (), categorical: Sequence[str] = ()
) -> dict[str, Kind]:
    """Numeric or categorical per column: as the user says, else by the cells. A column of numbers with
    a few text cells, or with one to three texts standing in for gaps ("NaN", "NULL", "?"), is numeric
    with bad cells, an InputError saying so, never a category of thousands of numbers."""
    kinds: dict[str, Kind] = {}
    for name in df.columns:
        s = df[name]
        if pd.api.types.is_bool_dtype(s) and name in numeric:
            raise InputError(
                f"--numeric {name}: the column holds true/false values, which are not numbers (scoring "
                "refuses them as numbers too); leave it categorical"
            )
        if name in numeric:
            kinds[name] = "numeric"
        elif name in categorical or pd.api.types.is_bool_dtype(s):
            kinds[name] = "categorical"
        elif pd.api.types.is_numeric_dtype(s):
            kinds[name] = "numeric"
        else:
            present = s.dropna()
            ok = pd.to_numeric(present, errors="coerce").notna().to_numpy()  # "NaN" text: no number
            share = ok.mean() if len(ok) else 0.0
            texts = present[~ok].astype(str).unique()
            if share >= 0.95 or (share >= 0.5 and len(texts) <= PLACEHOLDER_TEXTS):
                if ok.all():
                    kinds[name] = "numeric"
                    continue
                bad = (s.notna() & pd.to_numeric(s, errors="coerce").isna()).to_numpy()
                first = int(np.flatnonzero(bad)[0])
                others = [excerpt(t) for t in texts if t != str(s.iloc[first])][:2]
                raise InputError(
                    f"column '{name}' is numeric but row {first + 2} holds {excerpt(s.iloc[first])} "
                    f"({int(bad.sum())} such cell(s){''.join(', also ' + t for t in others)}); leave "
                    f"missing cells empty, fix the file or pass --categorical {name}"
                )
            kinds[name] = "categorical"
    return kinds


def coerce(df: pd.DataFrame, kinds: dict[str, Kind]) -> pd.DataFrame:
    """Numeric columns as finite float64 (empty cells missing), categorical ones as str with an explicit
    missing level. Text and infinities in a numeric column are refused here, once, by column and row, as
    scoring rejects such rows."""
    out: dict[str, pd.Series] = {}
    for name, kind in kinds.items():
        s = df[name]
        if kind == "numeric":
            v = pd.to_numeric(s, errors="coerce")
            bad = v.isna() & s.notna()
            if bad.any():
                raise InputError(
                    f"column '{name}' must be numeric; row(s) {_rows(bad)} hold {excerpt(s[bad].iloc[0])} "
                    f"({int(bad.sum())} such cell(s))"
                )
            v = v.astype("float64")
            infinite = np.isinf(v.to_numpy())
            if infinite.any():
                raise InputError(
                    f"column '{name}' holds {int(infinite.sum())} infinite value(s) (row(s) "
                    f"{_rows(infinite)}: {excerpt(s[infinite].iloc[0])}); a model needs finite numbers: "
                    "fix them, or leave the cells empty if they are unknown"
                )
            out[name] = v
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
    group_column: str | None = None,
) -> Dataset:
    """Read and validate a training table; every problem is an InputError naming the column."""
    path = Path(path) if path is not None else config.default_data_path()
    # The id and group columns are never features (the group may be the id itself).
    kept_out = list(dict.fromkeys(c for c in (id_column, group_column) if c))
    # Columns left out need no usable type: an excluded column of lists does not stop training.
    df = read_table(path, unchecked=[*exclude, *kept_out])
    if target not in df.columns:
        shown = ", ".join(shown_name(c) for c in df.columns[:20]) + (", ..." if df.shape[1] > 20 else "")
        raise InputError(f"target column '{target}' not found; columns are: {shown}. Pass --target NAME")
    for flag, names in (
        ("--id", [id_column] if id_column else []),
        ("--group", [group_column] if group_column else []),
        ("--numeric", numeric),
        ("--categorical", categorical),
        ("--exclude", exclude),
    ):
        unknown = [n for n in names if n not in df.columns]
        if unknown:
            raise InputError(f"{flag}: column(s) {', '.join(unknown)} not in the file")
    if group_column == target:
        raise InputError(
            f"--group {target}: the target cannot group the rows; name a column such as a user id"
        )
    y, pos, neg = parse_target(df[target], positive)
    ids = df[id_column].copy() if id_column else None
    groups = group_codes(df[group_column]) if group_column else None
    features = df.drop(columns=[target, *kept_out, *(c for c in exclude if c not in kept_out)])
    # Columns with one value carry no signal; a column of nothing but missing cells neither.
    useless = [c for c in features.columns if features[c].nunique(dropna=True) <= 1]
    features = features.drop(columns=useless)
    if features.shape[1] == 0:
        raise InputError(
            f"no usable feature column: besides '{target}' every column is constant, "
            "empty, excluded, the id or the group"
        )
    kinds = infer_kinds(features, numeric, categorical)
    X = coerce(features, kinds)
    schema = Schema.infer(features, kinds, target, pos, neg, id_column)
    return Dataset(
        X=X, y=y, schema=schema, ids=ids, source=str(path), fingerprint=file_fingerprint(path), groups=groups
    )


def group_codes(s: pd.Series) -> np.ndarray:
    """The --group column as integer group codes; a missing cell is refused, since it would either
    tie unrelated rows together or let related ones split."""
    missing = s.isna()
    if missing.any():
        raise InputError(
            f"--group column '{s.name}' has {int(missing.sum())} missing value(s) (rows {_rows(missing)}); "
            "give every row its group"
        )
    return pd.factorize(s.astype(str))[0]


def _rows(mask: pd.Series | np.ndarray, limit: int = 5) -> str:
    """File row numbers (header is row 1) of the first few flagged cells."""
    idx = np.flatnonzero(np.asarray(mask))[:limit] + 2
    more = "..." if int(np.asarray(mask).sum()) > limit else ""
    return ", ".join(str(i) for i in idx) + more
