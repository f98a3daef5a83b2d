"""An events run as a tracking record: its options, test period, baselines, forecast and policy."""

from __future__ import annotations

from pathlib import Path

from ..runs.tracked import Tracked, prefixed, scores, slug
from .runs import load_forecast_run


def tracked(run_dir: Path) -> Tracked:
    run = load_forecast_run(run_dir)
    m, info = run.metrics, run.info
    compared = run.leaderboard
    if "is_reference" in compared:
        compared = compared[~compared["is_reference"].astype(bool)]
    params = {
        "events": info.events,
        "mapping": info.mapping,
        "horizon": m.horizon,
        "budget": info.budget,
        "seed": info.seed,
        # run.json of an events run does not record what was compared; the leaderboard shows it.
        "families": sorted(set(compared.get("family", []))),
        "strategies": sorted(set(compared.get("strategy", []))),
        "objective": m.objective,
        "threshold_objective": "profit",  # the offer policy always maximises expected profit
        "offer_cost": m.policy.offer_cost,
        "upgrade_value": m.policy.upgrade_value,
        "discount": m.policy.discount,
        "assumed_lift": m.policy.assumption(),
        "time_limit": info.time_limit,
        "data_end": info.data_end,
        "test_start": m.test_start,
        "test_end": m.test_end,
        "forecast_as_of": m.forecast.as_of,
        "compare_rows": m.compare_rows,
    }
    metrics = {
        **scores("test_", m.test),
        **prefixed("cv_", m.cv),
        "threshold": m.policy.threshold,
        "overdispersion": m.overdispersion,
        "forecast_coverage": m.coverage,
        "forecast_expected": m.forecast.expected,
        "forecast_low": m.forecast.low,
        "forecast_high": m.forecast.high,
        "forecast_free_users": float(m.forecast.free_users),
        "forecast_offers": float(m.forecast.offers),
        "policy_break_even_lift": m.policy.break_even_lift,
        **(
            {"policy_profit_per_campaign": m.policy.per_campaign["profit"]["value"]}
            if m.policy.priced and m.policy.pays
            else {}
        ),
    }
    for name, s in m.baselines.items():
        metrics |= scores(f"baseline_{slug(name)}_", s)
    for d in m.differences:
        key = f"difference_{slug(d.metric)}_vs_{slug(d.baseline)}"
        metrics |= {key: d.difference, f"{key}_low": d.low, f"{key}_high": d.high}
    seconds = sum(info.timings.values())
    return Tracked("events", params, metrics, m.chosen, m.calibration, m.test.pr_auc, info.started, seconds)
