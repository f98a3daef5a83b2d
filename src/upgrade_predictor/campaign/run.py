"""`campaign readout`: check the plan is the one drawn, read each planned user's first upgrade from newer
event tables, measure the offer against the holdout and publish the readout folder whole."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from ..economics import Economics
from ..errors import InputError
from ..files import check_outputs, replaceable_folder, staged_folder, write_json_atomic, write_text_atomic
from ..forecast.engine import LocalEvents
from ..sources.event_staging import event_inputs
from ..sources.formats import file_fingerprint
from .assign import read_csv
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
    as_of = date.fromisoformat(plan.as_of)
    with LocalEvents(events, mapping) as engine:
        data_end = engine.data_end
        if data_end < as_of:
            raise InputError(
                f"{events}: the tables end on {data_end}, before the plan's as-of {as_of}; read the campaign "
                "out from tables that reach past it"
            )
        frame = engine.users_frame()[["user_id", "first_upgrade"]]
    known = frame.assign(user_id=frame["user_id"].astype(str)).set_index("user_id")["first_upgrade"]
    missing = ~users.isin(known.index)
    if missing.any():
        raise InputError(
            f"{events}: {int(missing.sum()):,} of the plan's {len(users):,} users are not in the users table "
            f"(user_id {users[missing].iloc[0]!r}, ...); read out from the tables the plan was drawn from"
        )
    return known.reindex(users.to_numpy()).reset_index(drop=True), data_end


def read_out(
    plan_dir: Path, events: Path, out: Path, mapping: Path | None = None, force: bool = False
) -> Path:
    """Write OUT/readout.json and OUT/readout.html; return OUT."""
    plan_dir, events, out = Path(plan_dir), Path(events), Path(out)
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
    )
