"""The aggregated-table model, rebuilt from the events: what training on `ml_datasource.csv` costs.

That table sums each user's engagement up to the first purchase for buyers and up to the extract date for
everyone else, and labels a user by whether they ever bought. Rebuilt here as of an origin date (the
extract), trained with the chosen pipeline, and applied point in time to the origin's test rows, it
shows how a model fitted on a leaking snapshot forecasts the future.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from ..training.candidates import Candidate
from .design import TimeSplit
from .engine import EventEngine
from .matrix import Matrix, build_matrix
from .protocol import events_pipeline, predict_rows


def aggregated_rows(users: pd.DataFrame, extract: date) -> pd.DataFrame:
    """One row per user registered before `extract`: buyers (first upgrade before it) measured up to and
    including the purchase day, label 1; everyone else measured up to the extract, label 0."""
    day = pd.Timestamp(extract)
    known = users[users["registered"] < day]
    bought = known["first_upgrade"].notna() & (known["first_upgrade"] < day)
    cutoff = known["first_upgrade"].where(bought, day - timedelta(days=1)) + timedelta(days=1)
    return pd.DataFrame(
        {
            "user_id": known["user_id"].to_numpy(),
            "cutoff": cutoff.to_numpy(),
            "label": bought.astype(int).to_numpy(),
        }
    )


def aggregated_predictions(
    engine: EventEngine,
    users: pd.DataFrame,
    m: Matrix,
    cand: Candidate,
    split: TimeSplit,
    seed: int,
    threads: int = 1,
) -> np.ndarray:
    """Fit the candidate on the aggregated table as of the origin (on `threads` threads: these fits run
    one after another); probabilities on the origin's test rows.

    `users` are the users the run trains on (its sample, under a row budget)."""
    rows = aggregated_rows(users, split.test_start)
    train = build_matrix(engine.attributes, engine.features_at(rows[["user_id", "cutoff"]]), m.schema)
    pipe = events_pipeline(cand, m.schema, seed, len(rows), threads).fit(train.X, rows["label"].to_numpy())
    return np.asarray(predict_rows(pipe, m.X, split.test), dtype="float64")
