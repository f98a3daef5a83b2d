"""What MLflow receives of a readout folder: parameters, metrics, tags and artifacts, for a plan's readout
(`kind` campaign_readout) or a plain list's (`kind` list_readout), in the experiment `EXPERIMENT`.

Metric names (stable): a plan's readout logs `effect_difference`, `effect_adjusted` and
`incremental_upgrades`, `incremental_profit` (each with `_low` and `_high`, the 95% bounds),
`offer_rate`, `holdout_rate`, `offer_users`, `holdout_users`, `holdout_expected`, `holdout_actual`,
`srm_p_value` and `balance_max_abs_smd`; a list's logs `expected_upgrades` (with `_low`, `_high`),
`actual_upgrades`, `actual_over_expected`, `upgrade_rate`, `roc_auc`, `average_precision` and
`band_<b>_precision`, `band_<b>_lift` per band. Values that are not finite are left out and named in
the tag `skipped_metrics`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..version import __version__
from .records import READOUT_FILE, Interval, ListReadout, Readout, from_dict, read_json

EXPERIMENT = "upgrade-predictor-campaigns"
ARTIFACTS = (READOUT_FILE, "readout.html")


@dataclass(frozen=True)
class TrackedReadout:
    name: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    artifacts: list[Path]


def read_readout(folder: Path) -> Readout | ListReadout:
    """readout.json of either kind: a list's says `"holdout": false`, a plan's holds the holdout arm."""
    path = folder / READOUT_FILE
    d = read_json(path, "campaign readout")
    if isinstance(d, dict) and d.get("holdout") is False:
        return from_dict(ListReadout, d, str(path))
    return from_dict(Readout, d, str(path))


def _bounds(name: str, i: Interval) -> dict[str, float]:
    return {name: i.value, f"{name}_low": i.low, f"{name}_high": i.high}


def plan_metrics(r: Readout) -> dict[str, float]:
    smds = [
        abs(v) for b in ([r.balance.overall, *r.balance.bands] if r.balance else []) for v in b.smd.values()
    ]
    return {
        **_bounds("effect_difference", r.effect.difference),
        **_bounds("effect_adjusted", r.effect.adjusted),
        **_bounds("incremental_upgrades", r.incremental_upgrades),
        **_bounds("incremental_profit", r.profit.incremental),
        "offer_rate": r.offer.rate,
        "holdout_rate": r.holdout.rate,
        "offer_users": float(r.offer.users),
        "holdout_users": float(r.holdout.users),
        "holdout_expected": r.calibration.holdout_expected,
        "holdout_actual": float(r.calibration.holdout_actual),
        "srm_p_value": r.srm.p_value,
        **({"balance_max_abs_smd": max(smds)} if smds else {}),
    }


def list_metrics(r: ListReadout) -> dict[str, float]:
    bands = {
        f"band_{b.band}_{k}": v for b in r.bands for k, v in (("precision", b.precision), ("lift", b.lift))
    }
    return {
        **_bounds("expected_upgrades", r.expected_upgrades),
        "actual_upgrades": float(r.actual_upgrades),
        "actual_over_expected": r.actual_over_expected,
        "upgrade_rate": r.upgrade_rate,
        "roc_auc": math.nan if r.roc_auc is None else r.roc_auc,
        "average_precision": math.nan if r.average_precision is None else r.average_precision,
        **bands,
    }


def tracked_readout(folder: Path) -> TrackedReadout:
    """Everything one MLflow run receives of the readout folder `folder`."""
    r = read_readout(folder)
    common = {"as_of": r.as_of, "horizon": str(r.horizon), "window_end": r.window_end,
              "data_end": r.data_end, "horizon_closed": str(r.horizon_closed).lower()}  # fmt: skip
    if isinstance(r, ListReadout):
        kind, note = (
            "list_readout",
            f"list of {r.users:,}: {r.actual_upgrades:,} upgrades, {r.expected_upgrades.value:,.1f} expected",
        )
        params = {
            **common,
            "holdout": "false",
            "as_of_source": r.as_of_source,
            "scored_sha256": r.scored_sha256,
        }
        metrics = list_metrics(r)
    else:
        d = r.effect.difference
        kind, note = "campaign_readout", f"effect {d.value:+.2%} ({d.low:+.2%} to {d.high:+.2%})"
        params = {**common, "holdout": "true", "holdout_share": f"{r.srm.expected_holdout_share:g}",
                  "assignments_sha256": r.assignments_sha256}  # fmt: skip
        params |= {k: f"{v:g}" for k, v in r.profit.economics.items()}
        metrics = plan_metrics(r)
    finite = {k: float(v) for k, v in metrics.items() if math.isfinite(v)}
    tags = {"kind": kind, "tool_version": __version__, "run_folder": str(folder.resolve()),
            "mlflow.note.content": note}  # fmt: skip
    skipped = sorted(set(metrics) - set(finite))
    if skipped:
        tags["skipped_metrics"] = "not finite, not logged: " + ", ".join(skipped)
    artifacts = [folder / a for a in ARTIFACTS if (folder / a).is_file()]
    return TrackedReadout(folder.name, params, finite, tags, artifacts)
