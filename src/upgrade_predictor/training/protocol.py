"""The training protocol: split once, compare on identical folds, tune, pick a threshold, test once."""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from joblib import Parallel, delayed
from rich.console import Console
from rich.progress import Progress
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict, train_test_split

from .. import config, evaluation
from ..bundle import check_signing_key
from ..console import say, warn
from ..data_audit import feature_keys
from ..dataset import Dataset
from ..errors import InputError
from ..evaluation import Scores
from ..models import (
    FAMILIES,
    KNN_MAX_NEIGHBOURS,
    SMOTE_K,
    STRATEGY_LABELS,
    build_pipeline,
    build_reference,
    calibrated,
    calibration_folds,
    grouped_calibration_splits,
    supports,
)
from ..schema import Schema
from .metrics import Chosen, Limits
from .summary import progress_bar

REFERENCE = "reference"
# Rows of each class every CV training fold and the whole training part must hold: the final fit's
# calibration splits the training part 5 ways, the SVM's own Platt scaling splits each fit 3 ways,
# and SMOTE needs neighbours.
MIN_CLASS_PER_FOLD = 5


@dataclass
class TrainConfig:
    data: Path | None = None
    target: str = config.TARGET
    out: Path | None = None
    budget: str = config.BUDGET
    seed: int = config.SEED
    id_column: str | None = None
    positive: str | None = None
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    test_size: float = config.TEST_SIZE
    group_duplicates: bool = False
    group_column: str | None = None  # rows sharing its value stay on one side of every split
    families: list[str] = field(default_factory=lambda: list(config.FAMILIES))
    strategies: list[str] = field(default_factory=lambda: list(config.STRATEGIES))
    objective: str = config.OBJECTIVE
    threshold: str = config.THRESHOLD
    offer_cost: float = config.OFFER_COST
    upgrade_value: float = config.UPGRADE_VALUE
    jobs: int = config.JOBS
    report: bool = True
    force: bool = False
    dask: str | None = None  # a scheduler address, or "local"
    # Event runs: a folder of dated tables instead of one table (data and the table options are unused).
    events: Path | None = None
    mapping: Path | None = None  # TOML mapping of the tables; the 365 layout is built in
    horizon: int = config.HORIZON
    sign_key: Path | None = None  # a private key: model.zip is signed (model.zip.sig beside it)
    time_limit: float | None = None  # seconds for the whole run; None: the budget's trial counts only

    def check(self) -> config.Budget:
        if self.budget not in config.BUDGETS:
            raise InputError(f"--budget {self.budget!r}: choose quick, standard or thorough")
        bad = [f for f in self.families if f not in FAMILIES]
        if bad:
            raise InputError(f"--families: unknown {', '.join(bad)}; choose from {', '.join(FAMILIES)}")
        bad = [s for s in self.strategies if s not in config.STRATEGIES]
        if bad:
            raise InputError(
                f"--strategies: unknown {', '.join(bad)}; choose from {', '.join(config.STRATEGIES)}"
            )
        if self.objective not in evaluation.METRICS or self.objective in evaluation.LOWER_IS_BETTER:
            ok = [m for m in evaluation.METRICS if m not in evaluation.LOWER_IS_BETTER]
            raise InputError(f"--objective {self.objective!r}: choose one of {', '.join(ok)}")
        if self.threshold not in ("f1", "profit"):
            raise InputError(f"--threshold {self.threshold!r}: choose f1 or profit")
        if self.group_column and self.group_duplicates:
            raise InputError(
                f"--group {self.group_column} and --group-duplicates: choose one way to keep rows together"
            )
        if self.sign_key is not None:  # a bad key must fail now, not after an hour of training
            check_signing_key(self.sign_key)
        config.check_number("--seed", self.seed, 0, config.MAX_SEED)
        config.check_number("--offer-cost", self.offer_cost, 0, above=True)
        config.check_number("--upgrade-value", self.upgrade_value, 0, above=True)
        config.check_number("--jobs", self.jobs, 1, 1024)
        config.check_number("--test-size", self.test_size)
        if not 1 <= self.horizon <= 365:
            raise InputError(f"--horizon {self.horizon}: choose a number of days from 1 to 365")
        if not 0.05 <= self.test_size <= 0.5:
            raise InputError(f"--test-size {self.test_size}: choose a share between 0.05 and 0.5")
        if self.time_limit is not None and not (math.isfinite(self.time_limit) and self.time_limit > 0):
            raise InputError(
                f"--time-limit {self.time_limit}: give the whole run's wall-clock limit as a positive "
                "number of seconds (e.g. 600), or leave it out"
            )
        return config.BUDGETS[self.budget]


