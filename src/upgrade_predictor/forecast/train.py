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

from .. import config
from ..bundle import BundleMetadata, EventsInfo, ModelMetrics, TrainingInfo
from ..console import say
from ..evaluation import scores
from ..parallel import connect, fits_on, study_storage
from ..profile import reference_profile
from ..runs.folder import RunWriter, destination, published
from ..sources.event_audit import EventAudit
from ..sources.event_database import parse_database
from ..sources.event_staging import event_inputs
from ..training.clock import RunClock
from ..training.selection import chosen_of
from .aggregated import aggregated_predictions
from .backtest import count_interval
from .design import CutoffPlan, Design, backtest_periods, build_design
from .engine import EventEngine, open_engine
from .evaluate import (
    backtest_frame,
    differences,
    overdispersion,
    snapshot_counts,
    with_intervals,
)
from .features import DEFAULT_WINDOWS
from .info import EventRunInfo
from .matrix import Matrix, build_matrix
from .options import EventOptions
from .policy import Policy, choose_threshold, grid_dates, judge, on_grid
from .protocol import AGGREGATED, ForecastOutcome, model_key, run_forecast_protocol
from .runs import Forecast, ForecastMetrics, curve_dict, write_tables
from .sample import DesignSample, RowBudget
from .summary import show_event_audit, show_forecast
from .survival import km_by_segment, km_curve, time_to_upgrade

# The baselines the model is compared with under a paired bootstrap: the bar (tenure alone) and what the
# aggregated table costs; the others are shown with their point metrics.
PAIRED_BASELINES = ("tenure only", AGGREGATED)


def run_forecast(
    cfg: EventOptions, console: Console | None = None, finish: Callable[[Path, str], object] | None = None
) -> Path:
    """Train and backtest an upgrade forecast from the event tables in cfg.events; publish the run."""
    console = console or Console(stderr=True)
    budget = cfg.check()
    clock = RunClock(cfg.time_limit)  # --time-limit counts from here, reading the tables included
    started_at = datetime.now().isoformat(timespec="seconds")
    events = Path(cfg.events or config.default_events_path())
    tables = event_inputs(events, cfg.mapping) if events.is_dir() else []
    dest = destination(
        cfg.out,
        cfg.force,
        {"--events": cfg.events, "--mapping": cfg.mapping, "a table of the mapping": tables},
    )
    clock.mark("read and design")
    # The engine is this machine's DuckDB: a run trains here (its fits may go to a cluster); the cluster
    # engine serves `score --events --dask` and `features --dask`.
    with connect(cfg.dask) as client, open_engine(events, cfg.mapping) as engine:
        users, design = _design(engine, cfg, budget, console)
        clock.mark("features")
        m = _features(engine, design, console)
        with published(dest) as out:
            clock.mark("compare, tune and backtest")
            with fits_on(client) as n_jobs:
                run_cfg = replace(cfg, jobs=n_jobs or cfg.jobs, threshold="profit")
                fit_users = users[users["user_id"].isin(design.rows.loc[design.rows["in_fit"], "user_id"])]
                o = run_forecast_protocol(
                    m,
                    design,
                    run_cfg,
                    budget,
                    console,
                    study_storage(client),
                    aggregated=lambda cand, s: aggregated_predictions(
                        engine, fit_users, m, cand, s, cfg.seed, cfg.jobs
                    ),
                    clock=clock,
                )
            clock.mark("evaluate and forecast")
            today = engine.data_end + timedelta(days=1)
            with console.status(f"forecast: every user free on {today}"):
                now = build_matrix(engine.attributes, engine.features_on(today), m.schema)
                metrics, counts = _write(out, cfg, engine, design, m, now, o, today)
            clock.mark("tables")
            info = EventRunInfo.of(
                cfg,
                events=db.url if (db := parse_database(events)) else str(events),
                data_end=engine.data_end.isoformat(),
                started=started_at,
                timings=laps(clock),
            )
            write_tables(out, info, metrics, *_tables(engine, users, design, m, o, metrics, counts))
            show_forecast(console, metrics)
            out.finish(finish, clock)
    clock.mark(None)
    say(
        console,
        f"done in {time.perf_counter() - clock.started:.0f}s ("
        + ", ".join(f"{k} {v:.0f}s" for k, v in laps(clock).items())
        + f"): {dest}",
        style="green",
    )
    return dest


