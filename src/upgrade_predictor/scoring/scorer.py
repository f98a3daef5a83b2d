"""The one scoring function: validate rows against the bundle's schema, predict, decide, explain.

Batch files, drift checks, the service and the Dask path all score through Scorer.score_frame, so the
bundle's threshold is applied in exactly one place.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline as SkPipeline

from .. import config
from ..bundle import Bundle, load_bundle
from ..errors import InputError
from ..features import encoded_names, source_weights
from ..models import EXPLAIN_FAMILIES, inner_pipeline
from ..schema import Schema, ValidatedRows
from ..sources.inputs import Inputs
from .fast import FastPipeline, fast_model, probe_rows

SUB_ROWS = 65_536  # rows per model call: bounds the one-hot matrix (rows x ~90 float64 columns)
TOP_REASONS = 3


@dataclass
class TopReasons:
    """The k largest signed contributions of each scored row (by size), as positions into `names`."""

    index: np.ndarray  # (rows, k) int16
    value: np.ndarray  # (rows, k) log-odds contributions
    names: list[str]

    def __len__(self) -> int:
        return len(self.index)

    @property
    def k(self) -> int:
        return int(self.index.shape[1])

    def texts(self, i: int) -> list[str]:
        """Row i's reasons as text, largest first."""
        return [format_reason(self.names[j], v) for j, v in zip(self.index[i], self.value[i])]

    def column(self, k: int, rows: np.ndarray) -> list[str]:
        """The k-th reason (0-based) of the given rows, as text."""
        return [format_reason(self.names[j], v) for j, v in zip(self.index[rows, k], self.value[rows, k])]

    def take(self, rows: slice | np.ndarray) -> TopReasons:
        return TopReasons(self.index[rows], self.value[rows], self.names)

    @staticmethod
    def concat(parts: list[TopReasons]) -> TopReasons:
        return TopReasons(
            np.concatenate([t.index for t in parts]), np.concatenate([t.value for t in parts]), parts[0].names
        )


@dataclass
class Scored:
    """One frame scored: per input row its validity and problem; per valid row (in input order) the
    probability, the decision at the bundle's threshold and, when asked, the top reasons."""

    rows: ValidatedRows  # every input row coerced, with its problem (column and message) if any
    valid_features: pd.DataFrame  # the validated rows that were scored
    probability: np.ndarray
    decision: np.ndarray  # int8: 1 when probability >= the bundle's threshold
    top: TopReasons | None = None

    @property
    def valid(self) -> np.ndarray:
        return self.rows.valid

    @property
    def reasons(self) -> pd.Series:
        return self.rows.reasons

    def slice(self, start: int, stop: int) -> Scored:
        """Input rows start..stop (positions), with their scored rows."""
        before = int(self.valid[:start].sum())
        scored = slice(before, before + int(self.valid[start:stop].sum()))
        return Scored(
            self.rows.slice(start, stop),
            self.valid_features.iloc[scored],
            self.probability[scored],
            self.decision[scored],
            self.top.take(scored) if self.top is not None else None,
        )


@dataclass(frozen=True)
class Columns:
    """Which input columns a run reads, and which it carries (as text) to the ranked list."""

    id: str | None  # the id column, or None
    carried: list[str]  # to the ranked list after `row`: the id first
    read: list[str]  # the model's features, then the carried columns that are not among them


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
    def load(cls, path: str | Path, verify_key: Path | None = None) -> Scorer:
        """The scorer of a bundle file; with verify_key (a PEM public key) the bundle must carry a valid
        signature by its private key (`<bundle>.sig` beside it)."""
        return cls(load_bundle(path, verify_key=verify_key))

    @property
    def family(self) -> str | None:
        return self.bundle.metadata.family

    @property
    def offer_cost(self) -> float:
        """The bundle's cost of one offer (for --budget), else the configured default."""
        cost = self.bundle.metadata.offer_cost
        return config.OFFER_COST if cost is None else cost

    def require_explain(self) -> None:
        """Refuse --explain before any work when the bundle's model has no contributions."""
        if self.family not in (None, *EXPLAIN_FAMILIES):
            raise InputError(f"--explain needs a gradient-boosting model; this bundle is {self.family!r}")

    def columns_for(self, inputs: Inputs, id_column: str | None, carry: Sequence[str] = ()) -> Columns:
        """The columns to read and to carry to the outputs. The id is --id when given (every part must
        hold it), else a column named like the training id when the input has one, else none (rows
        are known by their number)."""
        if id_column and id_column in self.schema.names:
            raise InputError(f"--id {id_column}: a feature of the model, not an id; choose another column")
        trained = self.schema.id_column
        id_col = id_column or (trained if trained and trained in inputs.columns() else None)
        carried = list(dict.fromkeys([*([id_col] if id_col else []), *carry]))
        read = list(dict.fromkeys([*self.schema.names, *carried]))
        return Columns(id_col, carried, read)

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
        """The one scoring function: validate every row, score the valid ones, decide, explain."""
        rows = self.schema.validate_rows(df)
        valid = rows.valid
        Xv = rows.X if valid.all() else rows.X[valid]
        p = self.predict(Xv)
        decision = (p >= self.threshold).astype(np.int8)  # the only place the threshold is applied
        return Scored(rows, Xv, p, decision, self.top_reasons(Xv) if explain else None)

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
        weights = source_weights(encoded_names(inner), names, self.schema.categorical)
        out = np.empty((len(X), len(names)))
        for i in range(0, len(X), SUB_ROWS):
            Z = np.asarray(transform(X.iloc[i : i + SUB_ROWS]), dtype="float64")
            contrib = model.booster_.predict(Z, pred_contrib=True)[:, :-1]  # last column: bias
            out[i : i + SUB_ROWS] = contrib @ weights
        return out, names

    def top_reasons(self, X: pd.DataFrame, k: int = TOP_REASONS) -> TopReasons:
        """The k largest contributions (by size, with sign) per row."""
        c, names = self.contributions(X)
        k = min(k, c.shape[1])
        idx = np.argsort(-np.abs(c), axis=1, kind="stable")[:, :k]
        return TopReasons(idx.astype(np.int16), np.take_along_axis(c, idx, axis=1), names)


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
        if not (math.isfinite(budget) and budget >= 0):
            raise InputError(f"--budget must be a non-negative number (got {budget})")
        return min(int(math.floor(budget / offer_cost + 1e-9)), n)
    return n


def rank_order(p: np.ndarray) -> np.ndarray:
    """Row positions by descending probability; ties keep file order."""
    return np.argsort(-p, kind="stable")
