"""The run folder: what a training run writes, and reading it back."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from .. import config
from ..bundle import Bundle, load_bundle, save_bundle, sign_bundle
from ..data_audit import AuditReport
from ..dataset import Dataset, load_dataset
from ..errors import InputError
from ..files import write_json_atomic
from ..models import FAMILIES
from ..profile import reference_profile
from ..sources.tables import error_line
from .metrics import NoLeak, Reference, RunMetrics, Split, Threshold
from .protocol import (
    REFERENCE,
    FittedModel,
    Outcome,
    RunClock,
    TrainConfig,
    chosen_of,
    label_of,
    run_protocol,
)
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
    out: Path,
    ds: Dataset,
    report: AuditReport,
    cfg: TrainConfig,
    budget: config.Budget,
    console: Console,
    storage: Any = None,
    clock: RunClock | None = None,
    groups: np.ndarray | None = None,
) -> RunMetrics:
    """Run the protocol and write every file of the run folder into `out`; `groups` (row_groups) keep
    rows together in every split."""
    started, started_at = time.perf_counter(), datetime.now().isoformat(timespec="seconds")
    out.chmod(0o755)
    o = run_protocol(ds, report.leakage_flags, cfg, budget, console, groups, storage, clock)
    tr, te = o.train_rows, o.test_rows
    metrics = run_metrics(o, cfg, budget)
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

    run_info = {
        **{
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in asdict(cfg).items()
            if k not in ("out", "force")
        },
        "data": ds.source,
        "threshold_objective": cfg.threshold,
        "fingerprint": ds.fingerprint,
        "started": started_at,
        "duration_s": round(time.perf_counter() - started, 1),
    }
    write_json_atomic(out / "run.json", run_info)
    write_json_atomic(out / "audit.json", report.to_dict())
    write_json_atomic(out / "metrics.json", metrics.to_dict())
    o.board.to_csv(out / "leaderboard.csv", index=False)
    preds.to_parquet(out / "predictions.parquet", index=False)
    pd.DataFrame({"row": tr, "y": ds.y[tr], **{k: r.oof for k, r in o.results.items()}}).to_parquet(
        out / "cv_predictions.parquet", index=False
    )
    X_tr = ds.X.iloc[tr]
    bundles = [out / "model.zip"]
    save_bundle(
        bundles[0],
        o.final.estimator,
        bundle_metadata(o.final, ds, ds.schema, X_tr, o.chosen.summary, cfg, list(cfg.exclude)),
        "",
    )
    if o.no_leak is not None and o.no_leak_schema is not None and o.no_leak_cv is not None:
        keep = o.no_leak_schema.names
        bundles.append(out / "model_no_leak.zip")
        save_bundle(
            bundles[-1],
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
            "",
        )
    if cfg.sign_key is not None:  # signed inside the staged folder, so bundle and signature publish together
        for path in bundles:
            sign_bundle(path, cfg.sign_key)
    show_results(console, o.board, metrics)
    return metrics


def run_metrics(o: Outcome, cfg: TrainConfig, budget: config.Budget) -> RunMetrics:
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
    schema,
    X_tr: pd.DataFrame,
    cv: dict,
    cfg: TrainConfig,
    excluded: list[str],
) -> dict:
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
        "label": label_of(model.candidate),
        "calibrated": model.calibrated,
        "metrics": {"cv": cv, "test": model.test.to_dict(), "train": model.train.to_dict()},
        "training": {
            "source": ds.source,
            "fingerprint": ds.fingerprint,
            "rows": int(len(X_tr)),
            "positive_share": float(ds.y.mean()),
            "seed": cfg.seed,
        },
        "excluded": excluded,
        "reference_profile": reference_profile(X_tr, model.p_train, schema),
    }


@dataclass(frozen=True)
class RunInfo:
    """run.json: how the run was trained. Keys this version does not read are kept in `extra`."""

    data: str | None = None
    target: str = config.TARGET
    id_column: str | None = None
    positive: str | None = None
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    seed: int = config.SEED
    test_size: float = config.TEST_SIZE
    group_duplicates: bool = False
    group_column: str | None = None
    budget: str | None = None
    threshold_objective: str = "f1"
    offer_cost: float = config.OFFER_COST
    upgrade_value: float = config.UPGRADE_VALUE
    fingerprint: str | None = None
    started: str | None = None
    duration_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "run.json") -> RunInfo:
        """Read run.json; a missing key takes the default training used, a wrong type is an InputError."""
        known = {f.name for f in fields(cls)}
        try:
            # Typed as Any so the per-kind readers below can fill the keyword arguments of any field.
            texts: dict[str, Any] = {k: _text(d, k) for k in _TEXTS if d.get(k) is not None}
            names: dict[str, Any] = {k: _names(d, k) for k in _NAMES}
            numbers: dict[str, Any] = {k: _number(d, k, kind) for k, kind in _NUMBERS.items() if k in d}
            return cls(
                **texts,
                **names,
                **numbers,
                group_duplicates=_flag(d, "group_duplicates"),
                extra={k: v for k, v in d.items() if k not in known},
            )
        except TypeError as e:
            raise InputError(
                f"{where}: not the settings of a run of this version ({e}); retrain with 'upgrade-predictor train'"
            ) from None


_TEXTS = (
    "data",
    "target",
    "id_column",
    "group_column",
    "positive",
    "budget",
    "threshold_objective",
    "fingerprint",
    "started",
)
_NAMES = ("numeric", "categorical", "exclude")
_NUMBERS: dict[str, type[int] | type[float]] = {
    "seed": int,
    "test_size": float,
    "offer_cost": float,
    "upgrade_value": float,
    "duration_s": float,
}


def _text(d: dict[str, Any], key: str) -> str | None:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise TypeError(f"'{key}' is {v!r}, not a text")
    return v


def _names(d: dict[str, Any], key: str) -> list[str]:
    v = d.get(key) or []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise TypeError(f"'{key}' is {v!r}, not a list of column names")
    return v


def _number(d: dict[str, Any], key: str, kind: type[int] | type[float]) -> int | float:
    v = d[key]
    if (
        isinstance(v, bool)
        or not isinstance(v, int | float)
        or not math.isfinite(v)
        or (kind is int and v != int(v))
    ):
        raise TypeError(f"'{key}' is {v!r}, not {'a whole number' if kind is int else 'a number'}")
    return kind(v)


def _flag(d: dict[str, Any], key: str) -> bool:
    v = d.get(key, False)
    if not isinstance(v, bool):
        raise TypeError(f"'{key}' is {v!r}, not true or false")
    return v


@dataclass
class Run:
    """A saved run folder, read back: typed run.json, audit.json and metrics.json, and the data."""

    dir: Path
    info: RunInfo
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


_JSON_KINDS = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "true/false",
    type(None): "null",
}


def json_object(
    path: Path, retrain: str = "upgrade-predictor train", kind: str = "a training run"
) -> dict[str, Any]:
    """A run's JSON file, which must hold one object; anything else says how to get a readable run."""
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # not JSON, or not text at all (UnicodeDecodeError)
        raise InputError(f"{path}: damaged JSON ({error_line(e)}); retrain with '{retrain}'") from None
    if not isinstance(d, dict):
        raise InputError(
            f"{path}: holds a JSON {_JSON_KINDS.get(type(d), 'value')}, not the object {kind} writes; "
            f"retrain with '{retrain}'"
        )
    return d


