"""Number formats shared by the report, the recommendations and the terminal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.{digits}f}%"


def num(x: float | None, digits: int = 3) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:,.0f}" if digits == 0 else f"{x:.{digits}f}"


def money(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:,.0f}"


def signed(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:+.{digits}f}"


def interval(lo: float | None, hi: float | None, fmt: Callable[..., str] = num, **kw: Any) -> str:
    """'[lo, hi]' in the format of the value it bounds."""
    return f"[{fmt(lo, **kw)}, {fmt(hi, **kw)}]"