@dataclass
class RunClock:
    """The wall clock of one run: the seconds each stage took and, under a time limit, what is left.

    `listen`, when given, hears each stage's name as it starts (a benchmark attributes memory by it)."""

    limit: float | None = None  # seconds for the whole run
    listen: Callable[[str], None] | None = None
    started: float = field(default_factory=time.perf_counter)
    stages: dict[str, float] = field(default_factory=dict)  # stage -> seconds, in the order run
    stage: str | None = None
    since: float = 0.0

    def mark(self, stage: str | None) -> None:
        """End the current stage and start `stage` (None: just end it); a stage run twice adds up."""
        now = time.perf_counter()
        if self.stage is not None:
            self.stages[self.stage] = self.stages.get(self.stage, 0.0) + now - self.since
        self.stage, self.since = stage, now
        if stage is not None and self.listen is not None:
            self.listen(stage)

    def deadline(self, stage: str) -> float | None:
        """When `stage` ("comparison" or "tuning") should end under the time limit (None without one)."""
        if self.limit is None:
            return None
        return self.started + config.TIME_SHARES[stage] * self.limit

    def left(self, stage: str) -> float | None:
        """Seconds until `stage`'s deadline (negative once passed; None without a limit)."""
        end = self.deadline(stage)
        return None if end is None else end - time.perf_counter()


@dataclass(frozen=True)
class Candidate:
    family: str
    strategy: str
    params: dict = field(default_factory=dict, hash=False, compare=False)
    tuned: bool = False
    fit_rows: int | None = field(default=None, compare=False)  # at most this many rows per fit
    smote_k: int = field(default=SMOTE_K, compare=False)

    @property
    def key(self) -> str:
        if self.family == REFERENCE:
            return REFERENCE
        return f"{self.family}/{self.strategy}" + ("/tuned" if self.tuned else "")

    def build(self, schema, seed: int):
        if self.family == REFERENCE:
            return build_reference(seed, self.fit_rows)
        return build_pipeline(
            schema, self.family, self.strategy, self.params, seed, self.fit_rows, self.smote_k
        )


@dataclass
class CVResult:
    candidate: Candidate
    folds: list[evaluation.Scores]
    oof: np.ndarray  # mean out-of-fold probability over repeats
    fit_seconds: float
    fit_rows: int = 0  # rows each CV fit used (the largest fold; a capped family's sample)
    fold_rows: int = 0  # rows of the largest CV training fold

    @property
    def summary(self) -> dict[str, float]:
        return evaluation.summarise(self.folds)

    def mean(self, metric: str) -> float:
        return self.summary[f"{metric}_mean"]


# ---------------------------------------------------------------- split and folds


def row_groups(ds: Dataset, cfg: TrainConfig) -> np.ndarray | None:
    """The group of every row that must stay on one side of the hold-out and every fold: the --group
    column, or feature-identical rows with --group-duplicates; None when rows split freely."""
    if cfg.group_column:
        return ds.groups
    return feature_keys(ds.X).to_numpy() if cfg.group_duplicates else None


def holdout_split(y: np.ndarray, groups: np.ndarray | None, test_size: float, seed: int):
    """Stratified hold-out; the same rows as train_test_split(test_size, random_state=seed, stratify=y)."""
    idx = np.arange(len(y))
    if groups is None:
        tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=y)
        return np.sort(tr), np.sort(te)
    n_splits = max(2, round(1 / test_size))
    tr, te = next(StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(idx, y, groups))
    return tr, te


def cv_folds(y: np.ndarray, groups: np.ndarray | None, budget: config.Budget, seed: int):
    """Repeated stratified k-fold (grouped when asked), as a list of (repeat, train, validation)."""
    folds: list[tuple[int, np.ndarray, np.ndarray]] = []
    for r in range(budget.cv_repeats):
        if groups is None:
            splitter = StratifiedKFold(budget.cv_splits, shuffle=True, random_state=seed + r)
            parts = splitter.split(np.zeros(len(y)), y)
        else:
            splitter = StratifiedGroupKFold(budget.cv_splits, shuffle=True, random_state=seed + r)
            parts = splitter.split(np.zeros(len(y)), y, groups)
        folds.extend((r, tr, va) for tr, va in parts)
    return folds


