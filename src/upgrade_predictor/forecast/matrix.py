"""From point-in-time feature rows to the typed matrix the model pipelines take."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..dataset import coerce
from ..schema import Kind, Schema
from ..sources.events import EventSource

ROW_KEYS = ("user_id", "cutoff")
TARGET = "upgrades_within_horizon"


@dataclass
class Matrix:
    """Model inputs of (user, cutoff) rows: X in the pipelines' types, with its schema."""

    X: pd.DataFrame
    schema: Schema
    keys: pd.DataFrame  # user_id, cutoff of each row of X


def feature_kinds(source: EventSource, columns: list[str]) -> dict[str, Kind]:
    """Attributes keep the kind the source resolved; every derived feature is a number."""
    declared: dict[str, Kind] = {
        a.column: ("categorical" if a.kind == "categorical" else "numeric") for a in source.attributes
    }
    return {c: declared.get(c, "numeric") for c in columns}


def build_matrix(source: EventSource, features: pd.DataFrame, schema: Schema | None = None) -> Matrix:
    """Typed model inputs from feature rows; with `schema` (a trained model's), the same columns and kinds."""
    names = schema.names if schema is not None else [c for c in features.columns if c not in ROW_KEYS]
    kinds = {c.name: c.kind for c in schema.columns} if schema is not None else feature_kinds(source, names)
    X = coerce(features[names], kinds)
    if schema is None:
        schema = Schema.infer(X, kinds, TARGET, "1", "0", None)
    return Matrix(X, schema, features[list(ROW_KEYS)].reset_index(drop=True))
