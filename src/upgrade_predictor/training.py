"""The training protocol: split once, compare on identical folds, tune, pick a threshold, test once."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from joblib import Parallel, delayed
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from . import cluster, config, evaluation
from .audit import audit, feature_keys
from .bundle import save_bundle
from .data import Dataset, load_dataset
from .drift import reference_profile
from .errors import InputError
from .files import write_json_atomic
from .models import FAMILIES, STRATEGY_LABELS, build_pipeline, build_reference, calibrated, supports

REFERENCE = "reference"


@dataclass
class TrainConfig:
    data: Path | None = None
    target: str = config.TARGET
    out: Path | None = None
    budget: str = "standard"
    seed: int = config.SEED
    id_column: str | None = None
    positive: str | None = None
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    test_size: float = config.TEST_SIZE
    group_duplicates: bool = False
    families: list[str] = field(default_factory=lambda: list(config.FAMILIES))
    strategies: list[str] = field(default_factory=lambda: list(config.STRATEGIES))
    objective: str = "pr_auc"
    threshold: str = "f1"
    offer_cost: float = config.OFFER_COST
    upgrade_value: float = config.UPGRADE_VALUE
    jobs: int = 2
    report: bool = True
    force: bool = False
    dask: str | None = None  # a scheduler address, or "local"

    def check(self) -> config.Budget:
        if self.budget not in config.BUDGETS:
            raise InputError(f"--budget {self.budget!r}: choose quick, standard or thorough")
        bad = [f for f in self.families if f not in FAMILIES]
        if bad:
            raise InputError(f"--families: unknown {', '.join(bad)}; choose from {', '.join(FAMILIES)}")
        bad = [s for s in self.strategies if s not in config.STRATEGIES]
        if bad:
            raise InputError(f"--strategies: unknown {', '.join(bad)}; choose from {', '.join(config.STRATEGIES)}")
        if self.objective not in evaluation.METRICS or self.objective in evaluation.LOWER_IS_BETTER:
            ok = [m for m in evaluation.METRICS if m not in evaluation.LOWER_IS_BETTER]
            raise InputError(f"--objective {self.objective!r}: choose one of {', '.join(ok)}")
        if self.threshold not in ("f1", "profit"):
            raise InputError(f"--threshold {self.threshold!r}: choose f1 or profit")
        if not 0.05 <= self.test_size <= 0.5:
            raise InputError(f"--test-size {self.test_size}: choose a share between 0.05 and 0.5")
        return config.BUDGETS[self.budget]


@dataclass(frozen=True)
class Candidate:
    family: str
    strategy: str
    params: dict = field(default_factory=dict, hash=False, compare=False)
    tuned: bool = False

    @property
    def key(self) -> str:
        if self.family == REFERENCE:
            return REFERENCE
        return f"{self.family}/{self.strategy}" + ("/tuned" if self.tuned else "")

    def build(self, schema, seed: int):
        if self.family == REFERENCE:
            return build_reference(seed)
        return build_pipeline(schema, self.family, self.strategy, self.params, seed)


@dataclass
class CVResult:
    candidate: Candidate
    folds: list[dict]
    oof: np.ndarray  # mean out-of-fold probability over repeats
    fit_seconds: float

    @property
    def summary(self) -> dict[str, float]:
        return evaluation.summarise(self.folds)

    def mean(self, metric: str) -> float:
        return self.summary[f"{metric}_mean"]


# ---------------------------------------------------------------- split and folds


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
    folds = []
    for r in range(budget.cv_repeats):
        if groups is None:
            splitter = StratifiedKFold(budget.cv_splits, shuffle=True, random_state=seed + r)
            parts = splitter.split(np.zeros(len(y)), y)
        else:
            splitter = StratifiedGroupKFold(budget.cv_splits, shuffle=True, random_state=seed + r)
            parts = splitter.split(np.zeros(len(y)), y, groups)
        folds.extend((r, tr, va) for tr, va in parts)
    return folds


# ---------------------------------------------------------------- cross-validation


def _fit_fold(key: str, i: int, estimator, X: pd.DataFrame, y: np.ndarray, tr: np.ndarray, va: np.ndarray):
    """Fit a fresh clone on one training fold; every fitted statistic and sample stays inside it."""
    start = time.perf_counter()
    model = clone(estimator).fit(X.iloc[tr], y[tr])
    return key, i, model.predict_proba(X.iloc[va])[:, 1], time.perf_counter() - start


def cross_validate(candidates: list[Candidate], X: pd.DataFrame, y: np.ndarray, folds, schema, seed: int,
                   jobs: int, advance=None, wrap=None) -> dict[str, CVResult]:
    """Score every candidate on the same folds, fits spread over `jobs` processes."""
    estimators = {c.key: (wrap(c.build(schema, seed)) if wrap else c.build(schema, seed)) for c in candidates}
    tasks = [(c.key, i) for c in candidates for i in range(len(folds))]
    run = Parallel(n_jobs=jobs, return_as="generator_unordered")(
        delayed(_fit_fold)(k, i, estimators[k], X, y, folds[i][1], folds[i][2]) for k, i in tasks)
    probs: dict[tuple[str, int], np.ndarray] = {}
    seconds: dict[str, float] = {c.key: 0.0 for c in candidates}
    for key, i, p, s in run:
        probs[key, i] = p
        seconds[key] += s
        if advance:
            advance()
    n_repeats = max(r for r, _, _ in folds) + 1
    results = {}
    for c in candidates:
        oof = np.zeros(len(y))
        fold_scores = []
        for i, (_, _, va) in enumerate(folds):
            p = probs[c.key, i]
            oof[va] += p / n_repeats
            fold_scores.append(evaluation.scores(y[va], p))
        results[c.key] = CVResult(c, fold_scores, oof, seconds[c.key] / len(folds))
    return results


# ---------------------------------------------------------------- tuning


def tune(family: str, strategy: str, X, y, folds, schema, cfg: TrainConfig, budget: config.Budget,
         progress: Progress, storage=None) -> tuple[CVResult, optuna.Study]:
    """Optuna over one family's space, maximising the CV mean of the objective on the shared folds."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Trials run one after another (each one's folds spread over the workers), so a seed gives
    # the same study locally and on a cluster; a shared storage records them where workers see them.
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.seed),
                                storage=storage, study_name=f"{family}-{strategy}-{cfg.seed}-{time.time_ns()}")
    # Trial counts, not wall time, bound the search, so the same seed gives the same study; the
    # timeout is only a safety net for a machine far slower than planned.
    n_trials = max(3, round(budget.trials / FAMILIES[family].cost))
    task = progress.add_task(f"tuning {FAMILIES[family].label} ({STRATEGY_LABELS[strategy]})", total=n_trials)
    best: dict[str, Any] = {}

    def objective(trial: optuna.Trial) -> float:
        params = FAMILIES[family].space(trial)
        cand = Candidate(family, strategy, params, tuned=True)
        res = cross_validate([cand], X, y, folds, schema, cfg.seed, cfg.jobs)[cand.key]
        value = res.mean(cfg.objective)
        if not best or value > best["value"]:
            best.update(value=value, result=res)
        progress.advance(task)
        return value

    study.optimize(objective, n_trials=n_trials, timeout=budget.timeout_s)
    if len(study.trials) < n_trials:
        progress.console.print(f"[yellow]![/] tuning {family} stopped at the {budget.timeout_s:.0f}s safety limit "
                               f"after {len(study.trials)} of {n_trials} trials; this run may not repeat exactly")
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
    train: dict
    test: dict


