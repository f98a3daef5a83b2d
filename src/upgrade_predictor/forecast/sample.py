"""Which users' design rows an events run trains on and scores, so its cost follows a row budget, not the
platform's size.

The design grows with users x tenure (26 rows a user on the 365 tables): a platform of millions of users
has tens of millions of rows. A run trains on every row of a random sample of users holding about
`fit_rows` rows, and scores each backtest test period on every free user, or on a random sample of users
holding about `eval_rows` of that period's rows.

Why whole users, drawn uniformly: every kept user brings all of its rows, so the sample has the same mix
of tenures, dates and labels as the full design in expectation. Probabilities fitted on it are
calibrated for the full population without any weight or correction, counts of upgrades on the scored
sample estimate the population's in proportion to its share, and the folds grouped by user stay
meaningful. (Down-sampling negative rows keeps more positives but needs a prior correction that
recalibration on recent rows would then undo; the README reports what the user sample costs.)
The two samples are nested (one uniform draw per user), so a user scored in a test period is also a
training user when the training share is the larger one, and the rows computed stay as few as possible.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from upgrade_predictor.errors import InputError


@dataclass(frozen=True)
class RowBudget:
    """How many design rows a run may train on, and score in each test period (None: every row)."""

    fit_rows: int | None
    eval_rows: int | None
    windows: tuple[tuple[int, int], ...] = ()  # test periods as (first, last) cutoff day numbers
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value in (("fit_rows", self.fit_rows), ("eval_rows", self.eval_rows)):
            if value is not None and value < 1:
                raise InputError(f"the row budget's {name} must be at least 1 row, got {value}")


@dataclass(frozen=True)
class DesignSample:
    """The users a run trained on and scored, against the whole design (stated in the plan and report)."""

    rows: int  # design rows of every user
    users: int  # users with at least one design row
    positives: int  # rows of every user with an upgrade within the horizon
    fit_share: float  # share of those users whose rows train the models (1.0: every user)
    fit_users: int
    fit_rows: int
    eval_share: float  # share of users whose test-period rows are scored (1.0: every free user)
    eval_users: int
    eval_rows: int  # test-period rows scored, over every period
    eval_rows_all: int  # test-period rows of every user, over every period

    @property
    def sampled(self) -> bool:
        return self.fit_share < 1 or self.eval_share < 1

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _share(budget: int | None, rows: int) -> float:
    return 1.0 if budget is None or rows <= budget else budget / rows


def in_windows(cut: np.ndarray, windows: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Whether each cutoff day falls in any of the test periods."""
    hit = np.zeros(len(cut), dtype=bool)
    for first, last in windows:
        hit |= (cut >= first) & (cut <= last)
    return hit


def choose_rows(
    pos: np.ndarray, cut: np.ndarray, label: np.ndarray, n_users: int, budget: RowBudget | None
) -> tuple[np.ndarray, np.ndarray, DesignSample]:
    """For design rows (user position, cutoff day, label): which rows train (in_fit) and which are scored
    in a test period (in_eval), and the record of the sample."""
    counts = np.bincount(pos, minlength=n_users)
    users = int((counts > 0).sum())
    windows = budget.windows if budget else ()
    # Without test periods named, every row may be scored: the splits choose their periods themselves.
    tested = in_windows(cut, windows) if windows else np.ones(len(cut), dtype=bool)
    per_window = [int(((cut >= a) & (cut <= b)).sum()) for a, b in windows]
    fit_share = _share(budget.fit_rows if budget else None, len(pos))
    eval_share = _share(budget.eval_rows if budget else None, max(per_window, default=0))
    draw = np.random.default_rng(budget.seed if budget else 0).random(n_users)
    fit_user, eval_user = draw < fit_share, draw < eval_share
    if fit_share == 1.0:
        fit_user[:] = True
    if eval_share == 1.0:
        eval_user[:] = True
    in_fit, in_eval = fit_user[pos], eval_user[pos] & tested
    sample = DesignSample(
        rows=len(pos),
        users=users,
        positives=int(label.sum()),
        fit_share=fit_share,
        fit_users=int((fit_user & (counts > 0)).sum()),
        fit_rows=int(in_fit.sum()),
        eval_share=eval_share,
        eval_users=int((eval_user & (counts > 0)).sum()),
        eval_rows=int(in_eval.sum()),
        eval_rows_all=int(tested.sum()),
    )
    return in_fit, in_eval, sample
