"""From point-in-time feature rows to the typed matrix the model pipelines take."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from ..schema import MISSING_CATEGORY, Kind, Schema
from ..sources.event_mapping import Attribute

ROW_KEYS = ("user_id", "cutoff")
TARGET = "upgrades_within_horizon"


@dataclass
class Matrix:
    """Model inputs of (user, cutoff) rows: X in the pipelines' types, with its schema."""

    X: pd.DataFrame
    schema: Schema
    keys: pd.DataFrame  # user_id, cutoff of each row of X


def feature_kinds(attributes: Sequence[Attribute], columns: list[str]) -> dict[str, Kind]:
    """Attributes keep the kind the source resolved; every derived feature is a number."""
    declared: dict[str, Kind] = {
        a.column: ("categorical" if a.kind == "categorical" else "numeric") for a in attributes
    }
    return {c: declared.get(c, "numeric") for c in columns}


def typed(features: pd.DataFrame, kinds: dict[str, Kind]) -> pd.DataFrame:
    """Numbers as float32 (the features' own type: no float64 copy of a design is ever made), categories as
    text with an explicit missing level. Feature values are computed, not typed in, so the only defect left
    is an infinite number from a measure that overflowed: refused by column."""
    out: dict[str, pd.Series] = {}
    for name, kind in kinds.items():
        s = features[name]
        if kind == "numeric":
            v = s if s.dtype == np.float32 else s.astype(np.float32)
            if np.isinf(v.to_numpy()).any():
                raise InputError(
                    f"feature '{name}' holds an infinite value; a measure of the event tables overflows "
                    "(a value too large or written as 'inf'): fix that measure's cells"
                )
            out[name] = v
        else:
            out[name] = s.astype(object).where(s.notna(), MISSING_CATEGORY).astype(str)
    return pd.DataFrame(out, index=features.index)


def build_matrix(
    attributes: Sequence[Attribute], features: pd.DataFrame, schema: Schema | None = None
) -> Matrix:
    """Typed model inputs from feature rows; with `schema` (a trained model's), the same columns and kinds."""
    names = schema.names if schema is not None else [c for c in features.columns if c not in ROW_KEYS]
    kinds = (
        {c.name: c.kind for c in schema.columns} if schema is not None else feature_kinds(attributes, names)
    )
    X = typed(features[names], kinds).reset_index(drop=True)
    if schema is None:
        schema = Schema.infer(X, kinds, TARGET, "1", "0", None)
    return Matrix(X, schema, features[list(ROW_KEYS)].reset_index(drop=True))
