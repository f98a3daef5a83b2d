"""run.json: the typed record of how a run was made, with its one strict reader and writer.

Each kind's record extends `RunInfo` with its own fields and names the layout of its file; the
reader refuses a key the layout does not hold (naming it and the file), checks each value's type
against the record, and reads an older layout through `migrate`.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .. import config
from ..errors import InputError
from ..files import RUN_MARKER
from ..records import check_keys

if TYPE_CHECKING:
    from typing_extensions import Self

# A run.json without "kind" is the layout table runs have always written.
DEFAULT_KIND = "table"


def read_kind(folder: Path) -> str:
    """The kind a run folder's run.json names; an unreadable one reads as the default kind, whose
    loader then says what is wrong with the folder."""
    try:
        d = json.loads((folder / RUN_MARKER).read_text())
    except (OSError, ValueError):
        return DEFAULT_KIND
    kind = d.get("kind", DEFAULT_KIND) if isinstance(d, dict) else DEFAULT_KIND
    return kind if isinstance(kind, str) else DEFAULT_KIND


def migrate(d: dict[str, Any]) -> dict[str, Any]:
    """An older run.json as the current layout: the kind made explicit (a file without one is a table
    run's); keys added since (the group column, the time limit, signing, the cluster) are absent
    there and take the defaults the run used."""
    return {**d, "kind": d.get("kind", DEFAULT_KIND)}


@dataclass(frozen=True)
class RunInfo:
    """What every kind's run.json holds: the budget, the seed, the economics and when it ran."""

    KIND: ClassVar[str]
    LAYOUT: ClassVar[tuple[str, ...]]  # the file's keys, in the order written
    RETRAIN: ClassVar[str]  # the command that writes a readable run of this kind

    budget: str | None = None
    seed: int = config.SEED
    offer_cost: float = config.OFFER_COST
    upgrade_value: float = config.UPGRADE_VALUE
    time_limit: float | None = None
    started: str | None = None

    @property
    def kind(self) -> str:
        return self.KIND

    def to_dict(self) -> dict[str, Any]:
        """run.json, in the kind's layout (paths as text)."""
        return {k: self.KIND if k == "kind" else _plain(getattr(self, k)) for k in self.LAYOUT}

    @classmethod
    def of(cls, options: object, **values: Any) -> Self:
        """The record of a run made with `options` (their fields the layout holds), and `values`."""
        own = {f.name for f in fields(cls)}
        taken = {k: _plain(getattr(options, k)) for k in cls.LAYOUT if k in own and hasattr(options, k)}
        return cls(**{**taken, **values})

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = RUN_MARKER) -> Self:
        """Read run.json strictly: a key the layout does not hold or a value of the wrong type is an
        InputError naming it; a missing key takes the default the run used."""
        d = migrate(d)
        if d["kind"] != cls.KIND:
            raise InputError(f"{where}: a run of kind {d['kind']!r}, not {cls.KIND!r}")
        check_keys(d, where, required=(), optional=(*cls.LAYOUT, "kind"))
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        try:
            for f in fields(cls):
                if f.name in d:
                    value = _checked(f.name, d[f.name], hints[f.name])
                    if value is not None or _optional(hints[f.name]):
                        values[f.name] = value
        except TypeError as e:
            raise InputError(
                f"{where}: not the settings of a run of this version ({e}); retrain with '{cls.RETRAIN}'"
            ) from None
        return cls(**values)


def _plain(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, list | tuple):
        return list(v)
    return v


def _optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def _checked(key: str, v: Any, tp: Any) -> Any:
    """`v` if it has the record's type `tp`; None for an empty text or list (the default applies)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if isinstance(tp, types.UnionType):
        if v is None:
            return None
        tp = args[0]
    origin = typing.get_origin(tp)
    if tp is str:
        if v is not None and not isinstance(v, str):
            raise TypeError(f"'{key}' is {v!r}, not a text")
        return v
    if tp is bool:
        if not isinstance(v, bool):
            raise TypeError(f"'{key}' is {v!r}, not true or false")
        return v
    if tp in (int, float):
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float)
            or not math.isfinite(v)
            or (tp is int and v != int(v))
        ):
            raise TypeError(f"'{key}' is {v!r}, not {'a whole number' if tp is int else 'a number'}")
        return tp(v)
    if origin is list:
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise TypeError(f"'{key}' is {v!r}, not a list of names")
        return v
    if origin is dict:
        if v is None:
            return {}
        if not isinstance(v, dict) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in v.values()
        ):
            raise TypeError(f"'{key}' is {v!r}, not an object of numbers")
        return {str(k): float(x) for k, x in v.items()}
    raise TypeError(f"'{key}': a field of type {tp} cannot be read")  # pragma: no cover