# ---------------------------------------------------------------- what the data allow


def _minority(y: np.ndarray) -> int:
    return int(min(y.sum(), len(y) - y.sum()))


def fit_class_counts(y: np.ndarray, folds, seed: int) -> list[tuple[int, int]]:
    """(rows, rows of the smaller class) of every fit a run makes on the training part `y`: each CV
    training fold, and the calibration folds of the final fit."""
    sets = [y[tr] for _, tr, _ in folds]
    if _minority(y) >= MIN_CLASS_PER_FOLD:  # fewer is refused before training
        sets += [y[a] for a, _ in calibration_folds(seed).split(np.zeros(len(y)), y)]
    return [(len(s), _minority(s)) for s in sets]


def _enough_of_each_class(y: np.ndarray, groups, test_size: float, budget: config.Budget, seed: int) -> bool:
    """Whether a run on labels `y` has MIN_CLASS_PER_FOLD rows of each class in every CV training fold
    and the whole training part, and some in the test set and every validation fold (to score them)."""
    tr, te = holdout_split(y, groups, test_size, seed)
    folds = cv_folds(y[tr], None if groups is None else groups[tr], budget, seed)
    held = [y[te], *(y[tr][va] for _, _, va in folds)]
    fitted = [y[tr], *(y[tr][f] for _, f, _ in folds)]
    return min(map(_minority, held)) >= 1 and min(map(_minority, fitted)) >= MIN_CLASS_PER_FOLD


