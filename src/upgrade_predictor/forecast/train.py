"""An events run: read the dated tables, build the (user, cutoff) design and its point-in-time features,
run the forecasting protocol, forecast today's free users, and publish the run folder whole."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from .. import config
from ..bundle import save_bundle, sign_bundle
from ..console import plain, say, warn
from ..evaluation import scores
from ..files import staged_folder
from ..parallel import connect, fits_on, study_storage
from ..profile import reference_profile
from ..sources.events import EventAudit, EventSource, ident
from ..training.protocol import RunClock, TrainConfig, chosen_of
from ..training.train import check_out
from .aggregated import aggregated_predictions
from .backtest import count_interval
from .design import CutoffPlan, Design, build_design
from .evaluate import (
    backtest_frame,
    choose_policy,
    differences,
    model_key,
    overdispersion,
    snapshot_counts,
    with_intervals,
)
from .features import DEFAULT_WINDOWS, features_as_of, point_in_time_features
from .matrix import Matrix, build_matrix
from .protocol import ForecastOutcome, run_forecast_protocol
from .runs import Forecast, ForecastMetrics, curve_dict, write_tables
from .survival import km_by_segment, km_curve, time_to_upgrade

# The baselines the model is compared with under a paired bootstrap: the bar (tenure alone) and what the
# aggregated table costs; the others are shown with their point metrics.
PAIRED_BASELINES = ("tenure only", "aggregated-table model")


def run_forecast(
    cfg: TrainConfig, console: Console | None = None, finish: Callable[[Path, str], object] | None = None
) -> Path:
    """Train and backtest an upgrade forecast from the event tables in cfg.events; publish the run."""
    console = console or Console(stderr=True)
    budget = cfg.check()
    run_clock = RunClock(cfg.time_limit)  # --time-limit counts from here, reading the tables included
    started, started_at = run_clock.started, datetime.now().isoformat(timespec="seconds")
    dest = check_out(cfg)
    events = Path(cfg.events or config.default_events_path())
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        timings[stage] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    with EventSource(events, cfg.mapping) as source:
        show_event_audit(console, source.audit)
        users = source.users_frame()
        design = build_design(
            users, source.data_end, CutoffPlan(config.FIRST_DAYS, config.CALENDAR_EVERY_DAYS, cfg.horizon)
        )
        say(
            console,
            f"design: {len(design.rows):,} (user, cutoff) rows of {design.rows['user_id'].nunique():,} "
            f"users, {int(design.rows['label'].sum()):,} with an upgrade within {cfg.horizon} days; "
            f"left out: {design.excluded.upgraded_before:,} after the user's upgrade, "
            f"{design.excluded.horizon_past_end:,} whose horizon runs past {source.data_end}",
        )
        lap("read and design")
        with console.status("point-in-time features (DuckDB)"):
            m = build_matrix(source, point_in_time_features(source, design.rows[["user_id", "cutoff"]]))
        lap("features")
        with staged_folder(dest) as out:
            with connect(cfg.dask) as client, fits_on(client) as n_jobs:
                run_cfg = replace(cfg, jobs=n_jobs or cfg.jobs, threshold="profit")
                o = run_forecast_protocol(
                    m,
                    design,
                    run_cfg,
                    budget,
                    console,
                    study_storage(client),
                    aggregated=lambda cand, s: aggregated_predictions(source, users, m, cand, s, cfg.seed),
                    clock=run_clock,
                )
            lap("compare, tune and backtest")
            today = source.data_end + timedelta(days=1)
            now = build_matrix(source, features_as_of(source, today), m.schema)
            metrics, counts = _write(out, cfg, source, design, m, now, o, today)
            lap("evaluate and forecast")
            info = {
                "events": str(events),
                "mapping": str(cfg.mapping) if cfg.mapping else None,
                "budget": cfg.budget,
                "seed": cfg.seed,
                "horizon": cfg.horizon,
                "time_limit": cfg.time_limit,
                "offer_cost": cfg.offer_cost,
                "upgrade_value": cfg.upgrade_value,
                "data_end": source.data_end.isoformat(),
                "started": started_at,
                "timings": timings,
            }
            write_tables(out, info, metrics, *_tables(source, users, design, m, o, metrics, counts))
            lap("tables")
            show_forecast(console, metrics)
            if finish is not None:
                finish(out, dest.name)
                lap("report")

    say(
        console,
        f"done in {time.perf_counter() - started:.0f}s ("
        + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
        + f"): {dest}",
        style="green",
    )
    return dest


def _write(
    out: Path,
    cfg: TrainConfig,
    source: EventSource,
    design: Design,
    m: Matrix,
    now: Matrix,
    o: ForecastOutcome,
    today: date,
) -> tuple[ForecastMetrics, pd.DataFrame]:
    """Evaluate the backtest, choose the policy, forecast today, save the bundle; the typed metrics."""
    y = design.rows["label"].to_numpy().astype(int)
    method = o.calibration
    counts = snapshot_counts(o, design, method)
    # The widening is measured on the earlier origins and judged on the test period, which it never saw.
    test_origin = len(o.origins)
    phi = overdispersion(counts[counts["origin"] < test_origin])
    counts = with_intervals(counts, phi)
    last = o.origins[-1]
    test_y, test_p = y[last.split.test], last.p[model_key(method)]
    policy = choose_policy(
        last.calib_y, last.calib_p[method], test_y, test_p, cfg.offer_cost, cfg.upgrade_value, cfg.seed
    )
    final_model = o.final.models[method]
    # The deployed policy is chosen the same way, on the final model's own most recent labelled rows.
    calib = o.final.calib_rows
    deployed = choose_policy(
        y[calib],
        final_model.predict_proba(m.X.iloc[calib])[:, 1],
        test_y,
        test_p,
        cfg.offer_cost,
        cfg.upgrade_value,
        cfg.seed,
    )
    p_now = final_model.predict_proba(now.X)[:, 1]
    low, high = count_interval(p_now, 0.95, phi)
    forecast = Forecast(
        today.isoformat(), len(p_now), float(p_now.sum()), low, high, int((p_now >= deployed.threshold).sum())
    )
    users_test = design.rows["user_id"].to_numpy()[last.split.test]
    others = {k: v for k, v in last.p.items() if not k.startswith("model (")}
    paired = {k: v for k, v in others.items() if k in PAIRED_BASELINES}
    c = o.chosen.candidate
    metrics = ForecastMetrics(
        chosen=chosen_of(c, method != "none"),
        objective=cfg.objective,
        horizon=cfg.horizon,
        test_start=last.split.test_start.isoformat(),
        test_end=last.split.test_end.isoformat(),
        test=scores(test_y, test_p, policy.threshold),
        baselines={k: scores(test_y, p, policy.threshold) for k, p in others.items()},
        differences=differences(test_y, users_test, test_p, paired, cfg.seed),
        calibration=method,
        calibration_log_loss=o.calibration_scores,
        overdispersion=phi,
        coverage=float(
            counts.loc[(counts["model"] == "model") & (counts["origin"] == test_origin), "covered"].mean()
        ),
        policy=deployed,
        forecast=forecast,
        cv=o.chosen.summary,
        compare_rows=o.compare_rows,
        tuning=o.tuning,
        selection=o.selection,
        notes=o.notes,
    )
    meta = {
        "schema": m.schema.to_dict(),
        "threshold": deployed.threshold,
        "threshold_objective": "profit",
        "offer_cost": cfg.offer_cost,
        "upgrade_value": cfg.upgrade_value,
        "key": c.key,
        "family": c.family,
        "strategy": c.strategy,
        "params": metrics.chosen.params,
        "label": metrics.chosen.label,
        "calibrated": method != "none",
        "metrics": {"cv": o.chosen.summary, "test": metrics.test.to_dict()},
        "training": {
            "source": str(source.folder),
            "fingerprint": "",
            "rows": int(len(y)),
            "positive_share": float(y.mean()),
            "seed": cfg.seed,
        },
        "excluded": [],
        "events": {
            "horizon": cfg.horizon,
            "windows": list(DEFAULT_WINDOWS),
            "data_end": source.data_end.isoformat(),
        },
        "reference_profile": reference_profile(now.X, p_now, m.schema),
    }
    save_bundle(out / "model.zip", final_model, meta, "")
    if cfg.sign_key is not None:  # signed inside the staged folder, so bundle and signature publish together
        sign_bundle(out / "model.zip", cfg.sign_key)
    return metrics, counts


def _tables(
    source: EventSource,
    users: pd.DataFrame,
    design: Design,
    m: Matrix,
    o: ForecastOutcome,
    metrics: ForecastMetrics,
    counts: pd.DataFrame,
) -> tuple[Any, ...]:
    """design.json, the event audit, leaderboard, backtest, forecasts, survival, test predictions."""
    s = o.origins[-1].split
    design_info = {
        "plan": {k: str(v) for k, v in asdict(design.plan).items()},
        "horizon": design.horizon,
        "data_end": design.data_end.isoformat(),
        "rows": int(len(design.rows)),
        "users": int(design.rows["user_id"].nunique()),
        "positives": int(design.rows["label"].sum()),
        "excluded": design.excluded.as_dict(),
        "origins": [
            {
                "test_start": o_.split.test_start.isoformat(),
                "test_end": o_.split.test_end.isoformat(),
                "train_cutoff_end": o_.split.train_cutoff_end.isoformat(),
                "train_rows": int(len(o_.split.train)),
                "fit_rows": int(o_.fit_rows),
                "test_rows": int(len(o_.split.test)),
                "gap_days": int(o_.split.gap_days),
            }
            for o_ in o.origins
        ],
        "features": list(m.schema.names),
        "windows": list(DEFAULT_WINDOWS),
        "final_fit_rows": int(o.final.fit_rows),
        "final_sampled": bool(o.final.sampled),
    }
    ttu = time_to_upgrade(users, source.data_end)
    ttu = ttu.merge(first_day_activity(source), on="user_id", how="left")
    ttu["first_day_activity"] = np.where(
        ttu["first_day_activity"].fillna(False), "active on day 0", "not active on day 0"
    )
    curves = [km_curve(ttu["duration"], ttu["event"], "all users")]
    attrs = [a.column for a in source.attributes if a.kind == "categorical"]
    for col in [*attrs, "first_day_activity"]:
        curves += km_by_segment(ttu, col)
    survival = {"curves": [curve_dict(c) for c in curves]}
    backtest = backtest_frame(o, design, o.calibration, metrics.overdispersion)
    rows = design.rows.iloc[s.test]
    preds = pd.DataFrame(
        {
            "user_id": rows["user_id"].to_numpy(),
            "cutoff": rows["cutoff"].to_numpy(),
            "tenure_days": rows["tenure_days"].to_numpy(),
            "y": rows["label"].to_numpy(),
            **{("p" if k == model_key(o.calibration) else k): v for k, v in o.origins[-1].p.items()},
        }
    )
    audit = _audit_dict(source.audit)
    return design_info, audit, o.board, backtest, counts, survival, preds


def _audit_dict(audit: EventAudit) -> dict[str, Any]:
    d = asdict(audit)
    return {
        **d,
        "data_start": audit.data_start.isoformat(),
        "data_end": audit.data_end.isoformat(),
        "tables": [
            {**t, "first_date": str(t["first_date"]), "last_date": str(t["last_date"])} for t in d["tables"]
        ],
    }


def first_day_activity(source: EventSource) -> pd.DataFrame:
    """user_id and whether the user did anything on the registration day (for the survival segments)."""
    parts = [
        f"SELECT a.user_id FROM {ident('act_' + a.name)} a JOIN users u USING (user_id) "
        "WHERE a.day = u.registered"
        for a in source.mapping.activities
    ]
    df = source.con.sql(" UNION ".join(parts)).df() if parts else pd.DataFrame({"user_id": []})
    return df.assign(first_day_activity=True)


def show_event_audit(console: Console, audit: EventAudit) -> None:
    t = Table(
        title=plain(
            f"event tables: {audit.users:,} users, {audit.converted_users:,} upgraded, "
            f"{audit.data_start} to {audit.data_end}"
        ),
        title_justify="left",
    )
    for col in ("table", "rows", "kept", "first", "last", "left out or flagged"):
        t.add_column(col, justify="right" if col in ("rows", "kept") else "left")
    for a in audit.tables:
        flagged = a.rows - a.kept
        t.add_row(
            plain(a.name),
            f"{a.rows:,}",
            f"{a.kept:,}",
            str(a.first_date),
            str(a.last_date),
            plain(
                f"{flagged:,}"
                + (f", {a.before_registration:,} before registration (kept)" if a.before_registration else "")
            ),
        )
    console.print(t)
    for note in audit.notes:
        warn(console, note)


def show_forecast(console: Console, m: ForecastMetrics) -> None:
    t = Table(
        title=plain(f"time-ordered test ({m.test_start} to {m.test_end}), upgrades within {m.horizon} days"),
        title_justify="left",
    )
    for col in ("model", "PR AUC", "ROC AUC", "Brier"):
        t.add_column(col, justify="left" if col == "model" else "right")
    t.add_row(
        plain(m.chosen.label + f" ({m.calibration})"),
        f"{m.test.pr_auc:.3f}",
        f"{m.test.roc_auc:.3f}",
        f"{m.test.brier:.4f}",
        style="bold",
    )
    for name, s in m.baselines.items():
        t.add_row(plain(name), f"{s.pr_auc:.3f}", f"{s.roc_auc:.3f}", f"{s.brier:.4f}")
    console.print(t)
    f = m.forecast
    say(
        console,
        f"forecast: of {f.free_users:,} users free on {f.as_of}, {f.expected:,.0f} "
        f"[{f.low:,.0f}, {f.high:,.0f}] are expected to upgrade within {m.horizon} days "
        f"(weekly counts of the test period inside their interval: {m.coverage:.0%}; overdispersion "
        f"{m.overdispersion:.1f}, measured on the earlier origins)",
    )
    if m.policy.pays:
        say(console, f"policy: offer to users scoring >= {m.policy.threshold:.3f} ({f.offers:,} users today)")
    else:
        warn(
            console,
            f"no offer policy made money at offer cost {m.policy.offer_cost:g} and upgrade value "
            f"{m.policy.upgrade_value:g}: send none; an offer would have to cost under "
            f"{m.policy.break_even_cost:.2f} to pay",
        )
    if m.notes:  # the time limit's note: the run's results are this machine's
        warn(console, m.notes[0])
