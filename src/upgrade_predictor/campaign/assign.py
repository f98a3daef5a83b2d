"""Who gets the offer: the target group, its score bands, and a seeded random split stratified by band."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import InputError
from ..scoring.scorer import selected_count

BANDS = 5  # quintiles of the target group; band 1 holds the highest probabilities
MIN_ARM = 30  # fewer users than this in an arm and no rate is worth reading out
OFFER, HOLDOUT = "offer", "holdout"
COLUMNS = ("user_id", "probability", "rank", "band", "arm")


def check_share(holdout: float) -> None:
    if not (math.isfinite(holdout) and 0 < holdout < 1):
        raise InputError(f"--holdout must be a share between 0 and 1, exclusive (got {holdout})")


def assign(
    user_ids: pd.Series | np.ndarray,
    probability: pd.Series | np.ndarray,
    *,
    top: int | None = None,
    budget: float | None = None,
    offer_cost: float = 0.0,
    holdout: float = 0.2,
    seed: int = 365,
    min_arm: int = MIN_ARM,
) -> pd.DataFrame:
    """The target group ranked (1 = most likely to upgrade), cut into bands and split into offer and
    holdout; one row per targeted user, in rank order, with the columns of `COLUMNS`.

    Deterministic given the inputs and the seed, whatever order the users come in: the ranking breaks
    ties by id, and each band's users are sorted by id before the draw."""
    check_share(holdout)
    ids = np.asarray(user_ids).astype(str)
    p = np.asarray(probability, dtype="float64")
    by_id = np.argsort(ids, kind="stable")
    repeated = ids[by_id][1:] == ids[by_id][:-1]
    if repeated.any():
        first = ids[by_id][1:][repeated][0]
        raise InputError(f"user_id {first!r} is scored more than once; a user can be assigned only once")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise InputError("every probability must be a number between 0 and 1")
    n = selected_count(len(ids), top, budget, offer_cost)
    check_arms(n, holdout, min_arm)
    id_rank = np.empty(len(ids), dtype="int64")
    id_rank[by_id] = np.arange(len(ids))
    order = np.lexsort((id_rank, -p))[:n]  # by probability, ties by id
    band = 1 + (np.arange(n) * BANDS) // n
    return pd.DataFrame(
        {
            "user_id": ids[order],
            "probability": p[order],
            "rank": np.arange(1, n + 1),
            "band": band,
            "arm": _draw(band, id_rank[order], holdout, seed),
        }
    )


def arm_sizes(n: int, holdout: float) -> tuple[int, int]:
    """(offer, holdout) sizes of a target group of n as the bands' rounding makes them."""
    sizes = np.bincount(1 + (np.arange(n) * BANDS) // n, minlength=BANDS + 1)[1:] if n else np.zeros(BANDS)
    held = int(sum(round(int(m) * holdout) for m in sizes))
    return n - held, held


def check_arms(n: int, holdout: float, min_arm: int) -> None:
    """Refuse a split that leaves either arm with fewer than `min_arm` users, naming the numbers."""
    offer, held = arm_sizes(n, holdout)
    if min(offer, held) < min_arm:
        raise InputError(
            f"of the {n:,} targeted users the offer arm would hold {offer:,} and the holdout {held:,} "
            f"(--holdout {holdout:g}); each arm needs at least {min_arm}: target more users or change --holdout"
        )


def _draw(band: np.ndarray, id_rank: np.ndarray, holdout: float, seed: int) -> np.ndarray:
    """Each band's users, sorted by id, get a random permutation: its first round(m * share) are held out,
    so every band holds out the same share (to rounding)."""
    rng = np.random.default_rng(seed)
    held = np.zeros(band.size, dtype=bool)
    for b in range(1, BANDS + 1):
        rows = np.flatnonzero(band == b)
        if rows.size == 0:
            continue
        rows = rows[np.argsort(id_rank[rows], kind="stable")]
        held[rows[rng.permutation(rows.size)[: round(rows.size * holdout)]]] = True
    return np.where(held, HOLDOUT, OFFER)


def to_csv(assignments: pd.DataFrame) -> bytes:
    """assignments.csv as bytes: the same frame always gives the same bytes (probabilities in full)."""
    text: str = assignments[list(COLUMNS)].to_csv(index=False, float_format="%.17g", lineterminator="\n")
    return text.encode()


def read_csv(path: str | object) -> pd.DataFrame:
    """assignments.csv back as a frame with the types it was written with."""
    try:
        frame = pd.read_csv(
            path,  # type: ignore[call-overload]
            dtype={"user_id": str, "arm": str},
            keep_default_na=False,
            float_precision="round_trip",
        )
    except (ValueError, pd.errors.ParserError) as e:
        raise InputError(f"{path}: cannot read the assignments ({e})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: no column {missing[0]!r}; expected {', '.join(COLUMNS)}")
    bad = sorted(set(frame["arm"]) - {OFFER, HOLDOUT})
    if bad:
        raise InputError(f"{path}: column 'arm' holds {bad[0]!r}; expected 'offer' or 'holdout'")
    return frame
