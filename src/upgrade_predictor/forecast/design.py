"""Which (user, cutoff) rows exist, their labels, and time-ordered splits of them.

A row asks: "standing at the start of day `cutoff`, will this still-free user make a first purchase within
`horizon` days?" Features may use only events dated before the cutoff; the label counts a purchase dated
in [cutoff, cutoff + horizon). A purchase ON the cutoff day counts for the label because the order of
events within a day is unknown, so that day's activity is kept out of the features instead.

Why these cutoffs:

* Daily cutoffs for each of the first `first_days` days of tenure (tenure 0 is the registration day).
  Upgrades come early (49% on the registration day, 84% within a week), so the hazard changes fastest
  there and the model needs to see every early tenure. Tenure 0 stays: it is the forecast made at sign-up,
  with no activity known yet, and half of all upgrades fall in its label window.
* Weekly snapshots on a fixed calendar grid (Mondays by default) for tenures >= `first_days`. On any day
  the free users to be scored span every tenure, from today's sign-ups to months-old accounts, so later
  tenures must be in training too. A fixed grid makes each snapshot look like one scoring batch (all
  free users of that date) and lets time splits cut cleanly on dates; weekly rather than daily keeps the
  row count bounded where the hazard is flat and consecutive rows would be near-duplicates.

Rows of one user overlap in their label windows, so rows are not independent: validation must group
by user (the training code's `cv_folds` with user ids as groups) or cut on time with a gap of one horizon (`time_split`, `rolling_origins`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
import pandas as pd

from upgrade_predictor.errors import InputError

from .sample import DesignSample, RowBudget, choose_rows

USER_COLUMNS = ("user_id", "registered", "first_upgrade")
_NEVER = np.iinfo(np.int64).max // 2  # day number standing for "no upgrade"; far beyond any cutoff + horizon


@dataclass(frozen=True)
class CutoffPlan:
    """Where cutoffs fall: daily for the first `first_days` days, then on a weekly (or other) calendar grid."""

    first_days: int = 14
    calendar_every_days: int = 7
    horizon: int = 30
    calendar_anchor: date = date(2000, 1, 3)  # a Monday; the grid is anchor + k * calendar_every_days

    def __post_init__(self) -> None:
        if self.first_days < 0 or self.calendar_every_days < 1 or self.horizon < 1:
            raise InputError(
                f"cutoff plan first_days={self.first_days}, calendar_every_days={self.calendar_every_days}, "
                f"horizon={self.horizon} is invalid; use first_days >= 0 and the other two >= 1"
            )


@dataclass(frozen=True)
class Exclusions:
    """User-cutoff pairs (cutoff <= data_end) that are not rows, by reason; each pair counts once."""

    upgraded_before: int  # the user had already upgraded before the cutoff (checked first)
    horizon_past_end: int  # still free, but the label window runs past data_end
    users_without_rows: int  # users left with no row at all

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Design:
    """The rows of a hazard-style training table and how they were chosen."""

    rows: pd.DataFrame  # user_id, cutoff, tenure_days, kind, label, upgrade_in_days, in_fit, in_eval
    horizon: int
    data_end: date
    plan: CutoffPlan
    excluded: Exclusions
    sample: DesignSample  # the users trained on and scored (every user without a row budget)

    def fit_rows(self) -> np.ndarray:
        """Positions of the rows a model may train on (every row of the sampled users)."""
        return np.flatnonzero(self.rows["in_fit"].to_numpy())


@dataclass
class TimeSplit:
    """Row positions (into Design.rows) of a training period and a later test period."""

    train: np.ndarray
    test: np.ndarray
    test_start: date
    test_end: date
    train_cutoff_end: date  # latest training cutoff
    train_label_end: date  # last day any training label looks at
    gap_days: int  # days from the latest training cutoff to the first test cutoff (>= horizon)


# ---------------------------------------------------------------- inputs


def _day_numbers(values: pd.Series, what: str) -> np.ndarray:
    """Calendar days as int64 days since 1970-01-01 (NaT -> _NEVER), whatever the datetime resolution."""
    if not pd.api.types.is_datetime64_any_dtype(values):
        raise InputError(f"column {what} must hold dates (datetime64); parse it with pd.to_datetime first")
    days = values.to_numpy().astype("datetime64[D]")
    out = days.astype(np.int64)
    out[np.isnat(days)] = _NEVER
    return out


def day_number(d: date) -> int:
    """A date as int64 days since 1970-01-01, the unit every cutoff computation here uses."""
    return int(np.datetime64(d, "D").astype(np.int64))


def _from_day(n: int) -> date:
    return pd.Timestamp(np.datetime64(int(n), "D")).date()


def check_users(users: pd.DataFrame, data_end: date) -> tuple[np.ndarray, np.ndarray]:
    """Registration and first-upgrade day numbers (no upgrade -> a far-future day), after checking the table."""
    missing = [c for c in USER_COLUMNS if c not in users.columns]
    if missing:
        raise InputError(f"users table is missing column(s) {', '.join(missing)}; it needs {USER_COLUMNS}")
    if users["user_id"].isna().any() or not users["user_id"].is_unique:
        raise InputError("users.user_id must be present and unique (one row per user); deduplicate it")
    reg = _day_numbers(users["registered"], "users.registered")
    upg = _day_numbers(users["first_upgrade"], "users.first_upgrade")
    if (reg == _NEVER).any():
        row = int(np.flatnonzero(reg == _NEVER)[0])
        raise InputError(f"users.registered is empty at row {row}; every user needs a registration date")
    late = reg > day_number(data_end)
    if late.any():
        row = int(np.flatnonzero(late)[0])
        raise InputError(
            f"{int(late.sum())} users registered after data_end {data_end} (first: row {row}); "
            "cut the tables at data_end or pass a later data_end"
        )
    early = (upg != _NEVER) & (upg < reg)
    if early.any():
        row = int(np.flatnonzero(early)[0])
        raise InputError(
            f"{int(early.sum())} users upgraded before registering (first: row {row}, user "
            f"{users['user_id'].iloc[row]}); fix the purchase or registration dates"
        )
    return reg, upg


def users_from_tables(info: pd.DataFrame, purchases: pd.DataFrame) -> pd.DataFrame:
    """The users table from the raw student info and purchase tables (first purchase = upgrade).

    Columns out: user_id (str), registered, first_upgrade (datetime64[ns], NaT when never), plus every other
    column of `info` (e.g. student_country) as a static attribute.
    """
    for name, frame, cols in (
        ("student info", info, ("student_id", "date_registered")),
        ("purchases", purchases, ("student_id", "date_purchased")),
    ):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise InputError(f"{name} table is missing column(s) {', '.join(missing)}")
    try:
        registered = pd.to_datetime(info["date_registered"]).astype("datetime64[ns]")
        bought = pd.to_datetime(purchases["date_purchased"]).astype("datetime64[ns]")
    except (ValueError, TypeError) as exc:
        raise InputError(f"a date_registered or date_purchased value is not a date ({exc}); fix it") from None
    ids = info["student_id"].astype(str)
    buyer_ids = purchases["student_id"].astype(str)
    unknown = ~buyer_ids.isin(set(ids))
    if unknown.any():
        raise InputError(
            f"{int(unknown.sum())} purchases belong to students missing from student info "
            f"(first: student {buyer_ids[unknown].iloc[0]}); use tables from the same extract"
        )
    first = bought.groupby(buyer_ids.to_numpy()).min()
    users = info.drop(columns=["student_id", "date_registered"]).copy()
    users.insert(0, "user_id", ids.to_numpy())
    users.insert(1, "registered", registered.dt.floor("D").to_numpy())
    users.insert(2, "first_upgrade", ids.map(first).astype("datetime64[ns]").dt.floor("D").to_numpy())
    return users.reset_index(drop=True)


# ---------------------------------------------------------------- rows and labels


def _candidate_cutoffs(reg: np.ndarray, end: int, plan: CutoffPlan) -> tuple[np.ndarray, np.ndarray]:
    """(user position, cutoff day) of every planned cutoff on or before `end`, tenure then calendar."""
    n = len(reg)
    first = plan.first_days
    pos_t = np.repeat(np.arange(n), first)
    cut_t = reg[pos_t] + np.tile(np.arange(first, dtype=np.int64), n)
    # First grid day at tenure >= first_days; floor division keeps this right for dates before the anchor.
    every, anchor = plan.calendar_every_days, day_number(plan.calendar_anchor)
    start = reg + first
    g0 = anchor + ((start - anchor + every - 1) // every) * every
    counts = np.where(g0 <= end, (end - g0) // every + 1, 0)
    pos_c = np.repeat(np.arange(n), counts)
    step = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    cut_c = g0[pos_c] + step * every
    pos = np.concatenate([pos_t, pos_c])
    cut = np.concatenate([cut_t, cut_c])
    keep = cut <= end
    return pos[keep], cut[keep]


def _labels(cut: np.ndarray, upg: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Label 1 when the first upgrade falls in [cutoff, cutoff + horizon); days from cutoff, else NaN."""
    hit = (upg >= cut) & (upg < cut + horizon)
    days = np.where(hit, (upg - cut).astype(float), np.nan)
    return hit.astype(np.int64), days


