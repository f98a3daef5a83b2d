"""`campaign plan`: score the users free on a day as `score --events` does, draw the offer and holdout
arms, size what the campaign can detect, and publish the plan folder whole."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import config
from ..economics import Economics
from ..errors import InputError
from ..files import (
    check_outputs,
    replaceable_folder,
    staged_folder,
    write_atomic,
    write_json_atomic,
    write_text_atomic,
)
from ..scoring.events import event_windows, score_events
from ..scoring.scorer import Scorer, selected_count
from ..sources.event_staging import event_inputs
from ..sources.formats import file_fingerprint
from .assign import OFFER, assign, check_share, to_csv
from .pages import plan_page
from .power import campaign_power
from .records import PLAN_FILE, ArmPlan, Plan, PowerRecord, to_dict

ASSIGNMENTS, SEND, PAGE = "assignments.csv", "send.csv", "plan.html"


@dataclass(frozen=True)
class Scored:
    """The free users of the scoring day and their forecast probabilities."""

    users: pd.DataFrame  # user_id, probability
    day: str
    horizon: int


def score_free_users(model: Path, events: Path, as_of: str | None, mapping: Path | None) -> Scored:
    """Every user free on `as_of` scored through the one batch path of `score --events`."""
    scorer = Scorer.load(model)
    event_windows(scorer)  # a table bundle is refused before the tables are read
    meta = scorer.bundle.metadata.events
    assert meta is not None  # event_windows refused a bundle without it
    with tempfile.TemporaryDirectory(prefix="upgrade_predictor_") as tmp:
        ranked = Path(tmp) / "ranked.parquet"
        _, day = score_events(scorer, events, ranked, as_of=as_of, mapping=mapping)
        users = pd.read_parquet(ranked, columns=["user_id", "probability"])
    if users.empty:
        raise InputError(
            f"{events}: no user free on {day} could be scored; see the rejects of score --events"
        )
    return Scored(users, day.isoformat(), int(meta.horizon))


def plan_campaign(
    model: Path,
    events: Path,
    out: Path,
    as_of: str | None = None,
    top: int | None = None,
    budget: float | None = None,
    holdout: float = 0.2,
    seed: int = config.SEED,
    offer_cost: float = config.OFFER_COST,
    upgrade_value: float = config.UPGRADE_VALUE,
    discount: float = 0.0,
    mapping: Path | None = None,
    force: bool = False,
) -> Path:
    """Write OUT/assignments.csv, send.csv, campaign.json and plan.html; return OUT."""
    model, events, out = Path(model), Path(events), Path(out)
    economics = Economics(offer_cost, upgrade_value, discount)
    check_share(holdout)
    selected_count(1, top, budget, offer_cost)  # bad --top or --budget refused before any table is read
    config.check_number("--seed", seed, 0, config.MAX_SEED)
    replaceable_folder(out, force, "a campaign plan", PLAN_FILE)
    check_outputs(
        {"--out": out},
        {
            "MODEL": model,
            "--events": events,
            "--mapping": mapping,
            "a table of the mapping": event_inputs(events, mapping),
        },
    )
    scored = score_free_users(model, events, as_of, mapping)
    table = assign(
        scored.users["user_id"],
        scored.users["probability"],
        top=top,
        budget=budget,
        offer_cost=offer_cost,
        holdout=holdout,
        seed=seed,
    )
    data = to_csv(table)
    plan = _plan(table, scored, economics, model, events, mapping, seed, holdout, top, budget, data)
    send = table.loc[table["arm"] == OFFER, ["user_id"]].to_csv(index=False, lineterminator="\n")
    with staged_folder(out) as tmp:
        write_atomic(tmp / ASSIGNMENTS, lambda f: f.write(data))
        write_text_atomic(tmp / SEND, send)
        write_json_atomic(tmp / PLAN_FILE, to_dict(plan))
        write_text_atomic(tmp / PAGE, plan_page(plan, table))
    return out


def _plan(
    table: pd.DataFrame,
    scored: Scored,
    economics: Economics,
    model: Path,
    events: Path,
    mapping: Path | None,
    seed: int,
    holdout: float,
    top: int | None,
    budget: float | None,
    data: bytes,
) -> Plan:
    p = table["probability"].to_numpy(dtype="float64")
    offer = table["arm"].to_numpy() == OFFER
    power = campaign_power(p, int(offer.sum()), int((~offer).sum()), economics)
    return Plan(
        as_of=scored.day,
        horizon=scored.horizon,
        model=str(model),
        model_sha256=file_fingerprint(model),
        events=str(events),
        mapping=str(mapping) if mapping is not None else None,
        economics=economics.as_dict(),
        seed=seed,
        holdout_share=holdout,
        top=top,
        budget=budget,
        scored_users=len(scored.users),
        targeted_users=len(table),
        offer=ArmPlan(int(offer.sum()), float(p[offer].sum())),
        holdout=ArmPlan(int((~offer).sum()), float(p[~offer].sum())),
        power=PowerRecord(
            baseline=power.baseline,
            mde=power.mde,
            break_even=power.break_even,
            can_tell=power.can_tell,
            alpha=power.alpha,
            power=power.power,
            method=power.method,
            warning=power.warning,
        ),
        assignments_sha256=hashlib.sha256(data).hexdigest(),
    )
