"""What drives upgrades: the driver steps of the report, in order, and their typed result.

The steps that call the model many times (permutation importance, SHAP, partial dependence) run on
stratified samples of the test rows, sized from the model's cost so the report takes seconds on any
family and up to 100,000 rows; the report states every sample's size."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import config
from ..bundle import Bundle
from ..training.runs import Run
from .odds import LogitFit, logit_table
from .partial_dependence import PDP_FEATURES, PDP_GRID, PdpCurve, pdp_curves
from .permutation import PERMUTATION_REPEATS, permutation_table
from .sampling import sample_size, scoring_cost
from .shap_values import ShapSummary, shap_by_column
from .tree_rules import TreeRules, tree_rules

Step = Callable[[str], None]  # told the name of each step as it starts (the report's progress bar)


@dataclass(frozen=True)
class Samples:
    """How many of the test rows permutation importance and partial dependence use."""

    test_rows: int
    permutation: int
    pdp: int
    row_seconds: float  # the estimated cost of scoring one row that sized them


@dataclass(frozen=True)
class Drivers:
    permutation: pd.DataFrame
    shap: ShapSummary
    logit: LogitFit
    importance_table: pd.DataFrame  # one row per column; "_no_leak" columns NaN where unused
    odds_table: pd.DataFrame  # the same, for odds ratios
    pdp: list[PdpCurve]
    tree: TreeRules | None
    tree_without: list[str]  # columns the tree leaves out
    samples: Samples  # the sizes permutation importance and partial dependence used
    permutation_no_leak: pd.DataFrame | None = None
    logit_no_leak: LogitFit | None = None


def plan_samples(estimators: list[Any], test_rows: int, columns: int) -> Samples:
    """Sample sizes for permutation importance and partial dependence, from the costliest model.

    Permutation importance scores 1 + columns x repeats copies of its sample per model, partial
    dependence grid x features copies, each in one call. The same sample serves every model so
    their results compare."""
    cost = max((scoring_cost(e) for e in estimators), key=lambda c: c.row)
    copies = (1 + columns * PERMUTATION_REPEATS) * len(estimators)
    return Samples(
        test_rows=test_rows,
        permutation=sample_size(
            config.REPORT_PERMUTATION_SECONDS - len(estimators) * cost.call,
            cost.row * copies,
            config.REPORT_PERMUTATION_MIN_ROWS,
            config.REPORT_PERMUTATION_ROWS,
            test_rows,
        ),
        pdp=sample_size(
            config.REPORT_PDP_SECONDS - cost.call,
            cost.row * PDP_GRID * PDP_FEATURES,
            config.REPORT_PDP_MIN_ROWS,
            config.REPORT_PDP_ROWS,
            test_rows,
        ),
        row_seconds=cost.row,
    )


# ------------------------------------------------------------------ the steps


@dataclass
class Work:
    """What the driver steps read (the run, its test and training rows, the sample sizes) and what the
    earlier steps found, by field of Drivers."""

    run: Run
    samples: Samples
    Xte: pd.DataFrame
    yte: np.ndarray
    Xtr: pd.DataFrame
    ytr: np.ndarray
    found: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, run: Run) -> Work:
        Xte = run.X("test")
        models = [run.model.pipeline] + ([run.no_leak.pipeline] if run.no_leak is not None else [])
        samples = plan_samples(models, len(Xte), len(run.model.schema.names))
        return cls(run, samples, Xte, run.y("test"), run.X("train"), run.y("train"))

    @property
    def seed(self) -> int:
        return self.run.info.seed

    @property
    def numeric(self) -> list[str]:
        return list(self.run.model.schema.numeric)

    def permutation(self, bundle: Bundle) -> pd.DataFrame:
        X = self.Xte[bundle.schema.names]
        return permutation_table(bundle.pipeline, X, self.yte, self.seed, rows=self.samples.permutation)


def _permutation(w: Work) -> dict[str, Any]:
    no_leak = w.run.no_leak
    return {
        "permutation": w.permutation(w.run.model),
        "permutation_no_leak": None if no_leak is None else w.permutation(no_leak),
    }


def _shap(w: Work) -> dict[str, Any]:
    X = w.Xte[w.run.model.schema.names]
    return {"shap": shap_by_column(w.run.model, X, w.seed, y=w.yte)}


def _partial_dependence(w: Work) -> dict[str, Any]:
    model = w.run.model
    top = [f for f in w.found["permutation"]["name"] if f in w.numeric][:PDP_FEATURES]
    X = w.Xte[model.schema.names]
    return {"pdp": pdp_curves(model.pipeline, X, top, w.seed, rows=w.samples.pdp, y=w.yte)}


def _logit_and_tree(w: Work) -> dict[str, Any]:
    leaky, numeric = w.run.leaky, w.numeric
    logit = logit_table(w.Xtr, w.ytr, numeric)
    logit_nl = logit_table(w.Xtr, w.ytr, [c for c in numeric if c not in leaky]) if leaky else None
    behaviour = [c for c in numeric if c not in leaky] or numeric
    tree = tree_rules(w.Xtr, w.ytr, w.Xte, w.yte, behaviour, w.seed) if behaviour else None
    return {"logit": logit, "logit_no_leak": logit_nl, "tree": tree}


@dataclass(frozen=True)
class DriverStep:
    name: str  # its timing in run.timings is "drivers/<name>"
    label: Callable[[Samples], str]  # what the progress bar shows as it starts
    build: Callable[[Work], dict[str, Any]]  # fields of Drivers


STEPS = [
    DriverStep("permutation", lambda s: f"permutation importance ({s.permutation:,} rows)", _permutation),
    DriverStep("shap", lambda s: "SHAP values", _shap),
    DriverStep("partial_dependence", lambda s: f"partial dependence ({s.pdp:,} rows)", _partial_dependence),
    DriverStep("logit_and_tree", lambda s: "odds ratios and tree rules", _logit_and_tree),
]
DRIVER_STEPS = len(STEPS)  # the progress steps drivers_section announces


def drivers_section(run: Run, step: Step | None = None) -> Drivers:
    """Every driver of the chosen model (and of the model without the leaky columns, when there is one)."""
    announce = step or (lambda name: None)
    w = Work.of(run)
    for s in STEPS:
        announce(s.label(w.samples))
        t0 = time.perf_counter()
        w.found.update(s.build(w))
        run.timings[f"drivers/{s.name}"] = time.perf_counter() - t0
    return _assemble(w.found, list(run.leaky), w.samples)


def _assemble(found: dict[str, Any], leaky: list[str], samples: Samples) -> Drivers:
    """Side-by-side tables for the report: one row per column, "_no_leak" columns NaN where unused."""
    perm, perm_nl, logit, logit_nl = (
        found[k] for k in ("permutation", "permutation_no_leak", "logit", "logit_no_leak")
    )
    imp = perm
    if perm_nl is not None:
        imp = imp.merge(perm_nl, on="name", how="left", suffixes=("", "_no_leak"))
    odds = logit.table
    if len(odds) and logit_nl is not None and len(logit_nl.table):
        odds = odds.merge(logit_nl.table, on="name", how="left", suffixes=("", "_no_leak"))
    return Drivers(importance_table=imp, odds_table=odds, tree_without=leaky, samples=samples, **found)