def load_run(run_dir: str | Path) -> Run:
    """Read a run folder and reload its data file; an incomplete folder or a changed file is an InputError."""
    d = Path(run_dir)
    if not d.is_dir():
        raise InputError(f"{d}: no such run folder")
    # run.json first: a damaged one says more about the folder than the files missing beside it.
    run_json = json_object(d / "run.json") if (d / "run.json").exists() else {}
    missing = [f for f in RUN_FILES if not (d / f).exists()]
    if missing:
        raise InputError(
            f"{d}: not a complete run folder (missing {', '.join(missing)}); "
            "run 'upgrade-predictor train' first"
        )
    info = RunInfo.from_dict(run_json, where=str(d / "run.json"))
    aud = AuditReport.from_dict(json_object(d / "audit.json"), where=str(d / "audit.json"))
    metrics = RunMetrics.from_dict(json_object(d / "metrics.json"), where=str(d / "metrics.json"))
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
    preds = pd.read_parquet(d / "predictions.parquet").sort_values("row").reset_index(drop=True)
    if len(preds) != ds.n or preds["row"].max() >= ds.n:
        raise InputError(f"{d}/predictions.parquet has {len(preds)} rows but {data_path} has {ds.n}")
    no_leak = load_bundle(d / "model_no_leak.zip") if (d / "model_no_leak.zip").exists() else None
    return Run(
        d,
        info,
        aud,
        metrics,
        pd.read_csv(d / "leaderboard.csv"),
        preds,
        pd.read_parquet(d / "cv_predictions.parquet"),
        ds,
        load_bundle(d / "model.zip"),
        no_leak,
    )
