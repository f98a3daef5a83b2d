"""`campaign readout SCORED_FILE`: last month's plain list, checked against the upgrades that followed,
published as a readout folder whole (readout.json with `"holdout": false`, readout.html)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from .. import config
from ..errors import InputError
from ..files import check_outputs, replaceable_folder, staged_folder, write_json_atomic, write_text_atomic
from ..sources.event_staging import event_inputs
from .listfile import ScoredList, list_fingerprint, read_scored, scoring_day
from .listread import build_list
from .outcomes import Outcomes, check_reaches, of_users, read_outcomes
from .pages import list_page
from .records import READOUT_FILE, to_dict

PAGE = "readout.html"
HINT = "read out from tables holding the users the list scored"
MAX_HORIZON = 3650


def read_out_list(
    scored_file: Path,
    events: Path,
    out: Path,
    horizon: int | None,
    as_of: str | None = None,
    mapping: Path | None = None,
    force: bool = False,
) -> Path:
    """Write OUT/readout.json and OUT/readout.html for a list `score --events` wrote; return OUT."""
    scored_file, events, out = Path(scored_file), Path(events), Path(out)
    if horizon is None:
        raise InputError(
            "--horizon is needed to read out a scored list: give the horizon in days of the model that "
            "scored it (a list records none; `train --events` uses 30 unless told)"
        )
    config.check_number("--horizon", horizon, 1, MAX_HORIZON)
    replaceable_folder(out, force, "a campaign readout", READOUT_FILE)
    check_outputs(
        {"--out": out},
        {
            "SCORED_FILE": scored_file,
            "--events": events,
            "--mapping": mapping,
            "a table of the mapping": event_inputs(events, mapping),
        },
    )
    scored = read_scored(scored_file)
    outcomes = read_outcomes(events, mapping)
    day = _day(scored, outcomes, as_of)
    check_reaches(outcomes, day[0], f"the list's as-of ({day[1]})")
    found = of_users(
        outcomes,
        scored.users["user_id"],
        "the list's",
        HINT,
    )
    readout = build_list(
        scored, list_fingerprint(scored_file), found["first_upgrade"], day, horizon, outcomes.data_end
    )
    with staged_folder(out) as tmp:
        write_json_atomic(tmp / READOUT_FILE, to_dict(readout))
        write_text_atomic(tmp / PAGE, list_page(readout))
    return out


def _day(scored: ScoredList, outcomes: Outcomes, as_of: str | None) -> tuple[date, str]:
    """The list's scoring day, read off the users the tables know: tables that end too early lack the
    latest sign-ups, and saying they end too early is the more useful refusal."""
    known = scored.users["user_id"].isin(outcomes.users.index).to_numpy()
    if not known.any():
        of_users(
            outcomes,
            scored.users["user_id"],
            "the list's",
            HINT,
        )
    present = ScoredList(scored.path, scored.users[known].reset_index(drop=True))
    registered = outcomes.users["registered"].reindex(present.users["user_id"].to_numpy())
    return scoring_day(present, registered, as_of)
