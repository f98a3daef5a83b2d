"""The Python API: the code path the command line calls, for notebooks and scripts.

    import upgrade_predictor as up
    run = up.train("users.csv", target="purchased", budget="quick")   # or a DataFrame, or events=...
    run.leaderboard, run.metrics.test.pr_auc, run.report_path
    model = up.load_model(run.model_path)
    model.predict_proba(df); model.score(df, top=500); model.explain(df.head())
    up.audit(df)

Every error the user can cause raises `InputError` with the message the command line prints.
"""

from __future__ import annotations

import contextlib
import html
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from . import config
from .console import say
from .data_audit import AuditReport
from .data_audit import audit as audit_dataset
from .dataset import load_dataset
from .errors import InputError
from .files import write_atomic
from .forecast.runs import ForecastMetrics
from .kinds import TrainConfig, kind_of
from .process import os_error_message
from .scoring.scorer import Scorer, rank_order, selected_count
from .training.metrics import RunMetrics

Data = str | Path | pd.DataFrame


@contextlib.contextmanager
def _clear_errors() -> Iterator[None]:
    """A file that cannot be read or written raises InputError, as the command line reports it."""
    try:
        yield
    except OSError as e:
        raise InputError(os_error_message(e)) from None


@dataclass
class TrainedRun:
    """A finished, published training run: its folder, typed metrics and leaderboard."""

    dir: Path
    metrics: RunMetrics | ForecastMetrics
    leaderboard: pd.DataFrame

    @property
    def kind(self) -> str:
        return "events" if isinstance(self.metrics, ForecastMetrics) else "table"

    @property
    def model_path(self) -> Path:
        return self.dir / "model.zip"

    @property
    def report_path(self) -> Path | None:
        path = self.dir / "report.html"
        return path if path.exists() else None

    def load_model(self, verify_key: Path | None = None) -> Model:
        return load_model(self.model_path, verify_key=verify_key)

    def _repr_html_(self) -> str:
        t = self.metrics.test
        chosen = self.metrics.chosen
        report = f"<a href='{html.escape(str(self.report_path))}'>report</a>" if self.report_path else ""
        return (
            f"<div><b>upgrade-predictor run</b> <code>{html.escape(str(self.dir))}</code> "
            f"({self.kind}) {report}<br>chosen: {html.escape(chosen.family)} / "
            f"{html.escape(chosen.strategy)}; test PR AUC {t.pr_auc:.3f}, ROC AUC {t.roc_auc:.3f}, "
            f"F1 {t.f1:.3f}</div>"
            + self.leaderboard.head(10).to_html(index=False, float_format=lambda v: f"{v:.3f}")
        )


def read_run(run_dir: str | Path) -> TrainedRun:
    """A published run folder, read back without its data: metrics and leaderboard."""
    d = Path(run_dir)
    with _clear_errors():
        results = kind_of(d).results(d)
    return TrainedRun(d, results.metrics, results.leaderboard)