def fit_final(cand: Candidate, X_tr, y_tr, X_te, y_te, folds, schema, cfg: TrainConfig,
              oof: np.ndarray | None = None) -> FittedModel:
    """Calibrate if resampling or class weights distort probabilities, pick the threshold on
    out-of-fold predictions, refit on all training rows, then score the test set once."""
    pipe = cand.build(schema, cfg.seed)
    needs_calibration = cand.family != REFERENCE and cand.strategy != "none"
    estimator = calibrated(pipe, cfg.seed) if needs_calibration else pipe
    if oof is None or needs_calibration:
        first = [f for f in folds if f[0] == 0]
        oof = cross_validate([cand], X_tr, y_tr, first, schema, cfg.seed, cfg.jobs,
                             wrap=(lambda p: calibrated(p, cfg.seed)) if needs_calibration else None)[cand.key].oof
    if cand.family == REFERENCE:
        thr = 0.5  # the course's recipe, as published
    else:
        thr = evaluation.choose_threshold(y_tr, oof, cfg.threshold, cfg.offer_cost, cfg.upgrade_value)
    estimator.fit(X_tr, y_tr)
    p_train = estimator.predict_proba(X_tr)[:, 1]
    p_test = estimator.predict_proba(X_te)[:, 1]
    return FittedModel(cand, estimator, needs_calibration, thr, oof, p_train, p_test,
                       evaluation.scores(y_tr, p_train, thr), evaluation.scores(y_te, p_test, thr))


