"""A fitted pipeline's own fitted steps, run with less per-call overhead than scikit-learn's checks.

No library compiles a fitted imbalanced-learn/scikit-learn pipeline into plain numpy steps, so this is
written here; Scorer trusts it only after it reproduces the plain pipeline on probe rows and real rows.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.metaestimators import available_if

from ..features import QuantileClipper
from ..models import LGBMClassifier, inner_pipeline
from ..schema import Schema


class FastPipeline(ClassifierMixin, BaseEstimator):
    """A fitted pipeline's own fitted steps, run with less per-call overhead.

    Column transformers are unrolled: their fitted imputers and clippers act on numpy columns, and each
    single-column encoder is applied once per distinct code (a batch of a million rows holds a few
    hundred countries; scikit-learn would look every string up in Python). Every other step runs
    as is. Scorer checks this path against the plain pipeline before trusting it."""

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline
        self.classes_ = pipeline.classes_
        self._steps = [
            _compile_step(step)
            for _, step in pipeline.steps[:-1]
            if not (step is None or step == "passthrough" or hasattr(step, "fit_resample"))
        ]
        final = pipeline.steps[-1][1]
        # LightGBM's scikit-learn wrapper re-checks its input on every call (~0.4 ms, 15x the
        # prediction of one row); its booster gives the same numbers on the matrix built here.
        self._booster = (
            final.booster_
            if LGBMClassifier is not None and isinstance(final, LGBMClassifier) and len(final.classes_) == 2
            else None
        )

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        Z = X
        for run in self._steps:
            Z = run(Z)
        return Z if isinstance(Z, np.ndarray) else _as_frame(Z).to_numpy()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if self._booster is not None:
            p = np.asarray(self._booster.predict(self.transform(X), num_threads=1), dtype="float64")
            return np.vstack((1.0 - p, p)).transpose()
        return self.pipeline.steps[-1][1].predict_proba(self.transform(X))

    # A calibrator wrapping the pipeline prefers this response.
    @available_if(lambda self: hasattr(self.pipeline.steps[-1][1], "decision_function"))
    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        if self._booster is not None:
            return np.asarray(self._booster.predict(self.transform(X), raw_score=True, num_threads=1))
        return self.pipeline.steps[-1][1].decision_function(self.transform(X))


def _as_frame(Z: Any) -> pd.DataFrame:
    return pd.DataFrame(Z, copy=False) if isinstance(Z, dict) else Z


def _column(Z: Any, name: str) -> np.ndarray:
    return Z[name] if isinstance(Z, dict) else Z[name].to_numpy()


def _compile_step(step: Any) -> Callable[[Any], Any]:
    if isinstance(step, ColumnTransformer):
        try:
            return _ColumnPlan(step)
        except _Unfamiliar:
            pass
    return lambda Z: step.transform(_as_frame(Z))


class _Unfamiliar(Exception):
    pass


def _numeric_kernel(trans: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """A numpy function equal to a fitted numeric transformer's transform, or None."""
    if isinstance(trans, SkPipeline):
        found = [_numeric_kernel(t) for _, t in trans.steps if t not in (None, "passthrough")]
        kernels = [k for k in found if k is not None]
        if len(kernels) < len(found):
            return None

        def chain(A: np.ndarray) -> np.ndarray:
            for k in kernels:
                A = k(A)
            return A

        return chain
    if (
        isinstance(trans, SimpleImputer)
        and not trans.add_indicator
        and np.asarray(trans.statistics_).dtype.kind == "f"
        and not np.isnan(trans.statistics_).any()
        and (
            trans.missing_values is np.nan
            or (isinstance(trans.missing_values, float) and np.isnan(trans.missing_values))
        )
    ):
        stats = np.asarray(trans.statistics_, dtype="float64")
        return lambda A: np.where(np.isnan(A), stats, A)
    if type(trans) is QuantileClipper:
        return lambda A: np.clip(A, trans.low_, trans.high_)
    return None


def _is_passthrough(trans: Any) -> bool:
    return trans == "passthrough" or (
        type(trans) is FunctionTransformer and trans.func is None and trans.inverse_func is None
    )