def build_design(
    users: pd.DataFrame, data_end: date, plan: CutoffPlan | None = None, budget: RowBudget | None = None
) -> Design:
    """Every (still-free user, cutoff) pair of the plan whose label window ends inside the data; with a
    `budget`, only the rows of the users sampled to train on or to be scored (see `sample.py`), the rest
    never materialized."""
    plan = plan or CutoffPlan()
    reg, upg = check_users(users, data_end)
    end, h = day_number(data_end), plan.horizon
    pos, cut = _candidate_cutoffs(reg, end, plan)
    already = upg[pos] < cut
    past_end = ~already & (cut + h - 1 > end)
    keep = ~already & ~past_end
    pos, cut = pos[keep], cut[keep]
    label, days = _labels(cut, upg[pos], h)
    in_fit, in_eval, sample = choose_rows(pos, cut, label, len(users), budget)
    kept = in_fit | in_eval
    pos, cut, label, days = pos[kept], cut[kept], label[kept], days[kept]
    in_fit, in_eval = in_fit[kept], in_eval[kept]
    tenure = cut - reg[pos]
    rows = pd.DataFrame(
        {
            "user_id": users["user_id"].to_numpy()[pos],
            "cutoff": cut.astype("datetime64[D]").astype("datetime64[ns]"),
            "tenure_days": tenure,
            "kind": np.where(tenure < plan.first_days, "tenure", "calendar"),
            "label": label,
            "upgrade_in_days": days,
            "in_fit": in_fit,
            "in_eval": in_eval,
        }
    )
    rows = rows.sort_values(["cutoff", "user_id"], kind="stable").reset_index(drop=True)
    excluded = Exclusions(
        upgraded_before=int(already.sum()),
        horizon_past_end=int(past_end.sum()),
        users_without_rows=int(len(users) - sample.users),
    )
    return Design(rows=rows, horizon=h, data_end=data_end, plan=plan, excluded=excluded, sample=sample)


