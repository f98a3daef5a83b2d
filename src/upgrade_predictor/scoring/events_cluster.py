"""Today's free users of event tables on a Dask cluster: their features computed on the workers
(`forecast.cluster.DaskEvents`) and written as Parquet parts in the users' order, either as the feature
folder of `features --dask` or to be scored by the cluster scorer of tables (`cluster.score_dataset`), so
`score --events --dask` writes the folder that table scoring with --dask writes."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import publish_folder, temp_folder
from ..forecast.cluster import DaskEvents
from ..forecast.export import default_as_of, parse_day
from ..parallel import connect
from .cluster import DaskScoreResult, score_dataset
from .events import CARRIED, ID, OnAudit, event_windows, write_audit
from .scorer import Scorer


def score_events_on_dask(
    model: Path,
    events: Path,
    out: Path,
    address: str | None = "local",
    *,
    client: Any = None,
    as_of: str | None = None,
    mapping: Path | None = None,
    top: int | None = None,
    budget: float | None = None,
    offer_cost: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    verify_key: Path | None = None,
    partitions: int | None = None,
    on_audit: OnAudit | None = None,
    audit: Path | None = None,
) -> tuple[DaskScoreResult, date]:
    """Score every user still free on `as_of` (default: the day after the last event) into the folder
    `out`, as `score_dataset` writes it, with user_id and tenure beside each user; and that day."""
    windows = event_windows(
        Scorer.load(model, verify_key=verify_key)
    )  # a bad bundle fails before the cluster
    day = parse_day(as_of)
    with connect(None if client is not None else (address or "local")) as own:
        client = client if client is not None else own
        with DaskEvents(events, mapping, client=client, partitions=partitions) as engine:
            if on_audit is not None:
                on_audit(engine.audit)
            day = day or default_as_of(engine.data_end)
            features = temp_folder(out.parent / f"{out.name}.features")
            try:
                if not engine.write_features_on(day, features, windows, drop=("cutoff",)):
                    raise InputError(f"{events}: no user is registered and still free on {day}")
                result = score_dataset(
                    model,
                    features,
                    out,
                    client=client,
                    top=top,
                    budget=budget,
                    offer_cost=offer_cost,
                    id_column=ID,
                    carry=CARRIED,
                    progress=progress,
                    verify_key=verify_key,
                )
            finally:
                shutil.rmtree(features, ignore_errors=True)
            write_audit(engine.audit, audit)
    return result, day


def write_features_folder(
    events: Path,
    out: Path,
    as_of: str | None,
    mapping: Path | None,
    force: bool,
    address: str | None = "local",
    *,
    client: Any = None,
    partitions: int | None = None,
    on_audit: OnAudit | None = None,
    audit: Path | None = None,
) -> Path:
    """Features on `as_of` of every user registered by then and still free (the rows and columns of
    `features --out FILE`), computed on a cluster and written as a folder of Parquet parts in the users'
    order; the folder appears whole or not at all."""
    if out.exists() and (not out.is_dir() or not force):
        raise InputError(f"{out} already exists; choose another --out or pass --force to replace it")
    day = parse_day(as_of)
    tmp = temp_folder(out)
    try:
        with connect(None if client is not None else (address or "local")) as own:
            with DaskEvents(events, mapping, client=client if client is not None else own,
                            partitions=partitions) as engine:  # fmt: skip
                if on_audit is not None:
                    on_audit(engine.audit)
                engine.write_features_on(day or default_as_of(engine.data_end), tmp)
                found = engine.audit
        publish_folder(tmp, out)
        write_audit(found, audit)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