class _ColumnPlan:
    """A fitted ColumnTransformer as a list of (output slice, input columns, numpy function)."""

    ENCODED_CACHE = 10_000  # distinct codes remembered per encoder

    def __init__(self, ct: ColumnTransformer):
        self.names_in = list(getattr(ct, "feature_names_in_", []))
        if not self.names_in:
            raise _Unfamiliar
        self.names_out = [str(n) for n in ct.get_feature_names_out()]
        self.pandas = getattr(ct, "_sklearn_output_config", {}).get("transform") == "pandas"
        self.parts: list[tuple[slice, list[str], str, Any]] = []
        for name, trans, cols in ct.transformers_:
            sl = ct.output_indices_[name]
            if sl.stop == sl.start or trans == "drop":
                continue
            cols = [self.names_in[c] if isinstance(c, (int, np.integer)) else c for c in cols]
            if not all(isinstance(c, str) for c in cols):
                raise _Unfamiliar
            if _is_passthrough(trans):
                self.parts.append((sl, cols, "pass", None))
            elif (kernel := _numeric_kernel(trans)) is not None:
                self.parts.append((sl, cols, "num", kernel))
            elif len(cols) == 1 and hasattr(trans, "categories_"):
                self.parts.append((sl, cols, "codes", (trans, {})))
            else:
                raise _Unfamiliar

    def __call__(self, Z: Any) -> Any:
        n = len(Z[next(iter(Z))]) if isinstance(Z, dict) else len(Z)
        if self.pandas:
            out: dict[str, np.ndarray] = {}
            for sl, cols, kind, fn in self.parts:
                block = self._part(Z, n, cols, kind, fn, sl.stop - sl.start)
                for j, name in enumerate(self.names_out[sl]):
                    out[name] = block[j] if isinstance(block, list) else block[:, j]
            return out
        out_m = np.empty((n, len(self.names_out)), dtype="float64")
        for sl, cols, kind, fn in self.parts:
            block = self._part(Z, n, cols, kind, fn, sl.stop - sl.start)
            out_m[:, sl] = np.column_stack(block) if isinstance(block, list) else block
        return out_m

    def _part(self, Z: Any, n: int, cols: list[str], kind: str, fn: Any, width: int) -> Any:
        if kind == "pass":
            return [_column(Z, c) for c in cols]
        if kind == "num":
            A = np.column_stack([np.asarray(_column(Z, c), dtype="float64") for c in cols])
            return fn(A)
        trans, cache = fn
        values = _column(Z, cols[0])
        codes, levels = pd.factorize(values, use_na_sentinel=False)
        uniq = list(levels)
        # Read the shared cache once into a local dict: another scoring thread may clear it meanwhile.
        known = {u: cache[u] for u in uniq if u in cache}
        todo = [u for u in uniq if u not in known]
        if todo:
            enc = np.asarray(
                trans.transform(pd.DataFrame({cols[0]: pd.Series(todo, dtype=object)})), dtype="float64"
            )
            fresh = dict(zip(todo, enc))
            known.update(fresh)
            if len(cache) + len(todo) > self.ENCODED_CACHE:
                cache.clear()
            cache.update(fresh)
        table = np.stack([known[u] for u in uniq]) if uniq else np.empty((0, width))
        return table[codes]


def fast_model(model: Any) -> Any:
    """The same fitted model with the fast pipeline inside, or None when its shape is unfamiliar."""
    if isinstance(model, SkPipeline):  # imblearn's Pipeline subclasses scikit-learn's
        return FastPipeline(model)
    pipe = inner_pipeline(model)
    if (
        isinstance(model, CalibratedClassifierCV)
        and len(model.calibrated_classifiers_) == 1
        and isinstance(pipe, SkPipeline)
    ):
        fast = copy.copy(model)
        inner = copy.copy(model.calibrated_classifiers_[0])
        # A FrozenEstimator only forwards to its pipeline, so the fast pipeline can stand in its place.
        inner.estimator = FastPipeline(pipe)
        fast.calibrated_classifiers_ = [inner]
        return fast
    return None


def probe_rows(schema: Schema, n: int = 256, seed: int = 0) -> pd.DataFrame:
    """Valid rows spanning the schema (zeros, ranges, every known code and an unseen one)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    for col in schema.columns:
        if col.kind == "numeric":
            lo = col.minimum if col.minimum is not None else 0.0
            hi = col.maximum if col.maximum is not None else lo + 100.0
            v = np.where(
                rng.random(n) < 0.3,
                max(lo, 0.0) if lo <= 0 <= hi else lo,
                lo + (hi - lo) * rng.random(n) ** 3,
            )
            cols[col.name] = v.astype("float64")
        else:
            known = list(col.categories) or ["a"]
            codes = (known * (n // len(known) + 1))[: n - 1] + ["(never seen)"]
            cols[col.name] = pd.Series(codes, dtype="str")
    return pd.DataFrame(cols)
