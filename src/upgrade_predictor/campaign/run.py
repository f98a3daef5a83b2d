"""`campaign readout`: check the plan is the one drawn, read each planned user's first upgrade from newer
event tables, measure the offer against the holdout and publish the readout folder whole."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from ..economics import Economics
from ..errors import InputError
from ..files import check_outputs, replaceable_folder, staged_folder, write_json_atomic, write_text_atomic
from ..sources.event_staging import event_inputs
from ..sources.formats import file_fingerprint
from .assign import read_csv
from .listfile import is_scored_file, scored_parts
from .listrun import read_out_list
from .outcomes import check_reaches, of_users, read_outcomes
from .pages import readout_page
from .plan import ASSIGNMENTS
from .readout import measure
from .records import PLAN_FILE, READOUT_FILE, Plan, Readout, read_record, to_dict

PAGE = "readout.html"


def load_plan(plan_dir: Path) -> tuple[Plan, pd.DataFrame]:
    """The plan and its assignments, refused when assignments.csv is not the file the plan drew."""
    plan = read_record(Plan, plan_dir / PLAN_FILE)
    path = plan_dir / ASSIGNMENTS
    if not path.is_file():
        raise InputError(f"{path} does not exist; give the folder `campaign plan` wrote")
    if file_fingerprint(path) != plan.assignments_sha256:
        raise InputError(
            f"{path} is not the file this plan drew (its sha256 differs from the one in {PLAN_FILE}); "
            "a changed assignment cannot be read out: restore the file or plan again"
        )
    return plan, read_csv(path)


def first_upgrades(
    events: Path, mapping: Path | None, plan: Plan, users: pd.Series
) -> tuple[pd.Series, date]:
    """Each planned user's first upgrade day (NaT if none) in the tables, and the tables' last day."""
    outcomes = read_outcomes(events, mapping)
    check_reaches(outcomes, date.fromisoformat(plan.as_of), "the plan's as-of")
    found = of_users(outcomes, users, "the plan's", "read out from the tables the plan was drawn from")
    return found["first_upgrade"], outcomes.data_end


def read_out(
    plan_dir: Path,
    events: Path,
    out: Path,
    mapping: Path | None = None,
    force: bool = False,
    as_of: str | None = None,
    horizon: int | None = None,
) -> Path:
    """Write OUT/readout.json and OUT/readout.html; return OUT. `plan_dir` may instead be a list that
    `score --events` wrote: then the forecast is checked against what happened (`listrun.py`)."""
    plan_dir, events, out = Path(plan_dir), Path(events), Path(out)
    if scored_parts(plan_dir) or not plan_dir.is_dir() and (plan_dir.is_file() or is_scored_file(plan_dir)):
        return read_out_list(plan_dir, events, out, horizon, as_of, mapping, force)
    if as_of is not None or horizon is not None:
        raise InputError(
            f"--{'as-of' if as_of is not None else 'horizon'} is for a scored list; {plan_dir} is a plan, "
            f"whose {PLAN_FILE} records its as-of and horizon"
        )
    replaceable_folder(out, force, "a campaign readout", READOUT_FILE)
    plan, table = load_plan(plan_dir)
    if mapping is None and plan.mapping is not None:
        mapping = Path(plan.mapping)  # the tables read as the plan read them
    check_outputs(
        {"--out": out},
        {
            "PLAN_DIR": plan_dir,
            "--events": events,
            "--mapping": mapping,
            "a table of the mapping": event_inputs(events, mapping),
        },
    )
    upgrades, data_end = first_upgrades(events, mapping, plan, table["user_id"])
    readout = build(plan, table, upgrades, data_end)
    with staged_folder(out) as tmp:
        write_json_atomic(tmp / READOUT_FILE, to_dict(readout))
        write_text_atomic(tmp / PAGE, readout_page(readout))
    return out


def build(plan: Plan, table: pd.DataFrame, first_upgrade: pd.Series, data_end: date) -> Readout:
    """The readout of the plan's users given each one's first upgrade day: an upgrade counts when it falls
    in [as_of, as_of + horizon); one before the as-of (a late record) is not the offer's doing."""
    as_of = date.fromisoformat(plan.as_of)
    window_end = as_of + timedelta(days=plan.horizon - 1)
    days = pd.to_datetime(first_upgrade)
    hit = (days >= pd.Timestamp(as_of)) & (days <= pd.Timestamp(window_end))
    frame = table.assign(upgraded=hit.fillna(False).astype("int64").to_numpy())
    m = measure(frame, Economics(**plan.economics), plan.holdout_share)
    days_open = max(0, (window_end - data_end).days)
    return Readout(
        as_of=plan.as_of,
        horizon=plan.horizon,
        window_end=window_end.isoformat(),
        data_end=data_end.isoformat(),
        horizon_closed=days_open == 0,
        days_open=days_open,
        interim=days_open > 0,
        assignments_sha256=plan.assignments_sha256,
        offer=m.offer,
        holdout=m.holdout,
        bands=m.bands,
        effect=m.effect,
        incremental_upgrades=m.incremental_upgrades,
        profit=m.profit,
        calibration=m.calibration,
        srm=m.srm,
        balance=m.balance,
    )
