"""The run folder: what a training run writes, and reading it back."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from .. import config
from ..audit import feature_keys
from ..bundle import Bundle, load_bundle, save_bundle
from ..dataset import Dataset, load_dataset
from ..errors import InputError
from ..files import write_json_atomic
from ..models import FAMILIES
from ..profile import reference_profile
from .metrics import Chosen, NoLeak, Reference, RunMetrics, Split, Threshold
from .protocol import REFERENCE, FittedModel, Outcome, TrainConfig, label_of, run_protocol
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
    report: dict,
    cfg: TrainConfig,
    budget: config.Budget,
    console: Console,
    storage: Any = None,
) -> RunMetrics:
    """Run the protocol and write every file of the run folder into `out`."""
    started, started_at = time.perf_counter(), datetime.now().isoformat(timespec="seconds")
    out.chmod(0o755)
    groups = feature_keys(ds.X).to_numpy() if cfg.group_duplicates else None
    o = run_protocol(ds, report["leakage_flags"], cfg, budget, console, groups, storage)
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
    write_json_atomic(out / "audit.json", report)
    write_json_atomic(out / "metrics.json", metrics.to_dict())
    o.board.to_csv(out / "leaderboard.csv", index=False)
    preds.to_parquet(out / "predictions.parquet", index=False)
    pd.DataFrame({"row": tr, "y": ds.y[tr], **{k: r.oof for k, r in o.results.items()}}).to_parquet(
        out / "cv_predictions.parquet", index=False
    )
    X_tr = ds.X.iloc[tr]
    save_bundle(
        out / "model.zip",
        o.final.estimator,
        bundle_metadata(o.final, ds, ds.schema, X_tr, o.chosen.summary, cfg, list(cfg.exclude)),
        "",
    )
    if o.no_leak is not None and o.no_leak_schema is not None and o.no_leak_cv is not None:
        keep = o.no_leak_schema.names
        save_bundle(
            out / "model_no_leak.zip",
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
    show_results(console, o.board, metrics)
    return metrics


def run_metrics(o: Outcome, cfg: TrainConfig, budget: config.Budget) -> RunMetrics:
    c = o.chosen.candidate
    return RunMetrics(
        chosen=Chosen(
            c.key,
            c.family,
            c.strategy,
            {**FAMILIES[c.family].defaults, **c.params},
            label_of(c),
            o.final.calibrated,
        ),
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
        ),
        tuning=o.tuning,
        reference=None
        if o.reference is None
        else Reference(o.reference.test, o.results[REFERENCE].summary, 0.5),
        no_leak=None
        if o.no_leak is None or o.no_leak_cv is None
        else NoLeak(o.leaky, o.no_leak.test, o.no_leak.train, o.no_leak_cv.summary, o.no_leak.threshold),
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


@dataclass
class Run:
    dir: Path
    info: dict
    audit: dict
    metrics: dict
    leaderboard: pd.DataFrame
    predictions: pd.DataFrame  # one row per data row, ordered by row
    cv_predictions: pd.DataFrame
    dataset: Dataset
    model: Bundle
    no_leak: Bundle | None
    timings: dict = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return int(self.info.get("seed", config.SEED))

    @property
    def offer_cost(self) -> float:
        return float(self.info.get("offer_cost", config.OFFER_COST))

    @property
    def upgrade_value(self) -> float:
        return float(self.info.get("upgrade_value", config.UPGRADE_VALUE))

    @property
    def leaky(self) -> list[str]:
        return list(self.metrics.get("no_leak", {}).get("excluded", [])) if self.no_leak else []

    def rows(self, which: str) -> pd.DataFrame:
        return self.predictions[self.predictions["set"] == which]

    def X(self, which: str) -> pd.DataFrame:
        return self.dataset.X.iloc[self.rows(which)["row"].to_numpy()]

    def y(self, which: str) -> np.ndarray:
        return self.rows(which)["y"].to_numpy(dtype=int)


def load_run(run_dir: str | Path) -> Run:
    """Read a run folder and reload its data file; an incomplete folder or a changed file is an InputError."""
    d = Path(run_dir)
    if not d.is_dir():
        raise InputError(f"{d}: no such run folder")
    missing = [f for f in RUN_FILES if not (d / f).exists()]
    if missing:
        raise InputError(
            f"{d}: not a complete run folder (missing {', '.join(missing)}); "
            "run 'upgrade-predictor train' first"
        )
    try:
        info, aud, metrics = (
            json.loads((d / f).read_text()) for f in ("run.json", "audit.json", "metrics.json")
        )
    except json.JSONDecodeError as e:
        raise InputError(f"{d}: a JSON file of the run is damaged ({e})") from None
    data_path = Path(info.get("data") or config.default_data_path())
    ds = load_dataset(
        data_path,
        target=info.get("target", config.TARGET),
        id_column=info.get("id_column"),
        numeric=info.get("numeric") or [],
        categorical=info.get("categorical") or [],
        exclude=info.get("exclude") or [],
        positive=info.get("positive"),
    )
    expected = info.get("fingerprint") or aud.get("fingerprint")
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
