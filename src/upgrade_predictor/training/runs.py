"""The run folder of a table run: what it writes, and reading it back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from .. import config
from ..bundle import Bundle, BundleMetadata, ModelMetrics, TrainingInfo, load_bundle
from ..data_audit import AuditReport
from ..dataset import Dataset, load_dataset
from ..errors import InputError
from ..models import FAMILIES
from ..profile import reference_profile
from ..runs.folder import RunReader, RunWriter, Wording
from ..schema import Schema
from .calibration import FittedModel
from .candidates import REFERENCE
from .clock import RunClock
from .info import TableRunInfo
from .metrics import NoLeak, Reference, RunMetrics, Split, Threshold
from .options import TableOptions
from .protocol import Outcome, run_protocol
from .selection import chosen_of, label_of
from .summary import show_results

RUN_FILES = [
    "run.json",
    "audit.json",
    "metrics.json",
    "leaderboard.csv",
    "predictions.parquet",
    "cv_predictions.parquet",
    "model.zip",
]


def write_run(
    out: RunWriter,
    ds: Dataset,
    report: AuditReport,
    cfg: TableOptions,
    budget: config.Budget,
    console: Console,
    storage: Any = None,
    clock: RunClock | None = None,
    groups: np.ndarray | None = None,
) -> RunMetrics:
    """Run the protocol and write every file of the run folder with `out`; `groups` (row_groups) keep
    rows together in every split."""
    started, started_at = time.perf_counter(), datetime.now().isoformat(timespec="seconds")
    o = run_protocol(ds, report.leakage_flags, cfg, budget, console, groups, storage, clock)
    tr = o.train_rows
    metrics = run_metrics(o, cfg, budget)
    info = TableRunInfo.of(
        cfg,
        data=ds.source,
        threshold_objective=cfg.threshold,
        fingerprint=ds.fingerprint,
        started=started_at,
        duration_s=round(time.perf_counter() - started, 1),
    )
    out.json("run.json", info.to_dict())
    out.json("audit.json", report.to_dict())
    out.json("metrics.json", metrics.to_dict())
    out.frame("leaderboard.csv", o.board)
    out.frame("predictions.parquet", predictions(ds, o))
    out.frame(
        "cv_predictions.parquet",
        pd.DataFrame({"row": tr, "y": ds.y[tr], **{k: r.oof for k, r in o.results.items()}}),
    )
    X_tr = ds.X.iloc[tr]
    out.bundle(
        "model.zip",
        o.final.estimator,
        bundle_metadata(o.final, ds, ds.schema, X_tr, o.chosen.summary, cfg, list(cfg.exclude)),
    )
    if o.no_leak is not None and o.no_leak_schema is not None and o.no_leak_cv is not None:
        keep = o.no_leak_schema.names
        out.bundle(
            "model_no_leak.zip",
            o.no_leak.estimator,
            bundle_metadata(
                o.no_leak,
                ds,
                o.no_leak_schema,
                X_tr[keep],
                o.no_leak_cv.summary,
                cfg,
                list(cfg.exclude) + o.leaky,
            ),
        )
    out.sign(cfg.sign_key)
    show_results(console, o.board, metrics)
    return metrics


def predictions(ds: Dataset, o: Outcome) -> pd.DataFrame:
    """predictions.parquet: every row's set, label, out-of-fold and final probabilities (and the
    reference's and the model without the flagged features', when trained)."""
    tr, te = o.train_rows, o.test_rows
    preds = pd.DataFrame(
        {
            "row": np.r_[tr, te],
            "set": ["train"] * len(tr) + ["test"] * len(te),
            "y": np.r_[ds.y[tr], ds.y[te]],
            "oof": np.r_[o.final.oof, np.full(len(te), np.nan)],
            "p": np.r_[o.final.p_train, o.final.p_test],
        }
    )
    if ds.ids is not None:
        preds.insert(1, "id", ds.ids.iloc[preds["row"].to_numpy()].to_numpy())
    if o.reference is not None:
        preds["p_reference"] = np.r_[np.full(len(tr), np.nan), o.reference.p_test]
    if o.no_leak is not None:
        preds["p_no_leak"] = np.r_[o.no_leak.p_train, o.no_leak.p_test]
        preds["oof_no_leak"] = np.r_[o.no_leak.oof, np.full(len(te), np.nan)]
    return preds


def run_metrics(o: Outcome, cfg: TableOptions, budget: config.Budget) -> RunMetrics:
    c = o.chosen.candidate
    return RunMetrics(
        chosen=chosen_of(c, o.final.calibrated),
        objective=cfg.objective,
        threshold=Threshold(o.final.threshold, cfg.threshold),
        train=o.final.train,
        test=o.final.test,
        cv=o.chosen.summary,
        split=Split(
            int(len(o.train_rows)),
            int(len(o.test_rows)),
            cfg.seed,
            cfg.test_size,
            cfg.group_duplicates,
            budget.cv_splits,
            budget.cv_repeats,
            cfg.group_column,
        ),
        tuning=o.tuning,
        reference=None
        if o.reference is None
        else Reference(o.reference.test, o.results[REFERENCE].summary, 0.5),
        no_leak=None
        if o.no_leak is None or o.no_leak_cv is None
        else NoLeak(o.leaky, o.no_leak.test, o.no_leak.train, o.no_leak_cv.summary, o.no_leak.threshold),
        limits=o.limits,
    )


def bundle_metadata(
    model: FittedModel,
    ds: Dataset,
    schema: Schema,
    X_tr: pd.DataFrame,
    cv: dict,
    cfg: TableOptions,
    excluded: list[str],
) -> BundleMetadata:
    return BundleMetadata(
        schema=schema,
        threshold=float(model.threshold),
        threshold_objective=cfg.threshold,
        offer_cost=float(cfg.offer_cost),
        upgrade_value=float(cfg.upgrade_value),
        key=model.candidate.key,
        family=model.candidate.family,
        strategy=model.candidate.strategy,
        params={**FAMILIES[model.candidate.family].defaults, **model.candidate.params},
        label=label_of(model.candidate),
        calibrated=bool(model.calibrated),
        metrics=ModelMetrics(cv=dict(cv), test=model.test.to_dict(), train=model.train.to_dict()),
        training=TrainingInfo(
            source=ds.source,
            fingerprint=ds.fingerprint,
            rows=int(len(X_tr)),
            positive_share=float(ds.y.mean()),
            seed=cfg.seed,
        ),
        excluded=[str(c) for c in excluded],
        reference_profile=reference_profile(X_tr, model.p_train, schema),
    )


@dataclass
class Run:
    """A saved run folder, read back: typed run.json, audit.json and metrics.json, and the data."""

    dir: Path
    info: TableRunInfo
    audit: AuditReport
    metrics: RunMetrics
    leaderboard: pd.DataFrame
    predictions: pd.DataFrame  # one row per data row, ordered by row
    cv_predictions: pd.DataFrame
    dataset: Dataset
    model: Bundle
    no_leak: Bundle | None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def leaky(self) -> list[str]:
        """The columns the model fit to score today's users leaves out ([] without such a model)."""
        if self.no_leak is None or self.metrics.no_leak is None:
            return []
        return list(self.metrics.no_leak.excluded)

    def rows(self, which: str) -> pd.DataFrame:
        return self.predictions[self.predictions["set"] == which]

    def X(self, which: str) -> pd.DataFrame:
        return self.dataset.X.iloc[self.rows(which)["row"].to_numpy()]

    def y(self, which: str) -> np.ndarray:
        return self.rows(which)["y"].to_numpy(dtype=int)