# ---------------------------------------------------------------- the run


def run_training(cfg: TrainConfig, console: Console | None = None) -> Path:
    """Audit, compare, tune, select, test once, and write the run folder atomically."""
    console = console or Console(stderr=True)
    budget = cfg.check()
    started = time.perf_counter()
    dest = _check_out(cfg)
    ds = load_dataset(cfg.data, cfg.target, cfg.id_column, cfg.numeric, cfg.categorical, cfg.exclude, cfg.positive)
    if ds.n < 50 or min(int(ds.y.sum()), int(ds.n - ds.y.sum())) < 2 * budget.cv_splits:
        raise InputError(f"too few rows to train and test: {ds.n} rows, {int(ds.y.sum())} positive; "
                         f"need at least 50 rows and {2 * budget.cv_splits} of each class")
    report = audit(ds)
    show_audit(console, report)
    out = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with cluster.connect(cfg.dask) as client, cluster.fits_on(client) as n_jobs:
            run_cfg = replace(cfg, jobs=n_jobs or cfg.jobs)
            _train_into(out, ds, report, run_cfg, budget, console, cluster.study_storage(client))
        if cfg.report:
            from .report import build_report

            build_report(out, console, name=dest.name)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # a failed or interrupted run leaves nothing behind
        raise
    final_dir = _publish(out, dest)
    console.print(f"[green]done in {time.perf_counter() - started:.0f}s:[/] {final_dir}")
    return final_dir