def needed_class_rows(others: int, test_size: float, budget: config.Budget, seed: int) -> int:
    """The fewest rows of the smaller class a table with `others` rows of the larger one needs for
    `budget` (found by running the same splits on made-up labels)."""
    others = min(others, 2_000)  # the split of the small class hardly depends on the large one's size
    for n in range(MIN_CLASS_PER_FOLD, 100_000):
        y = np.r_[np.ones(n, dtype=int), np.zeros(max(others, n), dtype=int)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if _enough_of_each_class(y, None, test_size, budget, seed):
                return n
    raise AssertionError("unreachable: a large enough class always splits")


def check_classes(ds: Dataset, groups: np.ndarray | None, cfg: TrainConfig, budget: config.Budget) -> None:
    """Refuse a table too small for the budget's folds: fewer than 50 rows, or fewer than
    MIN_CLASS_PER_FOLD rows of either class in a CV training fold or the whole training part."""
    n_pos = int(ds.y.sum())
    small, label = min((n_pos, ds.schema.positive_label), (ds.n - n_pos, ds.schema.negative_label))
    if ds.n < 50:
        raise InputError(f"too few rows to train and test: {ds.n} rows; need at least 50")
    if small >= MIN_CLASS_PER_FOLD:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                if _enough_of_each_class(ds.y, groups, cfg.test_size, budget, cfg.seed):
                    return
            except ValueError:  # StratifiedGroupKFold: fewer groups than folds
                if groups is None:
                    raise
                what = f"--group {cfg.group_column}" if cfg.group_column else "--group-duplicates"
                raise InputError(
                    f"{what}: {len(np.unique(groups))} groups of rows are too few to hold out "
                    f"{cfg.test_size:.0%} and cross-validate {budget.cv_splits} ways; "
                    "group by a finer column, or leave the option out"
                ) from None
    needs = {
        name: needed_class_rows(ds.n - small, cfg.test_size, b, cfg.seed)
        for name, b in config.BUDGETS.items()
    }
    easiest = min(needs, key=lambda name: needs[name])
    hint = (
        f", or use --budget {easiest} (needs {needs[easiest]})" if needs[easiest] < needs[budget.name] else ""
    )
    raise InputError(
        f"too few rows of one class to train and test: {small} of {ds.n} rows have "
        f"{ds.schema.target} = {label!r}; the {budget.name} budget needs at least {needs[budget.name]} of "
        f"them, so that each of its training folds holds {MIN_CLASS_PER_FOLD} (for calibration, SMOTE's "
        f"neighbours and the SVM's Platt scaling). Add rows of that class{hint}"
    )


@dataclass(frozen=True)
class FitPlan:
    """What the data and the budget let each family do, decided once per run from its folds."""

    train_rows: int
    fold_rows: int  # rows of the largest CV training fold
    fit_rows: dict[str, int] = field(default_factory=dict)  # family -> at most this many rows per fit
    smote_k: int = SMOTE_K
    left_out: dict[str, str] = field(default_factory=dict)  # family or "family/strategy" -> why
    notes: list[str] = field(default_factory=list)

    def candidate(self, family: str, strategy: str, params: dict | None = None, tuned: bool = False):
        cap = self.fit_rows.get(family)
        return Candidate(family, strategy, dict(params or {}), tuned, cap, self.smote_k)

    def allows(self, family: str, strategy: str) -> bool:
        return family not in self.left_out and f"{family}/{strategy}" not in self.left_out


def plan_fits(
    y: np.ndarray, folds, cfg: TrainConfig, budget: config.Budget, reference: bool = True
) -> FitPlan:
    """Row caps of costly families, families too costly for this many rows, SMOTE's neighbours, and
    KNN where its fits hold fewer rows than it may take neighbours; every decision gets a note.
    `reference`: whether the course recipe runs too (its forest has a cap of its own)."""
    n, fold_rows = len(y), max(len(tr) for _, tr, _ in folds)
    fams = [f for f in cfg.families if f in FAMILIES]
    left_out: dict[str, str] = {}
    for f in fams:
        most = budget.max_rows.get(f)
        if most is not None and n > most:
            left_out[f] = (
                f"{FAMILIES[f].label} left out: the {budget.name} budget runs it up to {most:,} training "
                f"rows ({n:,} here): beyond that its cost outgrows the budget"
            )
    runs = [f for f in fams if f not in left_out] + ([REFERENCE] if reference else [])
    caps = {f: cap for f in runs if 0 < (cap := budget.fit_rows.get(f, 0)) < n}
    counts = fit_class_counts(y, folds, cfg.seed)

    def smallest(family: str) -> tuple[int, int]:
        """Rows and smaller-class rows of the poorest fit of `family` (after its cap)."""
        cap = caps.get(family)
        return (
            min(min(r, cap) if cap else r for r, _ in counts),
            min(m * cap // r if cap and r > cap else m for r, m in counts),
        )

    notes = [
        f"{FAMILIES[f].label if f in FAMILIES else 'the course reference'} fits on a stratified sample "
        f"of at most {cap:,} rows ({fold_rows:,} rows per training fold, {n:,} in the final fit)"
        for f, cap in caps.items()
    ]
    fewest = min(smallest(f)[1] for f in fams) if fams else MIN_CLASS_PER_FOLD
    smote_k = max(1, min(SMOTE_K, fewest - 1))
    if "smote" in cfg.strategies and smote_k < SMOTE_K:
        notes.append(
            f"SMOTE interpolates between {smote_k} nearest neighbour(s) instead of {SMOTE_K}: the smallest "
            f"fit holds {fewest} rows of the smaller class"
        )
    if "knn" in fams and "knn" not in left_out:
        rows, minority = smallest("knn")
        if rows < KNN_MAX_NEIGHBOURS:
            left_out["knn"] = (
                f"{FAMILIES['knn'].label} left out: the smallest fit holds {rows} rows, fewer than the "
                f"{KNN_MAX_NEIGHBOURS} neighbours it may use"
            )
        elif "undersample" in cfg.strategies and 2 * minority < KNN_MAX_NEIGHBOURS:
            left_out["knn/undersample"] = (
                f"{FAMILIES['knn'].label} with random undersampling left out: the smallest fit keeps "
                f"{2 * minority} rows, fewer than the {KNN_MAX_NEIGHBOURS} neighbours it may use"
            )
    if fams and all(f in left_out for f in fams):
        raise InputError(
            f"--families {','.join(fams)}: none can train on this table ({'; '.join(left_out.values())}); "
            "add another family, e.g. --families logreg,gbm"
        )
    return FitPlan(n, fold_rows, caps, smote_k, left_out, notes + list(left_out.values()))


# ---------------------------------------------------------------- cross-validation


def _fit_fold(key: str, i: int, estimator, X: pd.DataFrame, y: np.ndarray, tr: np.ndarray, va: np.ndarray):
    """Fit a fresh clone on one training fold; every fitted statistic and sample stays inside it."""
    start = time.perf_counter()
    model = clone(estimator).fit(X.iloc[tr], y[tr])
    return key, i, model.predict_proba(X.iloc[va])[:, 1], time.perf_counter() - start


def cross_validate(
    candidates: list[Candidate],
    X: pd.DataFrame,
    y: np.ndarray,
    folds,
    schema,
    seed: int,
    jobs: int,
    advance=None,
    wrap=None,
    deadline: float | None = None,
) -> dict[str, CVResult]:
    """Score every candidate on the same folds, fits spread over `jobs` processes.

    With a `deadline` (a time.perf_counter() value) the cheapest candidates go first, and once it has
    passed the rest are cancelled: only candidates scored on every fold are returned (at least one)."""
    estimators = {c.key: (wrap(c.build(schema, seed)) if wrap else c.build(schema, seed)) for c in candidates}
    order = candidates if deadline is None else sorted(candidates, key=_cost)
    tasks = [(c.key, i) for c in order for i in range(len(folds))]
    run = Parallel(n_jobs=jobs, return_as="generator_unordered")(
        delayed(_fit_fold)(k, i, estimators[k], X, y, folds[i][1], folds[i][2]) for k, i in tasks
    )
    probs: dict[tuple[str, int], np.ndarray] = {}
    seconds: dict[str, float] = {c.key: 0.0 for c in candidates}
    done: Counter[str] = Counter()
    try:
        for key, i, p, s in run:
            probs[key, i] = p
            seconds[key] += s
            done[key] += 1
            if advance:
                advance()
            if deadline is not None and time.perf_counter() > deadline:
                if any(k != REFERENCE and n == len(folds) for k, n in done.items()):
                    break
    finally:
        with warnings.catch_warnings():  # joblib says which tasks it cancelled: that is the point
            warnings.simplefilter("ignore", UserWarning)
            run.close()
    n_repeats = max(r for r, _, _ in folds) + 1
    results = {}
    for c in candidates:
        if done[c.key] < len(folds):
            continue
        oof = np.zeros(len(y))
        fold_scores = []
        for i, (_, _, va) in enumerate(folds):
            p = probs[c.key, i]
            oof[va] += p / n_repeats
            fold_scores.append(evaluation.scores(y[va], p))
        fold_rows = max(len(tr) for _, tr, _ in folds)
        rows = min(fold_rows, c.fit_rows or fold_rows)
        results[c.key] = CVResult(c, fold_scores, oof, seconds[c.key] / len(folds), rows, fold_rows)
    return results


def _cost(c: Candidate) -> float:
    """Relative cost of one fit, to run the cheap candidates first under a deadline."""
    family = FAMILIES.get(c.family, FAMILIES["forest"])  # the reference recipe is a forest
    return family.cost * {"oversample": 2.0, "smote": 2.5, "undersample": 0.5}.get(c.strategy, 1.0)


def trial_count(family: str, budget: config.Budget, fold_rows: int | None = None) -> int:
    """Optuna trials for `family`: fewer for a costly family and, beyond budget.tune_rows rows per
    training fold, fewer in proportion; the count depends only on the data size, so it repeats."""
    n = budget.trials / FAMILIES[family].cost
    if fold_rows is not None and fold_rows > budget.tune_rows:
        n *= budget.tune_rows / fold_rows
    return max(3, round(n))


# ---------------------------------------------------------------- tuning


def tune(
    base: Candidate,
    X,
    y,
    folds,
    schema,
    cfg: TrainConfig,
    budget: config.Budget,
    progress: Progress,
    storage=None,
    n_trials: int | None = None,
    timeout: float | None = None,
) -> tuple[CVResult, optuna.Study]:
    """Optuna over one family's space, maximising the CV mean of the objective on the shared folds.

    `base` carries the strategy and the family's fit settings; `timeout` (seconds) replaces the
    budget's safety net when a time limit leaves less."""
    family, strategy = base.family, base.strategy
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Trials run one after another (each one's folds spread over the workers), so a seed gives
    # the same study locally and on a cluster; a shared storage records them where workers see them.
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=cfg.seed),
        storage=storage,
        study_name=f"{family}-{strategy}-{cfg.seed}-{time.time_ns()}",
    )
    # Trial counts, not wall time, bound the search, so the same seed gives the same study; the
    # timeout is only a safety net for a machine far slower than planned (or a --time-limit's share).
    n_trials = n_trials or trial_count(family, budget)
    limit = budget.timeout_s if timeout is None else min(timeout, budget.timeout_s)
    task = progress.add_task(f"tuning {FAMILIES[family].label} ({STRATEGY_LABELS[strategy]})", total=n_trials)
    best: dict[str, Any] = {}

    def objective(trial: optuna.Trial) -> float:
        params = FAMILIES[family].space(trial)
        cand = replace(base, params=params, tuned=True)
        res = cross_validate([cand], X, y, folds, schema, cfg.seed, cfg.jobs)[cand.key]
        value = res.mean(cfg.objective)
        if not best or value > best["value"]:
            best.update(value=value, result=res)
        progress.advance(task)
        return value

    study.optimize(objective, n_trials=n_trials, timeout=limit)
    if len(study.trials) < n_trials:
        why = "safety limit" if limit == budget.timeout_s else "share of --time-limit"
        warn(
            progress.console,
            f"tuning {family} stopped at the {limit:.0f}s {why} after "
            f"{len(study.trials)} of {n_trials} trials; this run may not repeat exactly",
        )
    progress.update(task, completed=n_trials)
    return best["result"], study


# ---------------------------------------------------------------- final model


@dataclass
class FittedModel:
    candidate: Candidate
    estimator: Any
    calibrated: bool
    threshold: float
    oof: np.ndarray
    p_train: np.ndarray
    p_test: np.ndarray
    train: Scores
    test: Scores


def platt_oof(oof: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold scores put on a calibrated model's scale: Platt scaling (a logistic fit on the
    score), itself cross-fitted on the calibration folds so no row's value is fitted on that row.
    This costs no refit of the pipeline, where calibrating it inside every fold costs six."""
    platt = LogisticRegression(C=1e6)  # next to no penalty: Platt's two parameters, as fitted
    scores = oof.reshape(-1, 1)
    return cross_val_predict(platt, scores, y, cv=calibration_folds(seed), method="predict_proba")[:, 1]


def fit_final(
    cand: Candidate,
    X_tr,
    y_tr,
    X_te,
    y_te,
    folds,
    schema,
    cfg: TrainConfig,
    oof: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> FittedModel:
    """Calibrate if resampling or class weights distort probabilities, pick the threshold on
    out-of-fold predictions (Platt-scaled like the model when it is calibrated), refit on all training
    rows, then score the test set once. `groups` (of the training rows) keep calibration folds grouped."""
    pipe = cand.build(schema, cfg.seed)
    needs_calibration = cand.family != REFERENCE and cand.strategy != "none"
    estimator = pipe
    if needs_calibration:
        splits = None if groups is None else grouped_calibration_splits(y_tr, groups, cfg.seed)
        # The final fit runs alone, so calibration's five fits may use every worker.
        estimator = calibrated(pipe, cfg.seed, cfg.jobs, splits)
    if oof is None:
        first = [f for f in folds if f[0] == 0]
        oof = cross_validate([cand], X_tr, y_tr, first, schema, cfg.seed, cfg.jobs)[cand.key].oof
    if needs_calibration:
        oof = platt_oof(oof, y_tr, cfg.seed)
    if cand.family == REFERENCE:
        thr = 0.5  # the course's recipe, as published
    else:
        thr = evaluation.choose_threshold(y_tr, oof, cfg.threshold, cfg.offer_cost, cfg.upgrade_value)
    estimator.fit(X_tr, y_tr)
    p_train = estimator.predict_proba(X_tr)[:, 1]
    p_test = estimator.predict_proba(X_te)[:, 1]
    return FittedModel(
        cand,
        estimator,
        needs_calibration,
        thr,
        oof,
        p_train,
        p_test,
        evaluation.scores(y_tr, p_train, thr),
        evaluation.scores(y_te, p_test, thr),
    )


def compare(
    X_tr,
    y_tr,
    folds,
    schema,
    cfg: TrainConfig,
    budget: config.Budget,
    console: Console,
    storage=None,
    plan: FitPlan | None = None,
    clock: RunClock | None = None,
    notes: list[str] | None = None,
) -> tuple[dict[str, CVResult], dict]:
    """Every family x strategy (and the reference recipe) on the same folds, then Optuna on the leaders.

    `plan` (table runs) caps costly families' fit rows and leaves out what the data cannot support;
    `clock` shares a --time-limit between comparison and tuning; what they cut is added to `notes`."""
    plan = plan or FitPlan(len(y_tr), max(len(tr) for _, tr, _ in folds))
    clock = clock or RunClock()
    notes = notes if notes is not None else []
    candidates = [
        plan.candidate(f, s)
        for f in cfg.families
        for s in cfg.strategies
        if supports(f, s) and plan.allows(f, s)
    ]
    if set(config.REFERENCE_OUTLIER_LIMITS) & set(schema.numeric):
        candidates.append(plan.candidate(REFERENCE, "none"))
    clock.mark("comparison")
    with progress_bar(console) as progress:
        task = progress.add_task("cross-validating models x strategies", total=len(candidates) * len(folds))
        results = cross_validate(
            candidates,
            X_tr,
            y_tr,
            folds,
            schema,
            cfg.seed,
            cfg.jobs,
            advance=lambda: progress.advance(task),
            deadline=clock.deadline("comparison"),
        )
        if len(results) < len(candidates):
            missed = [c.key for c in candidates if c.key not in results]
            notes.append(
                f"--time-limit: the comparison's share ran out before {len(missed)} of {len(candidates)} "
                f"candidates were scored ({', '.join(missed)})"
            )
            warn(progress.console, notes[-1])
        clock.mark("tuning")
        tuning = {}
        leaders = _leaders(results, cfg.objective, budget.tune_families)
        for i, (fam, strat) in enumerate(leaders):
            left = clock.left("tuning")
            share = None if left is None else left / (len(leaders) - i)
            if share is not None and share <= 0:
                notes.append(f"--time-limit: no time was left to tune {FAMILIES[fam].label}")
                warn(progress.console, notes[-1])
                continue
            n_trials = trial_count(fam, budget, plan.fold_rows)
            best, study = tune(
                plan.candidate(fam, strat),
                X_tr,
                y_tr,
                folds,
                schema,
                cfg,
                budget,
                progress,
                storage,
                n_trials,
                share,
            )
            results[best.candidate.key] = best
            tuning[fam] = {
                "strategy": strat,
                "best_value": study.best_value,
                "n_trials": len(study.trials),
                "planned_trials": n_trials,
                "best_params": study.best_params,
            }
            if share is not None and len(study.trials) < n_trials:
                notes.append(
                    f"--time-limit: tuning {FAMILIES[fam].label} ran {len(study.trials)} of {n_trials} trials"
                )
    return results, tuning


def leaderboard(results: dict[str, CVResult], objective: str) -> pd.DataFrame:
    rows = []
    for key, res in results.items():
        c = res.candidate
        ref = c.family == REFERENCE
        rows.append(
            {
                "key": key,
                "family": c.family,
                "strategy": c.strategy,
                "model": "course reference (random forest)" if ref else FAMILIES[c.family].label,
                "strategy_label": "drop outliers (training only)" if ref else STRATEGY_LABELS[c.strategy],
                "note": _note(c, res.fold_rows),
                "tuned": c.tuned,
                "is_reference": ref,
                **res.summary,
                "fit_seconds": res.fit_seconds,
                "fit_rows": res.fit_rows,
            }
        )
    board = pd.DataFrame(rows).sort_values(f"{objective}_mean", ascending=False, kind="stable")
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    return board.reset_index(drop=True)


def _leaders(results: dict[str, CVResult], objective: str, n: int) -> list[tuple[str, str]]:
    """The best strategy of each of the n best families, by CV objective."""
    best: dict[str, CVResult] = {}
    for r in results.values():
        f = r.candidate.family
        if f != REFERENCE and (f not in best or r.mean(objective) > best[f].mean(objective)):
            best[f] = r
    ranked = sorted(best.values(), key=lambda r: -r.mean(objective))[:n]
    return [(r.candidate.family, r.candidate.strategy) for r in ranked]


def _note(c: Candidate, fold_rows: int = 0) -> str:
    sample = []
    if c.fit_rows and fold_rows > c.fit_rows:
        sample = [
            f"fit on a stratified sample of {c.fit_rows:,} of the {fold_rows:,} rows of each training fold"
        ]
    elif c.fit_rows:
        sample = [f"the final fit uses a stratified sample of {c.fit_rows:,} of the training rows"]
    if c.family == REFERENCE:
        return "; ".join(
            [
                "outliers dropped from training folds only, practice_exams_started dropped, ordinal "
                "country, threshold 0.5",
                *sample,
            ]
        )
    notes = [FAMILIES[c.family].note] if FAMILIES[c.family].note else []
    notes += sample
    if c.tuned:
        notes.append("best of the Optuna trials on these folds, so its CV score is slightly optimistic")
    return "; ".join(notes)


def chosen_of(c: Candidate, calibrated: bool) -> Chosen:
    """What metrics.json and the bundle say of the chosen candidate."""
    return Chosen(
        c.key, c.family, c.strategy, {**FAMILIES[c.family].defaults, **c.params}, label_of(c), calibrated
    )


def label_of(c: Candidate) -> str:
    return f"{FAMILIES[c.family].label}, {STRATEGY_LABELS[c.strategy]}" + (", tuned" if c.tuned else "")


@dataclass
class Outcome:
    """Everything the protocol decided and measured, for the run folder to write."""

    train_rows: np.ndarray
    test_rows: np.ndarray
    results: dict[str, CVResult]
    board: pd.DataFrame
    tuning: dict[str, Any]
    chosen: CVResult
    final: FittedModel
    reference: FittedModel | None
    leaky: list[str]
    no_leak: FittedModel | None
    no_leak_cv: CVResult | None
    no_leak_schema: Schema | None
    limits: Limits = field(default_factory=Limits)
    clock: RunClock = field(default_factory=RunClock)  # seconds per stage so far


def run_protocol(
    ds: Dataset,
    leakage_flags: list[str],
    cfg: TrainConfig,
    budget: config.Budget,
    console: Console,
    groups: np.ndarray | None = None,
    storage: Any = None,
    clock: RunClock | None = None,
) -> Outcome:
    """Split once, compare every candidate on the same folds, tune the leaders, fit the chosen one,
    the reference recipe and the chosen one without flagged leaks, and score the test set once.

    `clock` (started with the run, holding cfg.time_limit) times the stages and shares the limit."""
    clock = clock or RunClock(cfg.time_limit)
    tr, te = holdout_split(ds.y, groups, cfg.test_size, cfg.seed)
    X_tr, y_tr, X_te, y_te = ds.X.iloc[tr], ds.y[tr], ds.X.iloc[te], ds.y[te]
    g_tr = groups[tr] if groups is not None else None
    folds = cv_folds(y_tr, g_tr, budget, cfg.seed)
    say(
        console,
        f"split: {len(tr):,} training rows ({budget.cv_splits}-fold CV x {budget.cv_repeats}), "
        f"{len(te):,} held-out test rows (seed {cfg.seed})",
    )
    plan = plan_fits(
        y_tr, folds, cfg, budget, bool(set(config.REFERENCE_OUTLIER_LIMITS) & set(ds.schema.numeric))
    )
    for note in plan.notes:
        say(console, note)
    notes = list(plan.notes)
    if cfg.time_limit is not None:
        notes.append(Limits.time_limit_note(cfg.time_limit))
        warn(console, notes[-1])
    results, tuning = compare(X_tr, y_tr, folds, ds.schema, cfg, budget, console, storage, plan, clock, notes)
    clock.mark("final fit")
    board = leaderboard(results, cfg.objective)
    chosen = results[board.loc[~board["is_reference"], "key"].iloc[0]]
    say(console, f"chosen: {chosen.candidate.key} (CV {cfg.objective} {chosen.mean(cfg.objective):.4f})")
    with console.status("fitting the chosen model, the reference recipe and the test predictions"):
        final = fit_final(chosen.candidate, X_tr, y_tr, X_te, y_te, folds, ds.schema, cfg, chosen.oof, g_tr)
        ref = None
        if REFERENCE in results:
            r = results[REFERENCE]  # its threshold is the recipe's 0.5: the comparison's OOF will do
            ref = fit_final(r.candidate, X_tr, y_tr, X_te, y_te, folds, ds.schema, cfg, r.oof, g_tr)
        # The same pipeline without the features the audit flagged: the model fit to score today's users.
        leaky = [c for c in leakage_flags if c in ds.schema.names]
        no_leak = nl_cv = schema_nl = None
        if leaky and len(leaky) < len(ds.schema.names):
            keep = [c for c in ds.X.columns if c not in leaky]
            schema_nl = ds.schema.without(leaky)
            nl_cv = cross_validate(
                [chosen.candidate], X_tr[keep], y_tr, folds, schema_nl, cfg.seed, cfg.jobs
            )[chosen.candidate.key]
            no_leak = fit_final(
                chosen.candidate, X_tr[keep], y_tr, X_te[keep], y_te, folds, schema_nl, cfg, nl_cv.oof, g_tr
            )
    clock.mark("write")  # the run folder writes its files and bundles after this returns
    limits = Limits(cfg.time_limit, dict(plan.fit_rows), plan.smote_k, dict(plan.left_out), notes)
    return Outcome(
        tr, te, results, board, tuning, chosen, final, ref, leaky, no_leak, nl_cv, schema_nl, limits, clock
    )
