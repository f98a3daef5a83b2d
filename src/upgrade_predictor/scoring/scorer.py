"""The one scoring function: validate rows against the bundle's schema, predict, decide, explain.

Batch files, drift checks, the service and the Dask path all score through Scorer.score_frame, so the
bundle's threshold is applied in exactly one place.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline as SkPipeline

from ..bundle import Bundle, load_bundle
from ..errors import InputError
from ..features import source_columns
from ..models import inner_pipeline
from ..schema import Schema
from .fast import FastPipeline, fast_model, probe_rows

SUB_ROWS = 65_536  # rows per model call: bounds the one-hot matrix (rows x ~90 float64 columns)
TOP_REASONS = 3
EXPLAIN_FAMILIES = ("gbm",)


@dataclass
class Scored:
    """Scores of one frame: probabilities of the valid rows, and a reason for every row."""

    valid: np.ndarray  # bool per input row
    reasons: pd.Series  # "" when valid
    probability: np.ndarray  # one per valid row
    reasons_top: list[list[tuple[str, float]]] | None = None  # per valid row, with explain


class Scorer:
    """Validate and score frames with a bundle; shared by `score`, `serve` and `drift`."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.schema: Schema = bundle.schema
        self.threshold = bundle.threshold
        self.pipeline = bundle.pipeline
        self._fast = fast_model(self.pipeline)
        self._checked = self._fast is None
        self._lock = threading.Lock()
        if not self._checked:
            self._check_fast(probe_rows(self.schema), final=False)

    @classmethod
    def load(cls, path: str | Path) -> Scorer:
        return cls(load_bundle(path))

    @property
    def family(self) -> str | None:
        return self.bundle.metadata.get("family")

    def validate(self, df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        return self.schema.validate_rows(df)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Positive-class probabilities of validated rows, equal to the pipeline's predict_proba."""
        if len(X) == 0:
            return np.empty(0, dtype="float64")
        if not self._checked:
            self._check_fast(X)
        model = self._fast if self._fast is not None else self.pipeline
        if len(X) <= SUB_ROWS:
            return np.asarray(model.predict_proba(X)[:, 1], dtype="float64")
        parts = [model.predict_proba(X.iloc[i : i + SUB_ROWS])[:, 1] for i in range(0, len(X), SUB_ROWS)]
        return np.concatenate(parts).astype("float64", copy=False)

    def _check_fast(self, X: pd.DataFrame, final: bool = True) -> None:
        """Trust the fast path only if it reproduces the pipeline (on probe rows built from the schema
        when loading, then on the first real rows); otherwise score with the plain pipeline."""
        with self._lock:
            if self._checked or self._fast is None:
                return
            sample = X.iloc[:2000]
            try:
                ok = np.allclose(
                    self._fast.predict_proba(sample)[:, 1],
                    self.pipeline.predict_proba(sample)[:, 1],
                    rtol=0,
                    atol=1e-12,
                )
            except Exception:  # an unfamiliar pipeline shape: the plain pipeline still works
                ok = False
            if not ok:
                self._fast = None
            self._checked = final or not ok

    def score_frame(self, df: pd.DataFrame, explain: bool = False) -> Scored:
        X, reasons = self.validate(df)
        valid = (reasons == "").to_numpy()
        Xv = X[valid] if not valid.all() else X
        p = self.predict(Xv)
        top = self.explain(Xv) if explain else None
        return Scored(valid, reasons, p, top)

    # --- explanations ---------------------------------------------------------------------------
    def contributions(self, X: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        """Signed contributions (log-odds of the boosted model) per original column, per row.

        LightGBM's own TreeSHAP (pred_contrib) on the encoded columns, summed back to the columns of
        the input: one-hot columns to their categorical column, each ratio feature half to its
        numerator and half to its denominator."""
        inner = inner_pipeline(self.pipeline)
        model = inner.steps[-1][1] if isinstance(inner, SkPipeline) else None
        if model is None or not hasattr(model, "booster_"):
            raise InputError(
                "--explain needs a gradient-boosting (LightGBM) model; this bundle holds "
                f"{type(model or inner).__name__}. Score without --explain"
            )
        # The same matrix the model scored: the checked fast steps, else the pipeline's own.
        transform = FastPipeline(inner).transform if self._fast is not None else inner[:-1].transform
        names = list(self.schema.names)
        index = {n: i for i, n in enumerate(names)}
        encoded = self._encoded_names(inner)
        weights = np.zeros((len(encoded), len(names)))
        for j, shares in enumerate(source_columns(encoded, names, self.schema.categorical)):
            for col, w in shares.items():
                if col in index:
                    weights[j, index[col]] += w
        out = np.empty((len(X), len(names)))
        for i in range(0, len(X), SUB_ROWS):
            Z = np.asarray(transform(X.iloc[i : i + SUB_ROWS]), dtype="float64")
            contrib = model.booster_.predict(Z, pred_contrib=True)[:, :-1]  # last column: bias
            out[i : i + SUB_ROWS] = contrib @ weights
        return out, names

    @staticmethod
    def _encoded_names(inner) -> list[str]:
        Z_names = None
        for _, step in inner.steps[:-1]:
            if step is None or step == "passthrough" or hasattr(step, "fit_resample"):
                continue
            Z_names = step.get_feature_names_out(Z_names)
        return [str(n) for n in Z_names]

    def explain(self, X: pd.DataFrame, k: int = TOP_REASONS) -> list[list[tuple[str, float]]]:
        """The k largest contributions (by size, with sign) per row."""
        idx, vals, names = self.top_contributions(X, k)
        return [[(names[j], float(v)) for j, v in zip(r_i, r_v)] for r_i, r_v in zip(idx, vals)]

    def top_contributions(self, X: pd.DataFrame, k: int = TOP_REASONS):
        c, names = self.contributions(X)
        k = min(k, c.shape[1])
        idx = np.argsort(-np.abs(c), axis=1, kind="stable")[:, :k]
        return idx.astype(np.int16), np.take_along_axis(c, idx, axis=1), names


def format_reason(name: str, value: float) -> str:
    return f"{name} {value:+.3f}"


def selected_count(n: int, top: int | None, budget: float | None, offer_cost: float) -> int:
    """How many users the list holds: all, the top N, or as many offers as the budget pays for."""
    if top is not None and budget is not None:
        raise InputError("use --top or --budget, not both")
    if top is not None:
        if top < 1:
            raise InputError(f"--top must be at least 1 (got {top})")
        return min(top, n)
    if budget is not None:
        if offer_cost <= 0:
            raise InputError(f"--offer-cost must be positive (got {offer_cost})")
        if budget < 0:
            raise InputError(f"--budget must not be negative (got {budget})")
        return min(int(math.floor(budget / offer_cost + 1e-9)), n)
    return n


def rank_order(p: np.ndarray) -> np.ndarray:
    """Row positions by descending probability; ties keep file order."""
    return np.argsort(-p, kind="stable")