def _train_into(out: Path, ds: Dataset, report: dict, cfg: TrainConfig, budget: config.Budget,
                console: Console, storage=None) -> None:
    started, started_at = time.perf_counter(), datetime.now().isoformat(timespec="seconds")
    out.chmod(0o755)
    groups = feature_keys(ds.X).to_numpy() if cfg.group_duplicates else None
    tr, te = holdout_split(ds.y, groups, cfg.test_size, cfg.seed)
    X_tr, y_tr, X_te, y_te = ds.X.iloc[tr], ds.y[tr], ds.X.iloc[te], ds.y[te]
    folds = cv_folds(y_tr, groups[tr] if groups is not None else None, budget, cfg.seed)
    console.print(f"split: {len(tr):,} training rows ({budget.cv_splits}-fold CV x {budget.cv_repeats}), "
                  f"{len(te):,} held-out test rows (seed {cfg.seed})")

    results, tuning = compare(X_tr, y_tr, folds, ds.schema, cfg, budget, console, storage)
    board = leaderboard(results, cfg.objective)
    chosen = results[board.loc[~board["is_reference"], "key"].iloc[0]]
    console.print(f"chosen: [bold]{chosen.candidate.key}[/] (CV {cfg.objective} {chosen.mean(cfg.objective):.4f})")

    with console.status("fitting the chosen model, the reference recipe and the test predictions"):
        final = fit_final(chosen.candidate, X_tr, y_tr, X_te, y_te, folds, ds.schema, cfg, chosen.oof)
        ref = None
        if REFERENCE in results:
            ref = fit_final(results[REFERENCE].candidate, X_tr, y_tr, X_te, y_te, folds, ds.schema, cfg)
        # The same pipeline without the features the audit flagged: the model fit to score today's users.
        leaky = [c for c in report["leakage_flags"] if c in ds.schema.names]
        no_leak = None
        if leaky and len(leaky) < len(ds.schema.names):
            keep = [c for c in ds.X.columns if c not in leaky]
            schema_nl = ds.schema.without(leaky)
            nl_cv = cross_validate([chosen.candidate], X_tr[keep], y_tr, folds, schema_nl, cfg.seed, cfg.jobs)
            nl_cv = nl_cv[chosen.candidate.key]
            no_leak = fit_final(chosen.candidate, X_tr[keep], y_tr, X_te[keep], y_te, folds, schema_nl, cfg,
                                nl_cv.oof)

    metrics = {
        "chosen": {"key": chosen.candidate.key, "family": chosen.candidate.family,
                   "strategy": chosen.candidate.strategy,
                   "params": {**FAMILIES[chosen.candidate.family].defaults, **chosen.candidate.params},
                   "label": _label(chosen.candidate), "calibrated": final.calibrated},
        "objective": cfg.objective,
        "threshold": {"value": final.threshold, "objective": cfg.threshold},
        "train": final.train,
        "test": final.test,
        "cv": chosen.summary,
        "split": {"n_train": int(len(tr)), "n_test": int(len(te)), "seed": cfg.seed, "test_size": cfg.test_size,
                  "group_duplicates": cfg.group_duplicates, "cv_splits": budget.cv_splits,
                  "cv_repeats": budget.cv_repeats},
        "tuning": tuning,
    }
    preds = pd.DataFrame({"row": np.r_[tr, te], "set": ["train"] * len(tr) + ["test"] * len(te),
                          "y": np.r_[y_tr, y_te], "oof": np.r_[final.oof, np.full(len(te), np.nan)],
                          "p": np.r_[final.p_train, final.p_test]})
    if ds.ids is not None:
        preds.insert(1, "id", ds.ids.iloc[preds["row"].to_numpy()].to_numpy())
    if ref is not None:
        metrics["reference"] = {"test": ref.test, "cv": results[REFERENCE].summary, "threshold": 0.5}
        preds["p_reference"] = np.r_[np.full(len(tr), np.nan), ref.p_test]
    if no_leak is not None:
        metrics["no_leak"] = {"excluded": leaky, "test": no_leak.test, "train": no_leak.train,
                              "cv": nl_cv.summary, "threshold": no_leak.threshold}
        preds["p_no_leak"] = np.r_[no_leak.p_train, no_leak.p_test]
        preds["oof_no_leak"] = np.r_[no_leak.oof, np.full(len(te), np.nan)]

    run_info = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()
                   if k not in ("out", "force")},
                "data": ds.source, "threshold_objective": cfg.threshold, "fingerprint": ds.fingerprint,
                "started": started_at, "duration_s": round(time.perf_counter() - started, 1)}
    write_json_atomic(out / "run.json", run_info)
    write_json_atomic(out / "audit.json", report)
    write_json_atomic(out / "metrics.json", metrics)
    board.to_csv(out / "leaderboard.csv", index=False)
    preds.to_parquet(out / "predictions.parquet", index=False)
    pd.DataFrame({"row": tr, "y": y_tr, **{k: r.oof for k, r in results.items()}}).to_parquet(
        out / "cv_predictions.parquet", index=False)
    save_bundle(out / "model.zip", final.estimator,
                bundle_metadata(final, ds, ds.schema, X_tr, chosen.summary, cfg, list(cfg.exclude)), "")
    if no_leak is not None:
        save_bundle(out / "model_no_leak.zip", no_leak.estimator,
                    bundle_metadata(no_leak, ds, schema_nl, X_tr[keep], nl_cv.summary, cfg,
                                    list(cfg.exclude) + leaky), "")
    show_results(console, board, metrics, cfg.objective)


