"""The run folder of an events run: its run.json record, typed forecast metrics and every table the
report shows, written and read back."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..evaluation import Scores
from ..runs.folder import RunReader, RunWriter, Wording
from ..training.metrics import Chosen, Tuning, tuning_from_dict, tuning_to_dict
from .evaluate import Difference
from .info import KIND, EventRunInfo
from .policy import Policy

FILES = [
    "run.json",
    "metrics.json",
    "design.json",
    "events_audit.json",
    "leaderboard.csv",
    "backtest.csv",
    "forecasts.csv",
    "survival.json",
    "test_predictions.parquet",
    "model.zip",
]


@dataclass(frozen=True)
class Forecast:
    """Expected upgrades within the horizon among the users free on `as_of`, with its interval."""

    as_of: str
    free_users: int
    expected: float
    low: float
    high: float
    offers: int  # users the recommended policy sends an offer


@dataclass(frozen=True)
class ForecastMetrics:
    chosen: Chosen
    objective: str
    horizon: int
    test_start: str
    test_end: str
    test: Scores  # the held-out test period (the last backtest origin), at the policy's threshold
    baselines: dict[str, Scores]
    differences: list[Difference]
    calibration: str
    calibration_log_loss: dict[str, float]
    overdispersion: float
    coverage: (
        float  # share of the test period's weekly counts inside their interval (phi from earlier origins)
    )
    policy: Policy
    forecast: Forecast
    cv: dict[str, float]
    compare_rows: int
    tuning: dict[str, Tuning] = field(default_factory=dict)  # family -> what Optuna found
    selection: dict[str, float] = field(default_factory=dict)  # leading candidates' log loss, first origin
    notes: list[str] = field(default_factory=list)  # what --time-limit means for this run, and what it cut
    kind: str = KIND

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["test"] = self.test.to_dict()
        d["baselines"] = {k: v.to_dict() for k, v in self.baselines.items()}
        d["tuning"] = tuning_to_dict(self.tuning)
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "metrics.json") -> ForecastMetrics:
        try:
            return cls(
                chosen=Chosen(**d["chosen"]),
                objective=str(d["objective"]),
                horizon=int(d["horizon"]),
                test_start=str(d["test_start"]),
                test_end=str(d["test_end"]),
                test=Scores.from_dict(d["test"]),
                baselines={k: Scores.from_dict(v) for k, v in d["baselines"].items()},
                differences=[Difference(**x) for x in d["differences"]],
                calibration=str(d["calibration"]),
                calibration_log_loss={k: float(v) for k, v in d["calibration_log_loss"].items()},
                overdispersion=float(d["overdispersion"]),
                coverage=float(d["coverage"]),
                policy=Policy(**d["policy"]),
                forecast=Forecast(**d["forecast"]),
                cv={k: float(v) for k, v in d["cv"].items()},
                compare_rows=int(d["compare_rows"]),
                tuning=tuning_from_dict(d.get("tuning"), f"{where}: tuning"),
                selection={k: float(v) for k, v in (d.get("selection") or {}).items()},
                notes=[str(n) for n in d.get("notes") or []],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(
                f"{where}: not the metrics of an events run of this version "
                f"({type(e).__name__}: {e}); retrain with 'upgrade-predictor train --events'"
            ) from None


@dataclass
class ForecastRun:
    """An events run folder, read back for the report."""

    dir: Path
    info: EventRunInfo
    metrics: ForecastMetrics
    design: dict[str, Any]
    events_audit: dict[str, Any]
    leaderboard: pd.DataFrame
    backtest: pd.DataFrame
    forecasts: pd.DataFrame
    survival: dict[str, Any]
    test_predictions: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)


WORDING = Wording(
    "an events run",
    "events run folder",
    "upgrade-predictor train --events",
    "upgrade-predictor train --events DIR",
)


def load_forecast_run(run_dir: str | Path) -> ForecastRun:
    r = RunReader(Path(run_dir), WORDING)
    r.require(FILES)
    info, metrics, design, audit, survival = (
        r.json(f) for f in ("run.json", "metrics.json", "design.json", "events_audit.json", "survival.json")
    )
    return ForecastRun(
        r.dir,
        EventRunInfo.from_dict(info, str(r.dir / "run.json")),
        ForecastMetrics.from_dict(metrics, str(r.dir / "metrics.json")),
        design,
        audit,
        r.csv("leaderboard.csv"),
        r.csv("backtest.csv"),
        r.csv("forecasts.csv"),
        survival,
        r.parquet("test_predictions.parquet"),
    )


def write_tables(
    out: RunWriter,
    info: EventRunInfo,
    metrics: ForecastMetrics,
    design: dict[str, Any],
    audit: dict[str, Any],
    board: pd.DataFrame,
    backtest: pd.DataFrame,
    forecasts: pd.DataFrame,
    survival: dict[str, Any],
    test_predictions: pd.DataFrame,
) -> None:
    """Every file of the folder but the model bundle and the report."""
    out.json("run.json", info.to_dict())
    out.json("metrics.json", metrics.to_dict())
    out.json("design.json", design)
    out.json("events_audit.json", audit)
    out.json("survival.json", survival)
    out.frame("leaderboard.csv", board)
    out.frame("backtest.csv", backtest)
    out.frame("forecasts.csv", forecasts)
    out.frame("test_predictions.parquet", test_predictions)


def curve_dict(curve: Any) -> dict[str, Any]:
    """A Kaplan-Meier curve as JSON-able lists (thinned to the days the report draws)."""
    keep = np.asarray(curve.days) <= 180
    return {
        "label": curve.label,
        "n": curve.n,
        "events": curve.events,
        "share_day0": curve.share_day0,
        "share_by_day7": curve.share_by_day7,
        "median_days": curve.median_days,
        "days": np.asarray(curve.days)[keep].tolist(),
        "upgraded_share": np.asarray(curve.upgraded_share)[keep].tolist(),
        "low": np.asarray(curve.low)[keep].tolist(),
        "high": np.asarray(curve.high)[keep].tolist(),
    }
