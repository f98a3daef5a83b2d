"""The JSON types metadata.json must have, checked before any entry is used: a wrong type found later
would surface as a traceback in scoring rather than as a message naming the entry."""

from __future__ import annotations

import math
import numbers
from typing import Any


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _expect(ok: bool, what: str, value: Any, kind: str) -> None:
    if not ok:
        shown = repr(value) if len(repr(value)) <= 60 else f"a {type(value).__name__}"
        raise TypeError(f"'{what}' is {shown}, not {kind}")


def check_types(d: dict[str, Any]) -> None:
    """Refuse metadata whose entries have the wrong JSON types, before any of them is used: a wrong type
    found later would surface as a traceback in scoring rather than as a message here."""
    t = d["threshold"]
    # Just above 1 is the policy that sends nothing (no probability reaches it); more is not a threshold.
    _expect(
        _is_number(t) and 0 <= t <= math.nextafter(1.0, 2.0), "threshold", t, "a probability between 0 and 1"
    )
    _check_schema(d["schema"])
    for key in ("params", "metrics", "training", "reference_profile", "events", "versions"):
        v = d.get(key)
        _expect(v is None or isinstance(v, dict), key, v, "an object")
    for key in ("threshold_objective", "key", "family", "strategy", "label", "created", "pipeline_sha256"):
        v = d.get(key)
        _expect(v is None or isinstance(v, str), key, v, "a text")
    for key in ("offer_cost", "upgrade_value"):
        v = d.get(key)
        _expect(v is None or _is_number(v), key, v, "a number")
    _expect(isinstance(d.get("calibrated", False), bool), "calibrated", d.get("calibrated"), "true or false")
    excluded = d.get("excluded") or []
    _expect(isinstance(excluded, list), "excluded", excluded, "a list of column names")
    for part, scores in (d.get("metrics") or {}).items():
        _expect(scores is None or isinstance(scores, dict), f"metrics.{part}", scores, "an object")
        for k, v in (scores or {}).items():
            _expect(v is None or _is_number(v), f"metrics.{part}.{k}", v, "a number")
    training = d.get("training") or {}
    for key in ("source", "fingerprint"):
        _expect(
            training.get(key) is None or isinstance(training[key], str),
            f"training.{key}",
            training.get(key),
            "a text",
        )
    for key in ("rows", "seed"):
        v = training.get(key)
        _expect(
            v is None or isinstance(v, int) and not isinstance(v, bool),
            f"training.{key}",
            v,
            "a whole number",
        )
    v = training.get("positive_share")
    _expect(v is None or _is_number(v), "training.positive_share", v, "a number")
    events = d.get("events")
    if events is not None:
        h, w = events.get("horizon"), events.get("windows")
        _expect(isinstance(h, int) and not isinstance(h, bool), "events.horizon", h, "a whole number")
        _expect(
            isinstance(w, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in w),
            "events.windows",
            w,
            "a list of whole numbers",
        )
        _expect(isinstance(events.get("data_end"), str), "events.data_end", events.get("data_end"), "a date")


def _check_schema(schema: Any) -> None:
    """The input contract must be exactly what training writes: scoring validates rows with it."""
    _expect(isinstance(schema, dict), "schema", schema, "an object")
    cols = schema.get("columns")
    _expect(isinstance(cols, list) and len(cols) > 0, "schema.columns", cols, "a list of columns")
    for key in ("target", "positive_label", "negative_label"):
        _expect(isinstance(schema.get(key), str), f"schema.{key}", schema.get(key), "a text")
    id_col = schema.get("id_column")
    _expect(id_col is None or isinstance(id_col, str), "schema.id_column", id_col, "a text")
    seen: set[str] = set()
    for i, c in enumerate(cols):
        where = f"schema.columns[{i}]"
        _expect(isinstance(c, dict), where, c, "an object")
        name = c.get("name")
        _expect(
            isinstance(name, str) and name != "" and name not in seen,
            f"{where}.name",
            name,
            "a new column name",
        )
        seen.add(name)
        _expect(
            c.get("kind") in ("numeric", "categorical"),
            f"{where}.kind",
            c.get("kind"),
            "numeric or categorical",
        )
        _expect(
            isinstance(c.get("nullable", False), bool),
            f"{where}.nullable",
            c.get("nullable"),
            "true or false",
        )
        for key in ("minimum", "maximum"):
            v = c.get(key)
            _expect(v is None or _is_number(v), f"{where}.{key}", v, "a number")
        cats = c.get("categories", [])
        _expect(
            isinstance(cats, list) and all(isinstance(x, str) for x in cats),
            f"{where}.categories",
            cats,
            "a list of texts",
        )