def compare(X_tr, y_tr, folds, schema, cfg: TrainConfig, budget: config.Budget, console: Console,
            storage=None) -> tuple[dict[str, CVResult], dict]:
    """Every family x strategy (and the reference recipe) on the same folds, then Optuna on the leaders."""
    candidates = [Candidate(f, s) for f in cfg.families for s in cfg.strategies if supports(f, s)]
    if set(config.REFERENCE_OUTLIER_LIMITS) & set(schema.numeric):
        candidates.append(Candidate(REFERENCE, "none"))
    with _progress(console) as progress:
        task = progress.add_task("cross-validating models x strategies", total=len(candidates) * len(folds))
        results = cross_validate(candidates, X_tr, y_tr, folds, schema, cfg.seed, cfg.jobs,
                                 advance=lambda: progress.advance(task))
        tuning = {}
        for fam, strat in _leaders(results, cfg.objective, budget.tune_families):
            best, study = tune(fam, strat, X_tr, y_tr, folds, schema, cfg, budget, progress, storage)
            results[best.candidate.key] = best
            tuning[fam] = {"strategy": strat, "best_value": study.best_value, "n_trials": len(study.trials),
                           "best_params": study.best_params}
    return results, tuning


def bundle_metadata(model: FittedModel, ds: Dataset, schema, X_tr: pd.DataFrame, cv: dict, cfg: TrainConfig,
                    excluded: list[str]) -> dict:
    return {
        "schema": schema.to_dict(),
        "threshold": model.threshold,
        "threshold_objective": cfg.threshold,
        "offer_cost": cfg.offer_cost,
        "upgrade_value": cfg.upgrade_value,
        "key": model.candidate.key,
        "family": model.candidate.family,
        "strategy": model.candidate.strategy,
        "params": {**FAMILIES[model.candidate.family].defaults, **model.candidate.params},
        "label": _label(model.candidate),
        "calibrated": model.calibrated,
        "metrics": {"cv": cv, "test": model.test, "train": model.train},
        "training": {"source": ds.source, "fingerprint": ds.fingerprint, "rows": int(len(X_tr)),
                     "positive_share": float(ds.y.mean()), "seed": cfg.seed},
        "excluded": excluded,
        "reference_profile": reference_profile(X_tr, model.p_train, schema),
    }


def leaderboard(results: dict[str, CVResult], objective: str) -> pd.DataFrame:
    rows = []
    for key, res in results.items():
        c = res.candidate
        ref = c.family == REFERENCE
        rows.append({
            "key": key, "family": c.family, "strategy": c.strategy,
            "model": "course reference (random forest)" if ref else FAMILIES[c.family].label,
            "strategy_label": "drop outliers (training only)" if ref else STRATEGY_LABELS[c.strategy],
            "note": _note(c),
            "tuned": c.tuned, "is_reference": ref, **res.summary, "fit_seconds": res.fit_seconds,
        })
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


def _note(c: Candidate) -> str:
    if c.family == REFERENCE:
        return ("outliers dropped from training folds only, practice_exams_started dropped, ordinal country, "
                "threshold 0.5")
    notes = [FAMILIES[c.family].note] if FAMILIES[c.family].note else []
    if c.tuned:
        notes.append("best of the Optuna trials on these folds, so its CV score is slightly optimistic")
    return "; ".join(notes)