def _features(engine: EventEngine, design: Design, console: Console) -> Matrix:
    """The typed features of every design row kept (the sampled users' rows, under a row budget)."""
    with console.status(f"point-in-time features of {len(design.rows):,} (user, cutoff) rows"):
        return build_matrix(engine.attributes, engine.features_at(design.rows[["user_id", "cutoff"]]))


# The protocol times its comparison and tuning (they share --time-limit); the run reports them as
# part of the stage that holds them.
_WITHIN = {"comparison": "compare, tune and backtest", "tuning": "compare, tune and backtest"}


def laps(clock: RunClock) -> dict[str, float]:
    """The seconds of each stage of the run ended so far, in the order run."""
    out: dict[str, float] = {}
    for stage, seconds in clock.stages.items():
        out[_WITHIN.get(stage, stage)] = out.get(_WITHIN.get(stage, stage), 0.0) + seconds
    return {k: round(v, 2) for k, v in out.items()}


def _design(
    engine: EventEngine, cfg: EventOptions, budget: config.Budget, console: Console
) -> tuple[pd.DataFrame, Design]:
    """The event audit shown, the users, and the (user, cutoff) design with its labels and its sample."""
    show_event_audit(console, engine.audit)
    users = engine.users_frame()
    rows = row_budget(cfg, budget, engine.data_end)
    design = build_design(
        users, engine.data_end, CutoffPlan(config.FIRST_DAYS, config.CALENDAR_EVERY_DAYS, cfg.horizon), rows
    )
    s = design.sample
    say(
        console,
        f"design: {s.rows:,} (user, cutoff) rows of {s.users:,} users, "
        f"{s.positives:,} with an upgrade within {cfg.horizon} days; "
        f"left out: {design.excluded.upgraded_before:,} after the user's upgrade, "
        f"{design.excluded.horizon_past_end:,} whose horizon runs past {engine.data_end}",
    )
    say(console, plan_line(s, rows, budget.name))
    return users, design


def row_budget(cfg: EventOptions, budget: config.Budget, data_end: date) -> RowBudget:
    """The rows this run may train on and score: the budget's, or --design-rows (0: every row)."""
    fit = budget.design_rows if cfg.design_rows is None else (cfg.design_rows or None)
    periods = backtest_periods(
        data_end, cfg.horizon, config.ORIGINS, config.ORIGIN_STEP_DAYS, config.TEST_DAYS
    )
    return RowBudget(fit, budget.eval_rows if fit else None, periods, cfg.seed)


def plan_line(s: DesignSample, rows: RowBudget, budget: str) -> str:
    """One line stating the sample sizes, as a table run states its limits."""
    cap = f"up to {rows.fit_rows:,}" if rows.fit_rows else "no limit"
    fit = (
        f"training on every row ({cap}, budget {budget})"
        if s.fit_share == 1
        else f"training on the {s.fit_rows:,} rows of a random {s.fit_share:.1%} of users "
        f"({s.fit_users:,}; budget {budget}: {cap} rows)"
    )
    scored = (
        "each test period scored on every free user"
        if s.eval_share == 1
        else f"each test period scored on a random {s.eval_share:.1%} of users ({s.eval_rows:,} of "
        f"{s.eval_rows_all:,} test rows)"
    )
    return f"plan: {fit}; {scored}"


