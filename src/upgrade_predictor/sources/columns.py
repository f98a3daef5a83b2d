"""The column checks every reader shares: names given once, the needed columns present, and Arrow types
that hold one number or code per cell (`arrow_kind`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from ..errors import InputError
from .messages import excerpt, shown_name


def check_unique_names(where: str | Path, names: Iterable[str]) -> None:
    """Refuse duplicated column names: a reader would rename or pick one copy silently."""
    counts = Counter(names)
    dups = [n for n, k in counts.items() if k > 1]
    if dups:
        listed = ", ".join(f"{shown_name(n)} ({counts[n]} times)" for n in dups[:5])
        raise InputError(
            f"{where}: duplicated column name(s) {listed}; give every column its own name "
            "(rename or drop the copies)"
        )


def require_columns(where: str | Path, available: Iterable[str], needed: list[str]) -> None:
    """The one missing-column check: every reader and the service name the same columns the same way."""
    have = list(available)
    missing = [c for c in needed if c not in set(have)]
    if missing:
        found = ", ".join(shown_name(c) for c in have[:12])
        raise InputError(
            f"{where}: missing column(s) {', '.join(missing)}; the model needs {', '.join(needed)} "
            f"(found {found}{', ...' if len(have) > 12 else ''})"
        )


UNUSABLE = {"nested": "lists or records", "bytes": "raw bytes"}
SCORING_HINT = "write it as one number or code per cell, as in the training data"


def arrow_kind(t: pa.DataType) -> str:
    """What a column of this Arrow type holds, for the input rules: "number", "text", "flag" (true/false),
    "time" (dates, times, durations), "empty" (only nulls), "bytes" or "nested" (lists, records, maps,
    anything else, which no cell of a CSV can hold)."""
    if pa.types.is_dictionary(t):
        return arrow_kind(t.value_type)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "text"
    if pa.types.is_boolean(t):
        return "flag"
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_duration(t):
        return "time"
    if pa.types.is_null(t):
        return "empty"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytes"
    return "nested"


def unusable_column(where: str | Path, name: str, t: pa.DataType, hint: str) -> InputError:
    """The error for a column whose cells are not single values."""
    return InputError(
        f"{where}: column {excerpt(name)} holds {UNUSABLE.get(arrow_kind(t), str(t))} (Parquet type "
        f"{shown_name(t)}), not one number or code per cell; {hint}"
    )


def check_arrow_types(where: str | Path, schema: pa.Schema, columns: Iterable[str], hint: str) -> None:
    """Refuse the first of `columns` whose cells are lists, records or raw bytes."""
    for name in columns:
        t = schema.field(name).type
        if arrow_kind(t) in UNUSABLE:
            raise unusable_column(where, name, t, hint)