def _label(c: Candidate) -> str:
    return f"{FAMILIES[c.family].label}, {STRATEGY_LABELS[c.strategy]}" + (", tuned" if c.tuned else "")


# ---------------------------------------------------------------- output folder


def _check_out(cfg: TrainConfig) -> Path:
    """Where the run will be published; an existing run is replaced only with --force."""
    dest = Path(cfg.out) if cfg.out else Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    if dest.exists() and any(dest.iterdir()) and not cfg.force:
        raise InputError(f"{dest} already holds a run; choose another --out or pass --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest


def _publish(tmp: Path, dest: Path) -> Path:
    """Rename the finished temp folder into place, so a reader never sees half a run."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        dest.rename(old)
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(dest)
    return dest


# ---------------------------------------------------------------- terminal output


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def show_audit(console: Console, report: dict) -> None:
    t = Table(title=f"data audit: {report['rows']:,} rows, {report['columns']} features, "
                    f"{report['class_balance']['positive_share']:.1%} positive "
                    f"({report['target']} = {report['positive_label']!r})", title_justify="left")
    for col in ("feature", "kind", "missing", "univariate ROC AUC", "flags"):
        t.add_column(col, justify="right" if col in ("missing", "univariate ROC AUC") else "left")
    for c in report["feature_columns"]:
        flags = [f for f, on in (("LEAKAGE?", c["leakage_flag"]), ("heavy tail", c.get("heavy_tail")),
                                 (f"{c.get('rare_categories', 0)} rare codes", c.get("rare_categories"))) if on]
        t.add_row(c["name"], c["kind"], str(c["missing"]), f"{c['univariate_auc']:.3f}", ", ".join(flags))
    console.print(t)
    for w in report["warnings"]:
        console.print(f"[yellow]![/] {w}", highlight=False)


def show_results(console: Console, board: pd.DataFrame, metrics: dict, objective: str) -> None:
    t = Table(title="leaderboard (cross-validated on the training part; mean ± sd)", title_justify="left")
    for col in ("#", "model", "imbalance", "PR AUC", "ROC AUC", "F1@0.5", "recall@0.5", "precision@0.5", "s/fit"):
        t.add_column(col, justify="left" if col in ("model", "imbalance") else "right")
    for _, r in board.iterrows():
        style = "dim" if r["is_reference"] else ("bold" if r["rank"] == 1 else None)
        t.add_row(str(r["rank"]), r["model"] + (" (tuned)" if r["tuned"] else ""), r["strategy_label"],
                  *(f"{r[m + '_mean']:.3f} ± {r[m + '_sd']:.3f}" for m in ("pr_auc", "roc_auc", "f1", "recall",
                                                                         "precision")),
                  f"{r['fit_seconds']:.2f}", style=style)
    console.print(t)
    t = Table(title=f"chosen model: {metrics['chosen']['label']}; threshold {metrics['threshold']['value']:.3f} "
                    f"({metrics['threshold']['objective']} on out-of-fold predictions)", title_justify="left")
    blocks = [("train", metrics["train"]), ("test", metrics["test"])]
    if "reference" in metrics:
        blocks.append(("reference, test", metrics["reference"]["test"]))
    if "no_leak" in metrics:
        blocks.append((f"without {', '.join(metrics['no_leak']['excluded'])}, test", metrics["no_leak"]["test"]))
    t.add_column("metric")
    for name, _ in blocks:
        t.add_column(name, justify="right")
    for m in ("pr_auc", "roc_auc", "f1", "precision", "recall", "accuracy", "balanced_accuracy", "brier"):
        t.add_row(m, *(f"{b[m]:.4f}" for _, b in blocks))
    console.print(t)
    if "no_leak" in metrics:
        console.print(f"[yellow]![/] {', '.join(metrics['no_leak']['excluded'])} was flagged as a likely leak; the "
                      "model without it (model_no_leak.zip) is the one to trust for today's free users.",
                      highlight=False)
