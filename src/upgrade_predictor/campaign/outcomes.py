"""What happened to a readout's users: each one's registration and first upgrade day, read from newer
event tables, and the tables' last day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..forecast.engine import LocalEvents


@dataclass(frozen=True)
class Outcomes:
    users: pd.DataFrame  # registered, first_upgrade (NaT if none), indexed by user_id as text
    data_end: date
    events: Path


def read_outcomes(events: Path, mapping: Path | None) -> Outcomes:
    with LocalEvents(events, mapping) as engine:
        data_end = engine.data_end
        frame = engine.users_frame()[["user_id", "registered", "first_upgrade"]]
    users = frame.assign(user_id=frame["user_id"].astype(str)).set_index("user_id")
    return Outcomes(users, data_end, events)


def check_reaches(outcomes: Outcomes, as_of: date, what: str) -> None:
    """Refuse tables that end before the as-of: not one day of the window could be read."""
    if outcomes.data_end < as_of:
        raise InputError(
            f"{outcomes.events}: the tables end on {outcomes.data_end}, before {what} {as_of}; read the "
            "campaign out from tables that reach past it"
        )


def of_users(outcomes: Outcomes, users: pd.Series, whose: str, hint: str) -> pd.DataFrame:
    """registered and first_upgrade of `users`, in their order; refused when one is not in the tables."""
    known = outcomes.users
    missing = ~users.isin(known.index)
    if missing.any():
        raise InputError(
            f"{outcomes.events}: {int(missing.sum()):,} of {whose} {len(users):,} users are not in the users "
            f"table (user_id {users[missing].iloc[0]!r}, ...); {hint}"
        )
    return known.reindex(users.to_numpy()).reset_index(drop=True)