def label_rows(
    rows: pd.DataFrame, users: pd.DataFrame, horizon: int, *, data_end: date | None = None
) -> pd.DataFrame:
    """`rows` (user_id, cutoff) with label and upgrade_in_days filled from users' first upgrades.

    For scoring-time evaluation: score free users at a cutoff, then label them once the horizon has
    passed. Rows of users who had already upgraded are an error (a paid user is not scored); so is a
    window running past `data_end` when it is given, because its label is not known yet.
    """
    for col in ("user_id", "cutoff"):
        if col not in rows.columns:
            raise InputError(f"rows are missing column {col}; they need user_id and cutoff")
    if horizon < 1:
        raise InputError(f"horizon must be at least 1 day, got {horizon}")
    if users["user_id"].isna().any() or not users["user_id"].is_unique:
        raise InputError("users.user_id must be present and unique (one row per user); deduplicate it")
    where = pd.Index(users["user_id"]).get_indexer(rows["user_id"])
    if (where < 0).any():
        first = rows["user_id"].iloc[int(np.flatnonzero(where < 0)[0])]
        raise InputError(
            f"{int((where < 0).sum())} rows name users missing from the users table (e.g. {first})"
        )
    cut = _day_numbers(rows["cutoff"], "rows.cutoff")
    upg = _day_numbers(users["first_upgrade"], "users.first_upgrade")[where]
    before = upg < cut
    if before.any():
        i = int(np.flatnonzero(before)[0])
        raise InputError(
            f"{int(before.sum())} rows are for users who upgraded before their cutoff (e.g. user "
            f"{rows['user_id'].iloc[i]} at {_from_day(cut[i])}); drop them, a paid user is not scored"
        )
    if data_end is not None and (cut + horizon - 1 > day_number(data_end)).any():
        late = _from_day(int(cut.max()))
        raise InputError(
            f"rows with cutoffs up to {late} need data past data_end {data_end} for a {horizon}-day label; "
            "wait, or drop the late cutoffs"
        )
    out = rows.copy()
    out["label"], out["upgrade_in_days"] = _labels(cut, upg, horizon)
    return out


