"""Strict reading of the JSON records the package writes: every key known, every required key present.

A record's `from_dict` calls `check_keys` before it converts anything, so a misspelled key in a file is
refused with a message naming it instead of being read as a missing value."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from .errors import InputError


def check_keys(d: Any, where: str, required: Collection[str], optional: Collection[str] = ()) -> None:
    """Refuse `d` unless it is an object whose keys are all in `required` or `optional` and include every
    key of `required`; `where` names the record in the message (a file and the path inside it)."""
    as_object(d, where)
    allowed = [*required, *optional]
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise InputError(f"{where}: unknown key `{unknown[0]}`; allowed: {', '.join(allowed)}")
    missing = [k for k in required if k not in d]
    if missing:
        raise InputError(f"{where}: no `{missing[0]}`")


def as_object(d: Any, where: str) -> Mapping[str, Any]:
    """`d` when it is an object (of keys the caller checks itself); refused naming `where` otherwise."""
    if not isinstance(d, Mapping):
        raise InputError(f"{where} is {_shown(d)}, not an object")
    return d


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else f"a {type(value).__name__}"