def train(
    data: Data | TrainConfig | None = None,
    *,
    console: Console | None = None,
    tracking_uri: str | None = None,
    mlflow: bool = False,
    **options: Any,
) -> TrainedRun:
    """Train on a table (a path or a DataFrame) or, with events=DIR, on dated event tables.

    Options are TrainConfig's fields (target, budget, seed, out, families, strategies, horizon,
    time_limit, ...). The report is written into the run folder unless report=False; with
    `tracking_uri` (or mlflow=True: $MLFLOW_TRACKING_URI, else ./mlruns) the run is logged to MLflow."""
    if isinstance(data, TrainConfig):
        if options:
            raise InputError(f"pass options in the TrainConfig, not beside it: {', '.join(options)}")
        cfg = data
    else:
        known = {f.name for f in fields(TrainConfig)} - {"data"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(f"unknown option {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
        cfg = TrainConfig(**options)
    frame_file: Path | None = None
    if isinstance(data, pd.DataFrame):
        # A DataFrame is kept beside the run as Parquet: the report and later rebuilds read that file.
        dest = Path(cfg.out) if cfg.out else Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
        frame_file = dest.with_name(dest.name + ".data.parquet")
        with _clear_errors():
            write_atomic(frame_file, lambda f: data.to_parquet(f, index=False))
        cfg = replace(cfg, data=frame_file, out=dest)
    elif data is not None and not isinstance(data, TrainConfig):
        cfg = replace(cfg, data=Path(data))
    finish = (lambda folder, name: report(folder, console, name=name)) if cfg.report else None
    try:
        with _clear_errors():
            folder = cfg.kind.run(cfg, console, finish)
    except BaseException:
        if frame_file is not None:
            frame_file.unlink(missing_ok=True)
        raise
    if tracking_uri is not None or mlflow:
        from .tracking import log_run

        run_id = log_run(folder, tracking_uri)
        say(console, f"logged to MLflow as run {run_id}")
    return read_run(folder)


def report(run_dir: str | Path, console: Console | None = None, name: str | None = None) -> Path:
    """(Re)build run_dir/report.html for a table run or an events run."""
    with _clear_errors():
        return kind_of(run_dir).report(Path(run_dir), console, name=name)


class Model:
    """A trained bundle, loaded with the same trusted loader as `score` and `serve`."""

    def __init__(self, scorer: Scorer):
        self.scorer = scorer

    @property
    def threshold(self) -> float:
        return self.scorer.threshold

    def _scored(self, df: pd.DataFrame, explain: bool = False):  # type: ignore[no-untyped-def]
        if not isinstance(df, pd.DataFrame):
            raise InputError(f"give a pandas DataFrame of users (got {type(df).__name__})")
        scored = self.scorer.score_frame(df, explain=explain)
        if not scored.valid.all():
            bad = np.flatnonzero(~scored.valid)
            reasons = scored.reasons.iloc[bad]
            raise InputError(
                f"{len(bad):,} of {len(df):,} rows are not valid; the first, row {bad[0]}: "
                f"{reasons.iloc[0]} (score() keeps the valid rows and lists the rest)"
            )
        return scored

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Upgrade probability per row (every row must be valid)."""
        return self._scored(df).probability

    def score(
        self,
        df: pd.DataFrame,
        top: int | None = None,
        budget: float | None = None,
        offer_cost: float | None = None,
    ) -> pd.DataFrame:
        """The ranked target list `upgrade-predictor score` writes: row, probability, decision, rank;
        invalid rows are left out (their reasons in `.attrs['rejects']`)."""
        scored = self.scorer.score_frame(df)
        rows = np.flatnonzero(scored.valid)
        order = rank_order(scored.probability)
        cost = self.scorer.offer_cost if offer_cost is None else offer_cost
        keep = order[: selected_count(len(order), top, budget, cost)]
        out = pd.DataFrame(
            {
                "row": rows[keep],
                "probability": scored.probability[keep],
                "decision": scored.decision[keep],
                "rank": np.arange(1, len(keep) + 1),
            }
        )
        bad = np.flatnonzero(~scored.valid)
        out.attrs["rejects"] = pd.DataFrame({"row": bad, "reason": scored.reasons.iloc[bad].to_numpy()})
        return out

    def explain(self, df: pd.DataFrame) -> pd.DataFrame:
        """Signed contribution of every input column per row (log-odds; boosted models)."""
        scored = self._scored(df)
        values, names = self.scorer.contributions(scored.valid_features)
        return pd.DataFrame(values, columns=names, index=df.index)


def load_model(path: str | Path, verify_key: str | Path | None = None) -> Model:
    """Load model.zip (skops, trusted types only); with verify_key, refuse an unsigned or foreign one."""
    with _clear_errors():
        return Model(Scorer.load(Path(path), verify_key=Path(verify_key) if verify_key else None))


@dataclass
class Audit:
    """The data audit of a training table, with its per-column table."""

    report: AuditReport

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "feature": c.name,
                    "kind": c.kind,
                    "missing": c.missing,
                    "univariate_roc_auc": c.univariate_auc,
                    "leakage_flag": c.leakage_flag,
                    "heavy_tail": c.heavy_tail,
                    "rare_categories": c.rare_categories,
                }
                for c in self.report.feature_columns
            ]
        )

    @property
    def warnings(self) -> list[str]:
        return list(self.report.warnings)

    def _repr_html_(self) -> str:
        r = self.report
        head = (
            f"<b>data audit</b>: {r.rows:,} rows, {r.columns} features, "
            f"{r.class_balance.positive_share:.1%} positive ({html.escape(r.target)})"
        )
        warns = "".join(f"<li>{html.escape(w)}</li>" for w in r.warnings)
        return f"<div>{head}<ul>{warns}</ul></div>" + self.table.to_html(
            index=False, float_format=lambda v: f"{v:.3f}"
        )


def audit(data: Data | None = None, target: str = config.TARGET, **options: Any) -> Audit:
    """Audit a training table (a path or a DataFrame; the bundled data by default)."""
    with _clear_errors(), tempfile.TemporaryDirectory() as tmp:
        path: Path | None = None
        if isinstance(data, pd.DataFrame):
            path = Path(tmp) / "frame.parquet"
            data.to_parquet(path, index=False)
        elif data is not None:
            path = Path(data)
        return Audit(audit_dataset(load_dataset(path, target=target, **options)))


def plan_campaign(
    model: str | Path,
    events: str | Path,
    out: str | Path,
    as_of: str | None = None,
    top: int | None = None,
    budget: float | None = None,
    holdout: float = 0.2,
    seed: int = config.SEED,
    offer_cost: float = config.OFFER_COST,
    upgrade_value: float = config.UPGRADE_VALUE,
    discount: float = 0.0,
    mapping: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Draw a randomized holdout for an offer to the users free on `as_of`; the plan folder written."""
    from .campaign.plan import plan_campaign as plan

    with _clear_errors():
        return plan(
            Path(model), Path(events), Path(out), as_of, top, budget, holdout, seed,
            offer_cost, upgrade_value, discount, Path(mapping) if mapping else None, force,
        )  # fmt: skip


def read_out(
    plan_dir: str | Path,
    events: str | Path,
    out: str | Path,
    mapping: str | Path | None = None,
    force: bool = False,
    as_of: str | None = None,
    horizon: int | None = None,
) -> Path:
    """Measure a planned campaign's offer against its holdout from newer event tables, or check a plain
    `score --events` list (a file; `horizon` then required) against what happened; the folder written."""
    from .campaign.run import read_out as run

    with _clear_errors():
        return run(
            Path(plan_dir), Path(events), Path(out), Path(mapping) if mapping else None, force, as_of, horizon
        )