# ---------------------------------------------------------------- time-ordered evaluation


def _split_at(design: Design, test_end: int, test_days: int) -> TimeSplit:
    h = design.horizon
    cut = _day_numbers(design.rows["cutoff"], "rows.cutoff")
    test_start = test_end - test_days + 1
    # Training rows are the sampled users' (all users without a row budget); test rows are the scored
    # users' of the period (every free user without one).
    fit, scored = _role(design, "in_fit"), _role(design, "in_eval")
    test = np.flatnonzero((cut >= test_start) & (cut <= test_end) & scored)
    train = np.flatnonzero((cut + h <= test_start) & fit)
    if len(test) == 0 or len(train) == 0:
        raise InputError(
            f"no {'test' if len(test) == 0 else 'training'} rows for a test period starting "
            f"{_from_day(test_start)}: the data are too short for horizon {h} and test_days {test_days}; "
            "shorten them or use fewer origins"
        )
    train_cut_end = int(cut[train].max())
    # Hard checks (not `assert`, which -O strips): a training label must close before the first test
    # cutoff, and every test label must be fully observed.
    if train_cut_end + h - 1 >= test_start or int(cut[test].max()) + h - 1 > day_number(design.data_end):
        raise RuntimeError("time split leaks: a training label window reaches into the test period")
    return TimeSplit(
        train=train,
        test=test,
        test_start=_from_day(test_start),
        test_end=_from_day(test_end),
        train_cutoff_end=_from_day(train_cut_end),
        train_label_end=_from_day(train_cut_end + h - 1),
        gap_days=test_start - train_cut_end,
    )


def _role(design: Design, column: str) -> np.ndarray:
    """A row-role column of the design (every row has both roles in a design built without them)."""
    rows = design.rows
    return rows[column].to_numpy() if column in rows.columns else np.ones(len(rows), dtype=bool)


def _last_cutoff(design: Design) -> int:
    """The latest cutoff whose label window still ends inside the data."""
    return last_cutoff(design.data_end, design.horizon)


def last_cutoff(data_end: date, horizon: int) -> int:
    """The latest cutoff (a day number) whose label window still ends inside the data."""
    return day_number(data_end) - horizon + 1


def backtest_periods(
    data_end: date, horizon: int, n_origins: int, step_days: int, test_days: int
) -> tuple[tuple[int, int], ...]:
    """The (first, last) cutoff days of the test periods `rolling_origins` cuts, oldest first."""
    last = last_cutoff(data_end, horizon)
    ends = [last - k * step_days for k in reversed(range(n_origins))]
    return tuple((e - test_days + 1, e) for e in ends)


def time_split(design: Design, test_days: int = 28) -> TimeSplit:
    """Test on the last `test_days` days of labelable cutoffs; train on rows whose labels close before."""
    if test_days < 1:
        raise InputError(f"test_days must be at least 1, got {test_days}")
    return _split_at(design, _last_cutoff(design), test_days)


def rolling_origins(
    design: Design, n_origins: int = 3, step_days: int = 30, test_days: int = 28
) -> list[TimeSplit]:
    """`n_origins` time splits whose test periods end `step_days` apart, oldest first, the last = time_split."""
    if n_origins < 1 or step_days < 1 or test_days < 1:
        raise InputError(
            f"n_origins={n_origins}, step_days={step_days}, test_days={test_days}: each must be at least 1"
        )
    periods = backtest_periods(design.data_end, design.horizon, n_origins, step_days, test_days)
    return [_split_at(design, last, test_days) for _, last in periods]