def _write(
    out: RunWriter,
    cfg: EventOptions,
    engine: EventEngine,
    design: Design,
    m: Matrix,
    now: Matrix,
    o: ForecastOutcome,
    today: date,
) -> tuple[ForecastMetrics, pd.DataFrame]:
    """Evaluate the backtest, forecast today, save (and sign) the bundle; the typed metrics."""
    y = design.rows["label"].to_numpy().astype(int)
    method, c = o.calibration, o.chosen.candidate
    final_model = o.final.models[method]
    p_now = final_model.predict_proba(now.X)[:, 1]
    metrics, counts = _evaluate(cfg, design, m, o, p_now, today)
    deployed = metrics.policy
    meta = BundleMetadata(
        schema=m.schema,
        threshold=float(deployed.threshold),
        threshold_objective="profit",
        offer_cost=float(cfg.offer_cost),
        upgrade_value=float(cfg.upgrade_value),
        key=c.key,
        family=c.family,
        strategy=c.strategy,
        params=dict(metrics.chosen.params),
        label=metrics.chosen.label,
        calibrated=method != "none",
        metrics=ModelMetrics(cv=dict(o.chosen.summary), test=metrics.test.to_dict()),
        training=TrainingInfo(
            source=str(engine.folder),
            fingerprint="",
            rows=int(len(design.fit_rows())),
            positive_share=float(y[design.fit_rows()].mean()),
            seed=cfg.seed,
        ),
        excluded=[],
        events=EventsInfo(
            horizon=cfg.horizon, windows=list(DEFAULT_WINDOWS), data_end=engine.data_end.isoformat()
        ),
        reference_profile=reference_profile(now.X, p_now, m.schema),
    )
    out.bundle("model.zip", final_model, meta)
    out.sign(cfg.sign_key)
    return metrics, counts


def _evaluate(
    cfg: EventOptions, design: Design, m: Matrix, o: ForecastOutcome, p_now: np.ndarray, today: date
) -> tuple[ForecastMetrics, pd.DataFrame]:
    """The test period's scores and baselines, the weekly counts with their intervals, the deployed
    policy and today's forecast; the typed metrics and the counts."""
    y = design.rows["label"].to_numpy().astype(int)
    method = o.calibration
    counts = snapshot_counts(o, design, method)
    # The widening is measured on the earlier origins and judged on the test period, which it never saw.
    test_origin = len(o.origins)
    phi = overdispersion(counts[counts["origin"] < test_origin])
    counts = with_intervals(counts, phi)
    last = o.origins[-1]
    test_y, test_p = y[last.split.test], last.model(method)
    policy, deployed = _policies(cfg, y, m, design, o)
    low, high = count_interval(p_now, 0.95, phi)
    forecast = Forecast(
        today.isoformat(), len(p_now), float(p_now.sum()), low, high, int((p_now >= deployed.threshold).sum())
    )
    users_test = design.rows["user_id"].to_numpy()[last.split.test]
    others = last.baselines()
    paired = {k: v for k, v in others.items() if k in PAIRED_BASELINES}
    metrics = ForecastMetrics(
        chosen=chosen_of(o.chosen.candidate, method != "none"),
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
    return metrics, counts


def _policies(
    cfg: EventOptions, y: np.ndarray, m: Matrix, design: Design, o: ForecastOutcome
) -> tuple[Policy, Policy]:
    """The offer policy chosen on the last origin's recent campaigns (it sets the test threshold), and
    the deployed one, chosen the same way on the final model's own; both judged on the test campaigns."""
    last, method = o.origins[-1], o.calibration
    econ, lift = cfg.economics(), cfg.lift()
    campaign_rows = on_grid(design, last.split.test)
    test, test_p = last.split.test[campaign_rows], last.model(method)[campaign_rows]
    users = design.rows["user_id"].to_numpy()
    scale = 1.0 / design.sample.eval_share

    def judged(rows: np.ndarray, p: np.ndarray) -> Policy:
        grid = on_grid(design, rows)
        threshold = choose_threshold(y[rows][grid], p[grid], econ, lift)
        return judge(
            y[test], test_p, users[test], grid_dates(design, test), threshold, econ, lift, scale, cfg.seed
        )

    calib = o.final.calib_rows
    deployed_p = o.final.models[method].predict_proba(m.X.iloc[calib])[:, 1]
    return judged(last.calib_rows, last.calib_p[method]), judged(calib, deployed_p)


def _tables(
    engine: EventEngine,
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
        "rows": int(design.sample.rows),
        "users": int(design.sample.users),
        "positives": int(design.sample.positives),
        "sample": design.sample.as_dict(),
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
    ttu = time_to_upgrade(users, engine.data_end)
    ttu = ttu.merge(engine.first_day_activity(), on="user_id", how="left")
    ttu["first_day_activity"] = np.where(
        ttu["first_day_activity"].fillna(False), "active on day 0", "not active on day 0"
    )
    curves = [km_curve(ttu["duration"], ttu["event"], "all users")]
    attrs = [a.column for a in engine.attributes if a.kind == "categorical"]
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
    audit = _audit_dict(engine.audit)
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