WORDING = Wording("a training run", "run folder", "upgrade-predictor train", "upgrade-predictor train")


@dataclass(frozen=True)
class TableResults:
    """What a table run concluded, read without its data: run.json, metrics.json, leaderboard.csv."""

    dir: Path
    info: TableRunInfo
    metrics: RunMetrics
    leaderboard: pd.DataFrame


def read_results(run_dir: str | Path) -> TableResults:
    """The results of a complete table run folder (the data file is not reloaded: it may have moved)."""
    r = RunReader(Path(run_dir), WORDING)
    r.require(RUN_FILES)
    info = TableRunInfo.from_dict(r.json("run.json"), where=str(r.dir / "run.json"))
    metrics = RunMetrics.from_dict(r.json("metrics.json"), where=str(r.dir / "metrics.json"))
    return TableResults(r.dir, info, metrics, r.csv("leaderboard.csv"))


def load_run(run_dir: str | Path) -> Run:
    """Read a run folder and reload its data file; an incomplete folder or a changed file is an InputError."""
    r = RunReader(Path(run_dir), WORDING)
    d = r.dir
    if not d.is_dir():
        raise InputError(f"{d}: no such run folder")
    # run.json first: a damaged one says more about the folder than the files missing beside it.
    run_json = r.json("run.json") if (d / "run.json").exists() else {}
    r.require(RUN_FILES)
    info = TableRunInfo.from_dict(run_json, where=str(d / "run.json"))
    aud = AuditReport.from_dict(r.json("audit.json"), where=str(d / "audit.json"))
    metrics = RunMetrics.from_dict(r.json("metrics.json"), where=str(d / "metrics.json"))
    data_path = Path(info.data or config.default_data_path())
    ds = load_dataset(
        data_path,
        target=info.target,
        id_column=info.id_column,
        numeric=info.numeric,
        categorical=info.categorical,
        exclude=info.exclude,
        positive=info.positive,
        group_column=info.group_column,
    )
    expected = info.fingerprint or aud.fingerprint
    if expected and expected != ds.fingerprint:
        raise InputError(
            f"{data_path}: the data file changed since this run was trained (sha256 "
            f"{ds.fingerprint[:12]}... vs. {expected[:12]}...); the report needs the same file"
        )
    preds = r.parquet("predictions.parquet").sort_values("row").reset_index(drop=True)
    if len(preds) != ds.n or preds["row"].max() >= ds.n:
        raise InputError(f"{d}/predictions.parquet has {len(preds)} rows but {data_path} has {ds.n}")
    no_leak = load_bundle(d / "model_no_leak.zip") if (d / "model_no_leak.zip").exists() else None
    return Run(
        d,
        info,
        aud,
        metrics,
        r.csv("leaderboard.csv"),
        preds,
        r.parquet("cv_predictions.parquet"),
        ds,
        load_bundle(d / "model.zip"),
        no_leak,
    )
