"""Scoring: one code path for batch files and the online service, from a model bundle.

Batch files are streamed in Arrow record batches (CSV or Parquet), validated against the bundle's
schema, scored, and written as a ranked target list; invalid rows go to a rejects file.
"""
from __future__ import annotations

import copy
import math
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.utils.metaestimators import available_if

from . import config
from .bundle import Bundle, load_bundle
from .data import check_file, is_parquet, sniff_delimiter
from .errors import InputError
from .files import write_atomic
from .models import LGBMClassifier, inner_pipeline
from .schema import Schema

BLOCK_BYTES = 8 << 20  # CSV bytes per Arrow record batch (~0.4M rows of this data)
SUB_ROWS = 65_536  # rows per model call: bounds the one-hot matrix (rows x ~90 float64 columns)
TOP_REASONS = 3
EXPLAIN_FAMILIES = ("gbm",)


# --- the model call -------------------------------------------------------------------------------

class _FastPipeline(ClassifierMixin, BaseEstimator):
    """A fitted pipeline's own fitted steps, run with less per-call overhead.

    Column transformers are unrolled: their fitted imputers and clippers act on numpy columns, and each
    single-column encoder is applied once per distinct code (a batch of a million rows holds a few
    hundred countries; scikit-learn would look every string up in Python). Every other step runs
    as is. Scorer checks this path against the plain pipeline before trusting it."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.classes_ = pipeline.classes_
        self._steps = [_compile_step(step) for _, step in pipeline.steps[:-1]
                       if not (step is None or step == "passthrough" or hasattr(step, "fit_resample"))]
        final = pipeline.steps[-1][1]
        # LightGBM's scikit-learn wrapper re-checks its input on every call (~0.4 ms, 15x the
        # prediction of one row); its booster gives the same numbers on the matrix built here.
        self._booster = (final.booster_ if LGBMClassifier is not None and isinstance(final, LGBMClassifier)
                         and len(final.classes_) == 2 else None)

    def transform(self, X: pd.DataFrame):
        Z = X
        for run in self._steps:
            Z = run(Z)
        return Z if isinstance(Z, np.ndarray) else _as_frame(Z).to_numpy()

    def predict_proba(self, X):
        if self._booster is not None:
            p = self._booster.predict(self.transform(X), num_threads=1)
            return np.vstack((1.0 - p, p)).transpose()
        return self.pipeline.steps[-1][1].predict_proba(self.transform(X))

    @available_if(lambda self: hasattr(self.pipeline.steps[-1][1], "decision_function"))
    def decision_function(self, X):  # a calibrator wrapping the pipeline prefers this response
        if self._booster is not None:
            return self._booster.predict(self.transform(X), raw_score=True, num_threads=1)
        return self.pipeline.steps[-1][1].decision_function(self.transform(X))


def _as_frame(Z) -> pd.DataFrame:
    return pd.DataFrame(Z, copy=False) if isinstance(Z, dict) else Z


def _column(Z, name: str) -> np.ndarray:
    return Z[name] if isinstance(Z, dict) else Z[name].to_numpy()


def _compile_step(step):
    if isinstance(step, ColumnTransformer):
        try:
            return _ColumnPlan(step)
        except _Unfamiliar:
            pass
    return lambda Z: step.transform(_as_frame(Z))


class _Unfamiliar(Exception):
    pass


def _numeric_kernel(trans):
    """A numpy function equal to a fitted numeric transformer's transform, or None."""
    from sklearn.impute import SimpleImputer

    from .features import QuantileClipper

    if isinstance(trans, SkPipeline):
        kernels = [_numeric_kernel(t) for _, t in trans.steps if t not in (None, "passthrough")]
        if any(k is None for k in kernels):
            return None

        def chain(A):
            for k in kernels:
                A = k(A)
            return A
        return chain
    if isinstance(trans, SimpleImputer) and not trans.add_indicator and \
            np.asarray(trans.statistics_).dtype.kind == "f" and not np.isnan(trans.statistics_).any() and \
            (trans.missing_values is np.nan or (isinstance(trans.missing_values, float)
                                                and np.isnan(trans.missing_values))):
        stats = np.asarray(trans.statistics_, dtype="float64")
        return lambda A: np.where(np.isnan(A), stats, A)
    if type(trans) is QuantileClipper:
        return lambda A: np.clip(A, trans.low_, trans.high_)
    return None


def _is_passthrough(trans) -> bool:
    from sklearn.preprocessing import FunctionTransformer

    return trans == "passthrough" or (type(trans) is FunctionTransformer and trans.func is None
                                      and trans.inverse_func is None)


class _ColumnPlan:
    """A fitted ColumnTransformer as a list of (output slice, input columns, numpy function)."""

    ENCODED_CACHE = 10_000  # distinct codes remembered per encoder

    def __init__(self, ct: ColumnTransformer):
        self.names_in = list(getattr(ct, "feature_names_in_", []))
        if not self.names_in:
            raise _Unfamiliar
        self.names_out = [str(n) for n in ct.get_feature_names_out()]
        self.pandas = getattr(ct, "_sklearn_output_config", {}).get("transform") == "pandas"
        self.parts = []
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

    def __call__(self, Z):
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

    def _part(self, Z, n, cols, kind, fn, width):
        if kind == "pass":
            return [_column(Z, c) for c in cols]
        if kind == "num":
            A = np.column_stack([np.asarray(_column(Z, c), dtype="float64") for c in cols])
            return fn(A)
        trans, cache = fn
        values = _column(Z, cols[0])
        codes, uniq = pd.factorize(values, use_na_sentinel=False)
        uniq = list(uniq)
        todo = [u for u in uniq if u not in cache]
        if todo:
            enc = np.asarray(trans.transform(pd.DataFrame({cols[0]: pd.Series(todo, dtype=object)})),
                             dtype="float64")
            if len(cache) + len(todo) > self.ENCODED_CACHE:
                cache.clear()
            cache.update(zip(todo, enc))
        table = np.stack([cache[u] for u in uniq]) if uniq else np.empty((0, width))
        return table[codes]


def _fast_model(model):
    """The same fitted model with the fast pipeline inside, or None when its shape is unfamiliar."""
    if isinstance(model, SkPipeline):  # imblearn's Pipeline subclasses scikit-learn's
        return _FastPipeline(model)
    if (isinstance(model, CalibratedClassifierCV) and len(model.calibrated_classifiers_) == 1
            and isinstance(model.calibrated_classifiers_[0].estimator, SkPipeline)):
        fast = copy.copy(model)
        inner = copy.copy(model.calibrated_classifiers_[0])
        inner.estimator = _FastPipeline(inner.estimator)
        fast.calibrated_classifiers_ = [inner]
        return fast
    return None


def probe_rows(schema: Schema, n: int = 256, seed: int = 0) -> pd.DataFrame:
    """Valid rows spanning the schema (zeros, ranges, every known code and an unseen one)."""
    rng = np.random.default_rng(seed)
    cols = {}
    for col in schema.columns:
        if col.kind == "numeric":
            lo = col.minimum if col.minimum is not None else 0.0
            hi = col.maximum if col.maximum is not None else lo + 100.0
            v = np.where(rng.random(n) < 0.3, max(lo, 0.0) if lo <= 0 <= hi else lo,
                         lo + (hi - lo) * rng.random(n) ** 3)
            cols[col.name] = v.astype("float64")
        else:
            known = list(col.categories) or ["a"]
            codes = (known * (n // len(known) + 1))[:n - 1] + ["(never seen)"]
            cols[col.name] = pd.Series(codes, dtype="str")
    return pd.DataFrame(cols)


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
        self._fast = _fast_model(self.pipeline)
        self._checked = self._fast is None
        self._lock = threading.Lock()
        if not self._checked:
            self._check_fast(probe_rows(self.schema), final=False)

    @classmethod
    def load(cls, path: str | Path) -> "Scorer":
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
        parts = [model.predict_proba(X.iloc[i:i + SUB_ROWS])[:, 1] for i in range(0, len(X), SUB_ROWS)]
        return np.concatenate(parts).astype("float64", copy=False)

    def _check_fast(self, X: pd.DataFrame, final: bool = True) -> None:
        """Trust the fast path only if it reproduces the pipeline (on probe rows built from the schema
        when loading, then on the first real rows); otherwise score with the plain pipeline."""
        with self._lock:
            if self._checked or self._fast is None:
                return
            sample = X.iloc[:2000]
            try:
                ok = np.allclose(self._fast.predict_proba(sample)[:, 1],
                                 self.pipeline.predict_proba(sample)[:, 1], rtol=0, atol=1e-12)
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
            raise InputError("--explain needs a gradient-boosting (LightGBM) model; this bundle holds "
                             f"{type(model or inner).__name__}. Score without --explain")
        # The same matrix the model scored: the checked fast steps, else the pipeline's own.
        transform = _FastPipeline(inner).transform if self._fast is not None else inner[:-1].transform
        names = list(self.schema.names)
        index = {n: i for i, n in enumerate(names)}
        encoded = self._encoded_names(inner)
        weights = np.zeros((len(encoded), len(names)))
        from .features import RATIOS

        ratios = {r[0]: (r[1], r[2]) for r in RATIOS}
        for j, e in enumerate(encoded):
            if e in index:
                weights[j, index[e]] = 1.0
            elif e in ratios:
                for src in ratios[e]:
                    weights[j, index[src]] += 0.5
            else:
                owner = next((n for n in self.schema.categorical if e.startswith(n + "_")), None)
                if owner is not None:
                    weights[j, index[owner]] = 1.0
        out = np.empty((len(X), len(names)))
        for i in range(0, len(X), SUB_ROWS):
            Z = np.asarray(transform(X.iloc[i:i + SUB_ROWS]), dtype="float64")
            contrib = model.booster_.predict(Z, pred_contrib=True)[:, :-1]  # last column: bias
            out[i:i + SUB_ROWS] = contrib @ weights
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


# --- batch files ----------------------------------------------------------------------------------

@dataclass
class BatchResult:
    out: Path
    rejects: Path
    rows: int
    accepted: int
    rejected: int
    written: int
    reject_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def reject_share(self) -> float:
        return self.rejected / self.rows if self.rows else 0.0


class _CountingFile:
    """A read-only file wrapper that counts bytes read, for a progress bar over Arrow's reader."""

    def __init__(self, path: Path, on_read: Callable[[int], None]):
        self._f = open(path, "rb")
        self._on_read = on_read
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        b = self._f.read(n)
        self._on_read(len(b))
        return b

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._f.close()
        self.closed = True


def csv_header(path: Path, delimiter: str) -> list[str]:
    """The column names of a CSV file, stripped."""
    return [c.strip() for c in _header_raw(path, delimiter)]


def iter_batches(path: str | Path, columns: list[str], on_read: Callable[[int], None] | None = None):
    """Arrow record batches of the needed columns; CSV cells are read as text (cast per batch, so a
    bad cell rejects one row instead of failing the whole read) and only empty cells are missing."""
    path = check_file(path)
    if is_parquet(path):
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"{path}: cannot be read as Parquet ({e})")
        missing = [c for c in columns if c not in pf.schema_arrow.names]
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
        total = max(pf.metadata.num_rows, 1)
        for b in pf.iter_batches(batch_size=SUB_ROWS * 8, columns=columns):
            if on_read:
                on_read(int(path.stat().st_size * b.num_rows / total))
            yield b
        return
    delim = sniff_delimiter(path)
    header = csv_header(path, delim)
    missing = [c for c in columns if c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; the model needs "
                         f"{', '.join(columns)} (found {', '.join(header[:12])})")
    raw_names = {c.strip(): c for c in _header_raw(path, delim)}
    source = _CountingFile(path, on_read) if on_read else str(path)
    try:
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(delimiter=delim),
            convert_options=pacsv.ConvertOptions(
                include_columns=[raw_names[c] for c in columns],
                column_types={raw_names[c]: pa.string() for c in columns},
                null_values=config.NA_VALUES, strings_can_be_null=True, quoted_strings_can_be_null=True),
        )
        while True:
            try:
                b = reader.read_next_batch()
            except StopIteration:
                break
            yield b.rename_columns(columns)  # include_columns keeps this order; names unstripped
    except pa.ArrowInvalid as e:
        raise InputError(f"{path}: cannot be read as CSV ({str(e).splitlines()[0]})")


def _header_raw(path: Path, delimiter: str) -> list[str]:
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return next(csv.reader(f, delimiter=delimiter), [])


def batch_to_frame(batch: pa.RecordBatch, schema: Schema) -> pd.DataFrame:
    """Arrow text columns to the frame validate_rows expects: numbers cast in Arrow when they all parse."""
    cols = {}
    for col in schema.columns:
        arr = batch.column(col.name)
        if col.kind == "numeric" and pa.types.is_string(arr.type):
            try:
                arr = pc.cast(arr, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass  # validate_rows names the bad cells of this batch
        cols[col.name] = arr
    table = pa.table(cols)
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _prefetch(it, depth: int = 1):
    """Run an iterator in a thread: Arrow parses the next batch while this one is scored."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def run():
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # re-raised in the consumer
            q.put(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


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


def score_file(scorer: Scorer, data: str | Path, out: str | Path, *, rejects: str | Path | None = None,
               top: int | None = None, budget: float | None = None, offer_cost: float | None = None,
               explain: bool = False, workers: int = 2,
               progress: Callable[[int, int], None] | None = None) -> BatchResult:
    """Score a CSV/Parquet file into a ranked list (CSV or Parquet by --out's suffix) and a rejects file.

    Both files appear only when the whole run succeeded (temp file, then rename)."""
    data, out = Path(data), Path(out)
    rejects = Path(rejects) if rejects else default_rejects_path(out)
    if out.resolve() == data.resolve() or rejects.resolve() == data.resolve():
        raise InputError(f"{out}: the output would overwrite the input file")
    if out.exists() and out.is_dir():
        raise InputError(f"{out}: is a folder; give a file name ending in .csv or .parquet")
    if explain and scorer.family not in (None, *EXPLAIN_FAMILIES):
        raise InputError(f"--explain needs a gradient-boosting model; this bundle is {scorer.family!r}")
    if offer_cost is None:
        offer_cost = float(scorer.bundle.metadata.get("offer_cost", config.OFFER_COST))
    selected_count(1, top, budget, offer_cost)  # argument errors before any work
    schema = scorer.schema
    id_col = schema.id_column
    size = data.stat().st_size if data.exists() else 0
    consumed = [0]

    def on_read(n: int) -> None:
        consumed[0] += n
        if progress:
            progress(min(consumed[0], size), size)

    result = BatchResult(out, rejects, 0, 0, 0, 0)

    def run(rejects_file, out_file):
        probs: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        ids: list[pa.Array] = []
        expl: list[tuple[np.ndarray, np.ndarray]] = []
        names: list[str] = []
        reasons_count: dict[str, int] = {}
        writer = None
        offset = 0
        pool = ThreadPoolExecutor(max(workers, 1))

        def work(batch, start):
            df = batch_to_frame(batch, schema)
            X, why = scorer.validate(df)
            valid = (why == "").to_numpy()
            Xv = X[valid] if not valid.all() else X
            p = scorer.predict(Xv)
            top_c = scorer.top_contributions(Xv) if explain and len(Xv) else None
            return batch, start, valid, why, p, top_c

        needed = schema.names + ([id_col] if id_col else [])
        cols_in_file = _available(data, needed)
        with_id = id_col is not None and id_col in cols_in_file
        batches = iter_batches(data, schema.names + ([id_col] if with_id else []), on_read)
        pending = []
        try:
            for batch in _prefetch(batches):
                pending.append(pool.submit(work, batch, offset))
                offset += batch.num_rows
                while len(pending) >= max(workers, 1) or (pending and pending[0].done()):
                    writer = _collect(pending.pop(0).result(), probs, rows, ids, expl, names,
                                      reasons_count, rejects_file, writer, with_id, id_col, result)
            while pending:
                writer = _collect(pending.pop(0).result(), probs, rows, ids, expl, names,
                                  reasons_count, rejects_file, writer, with_id, id_col, result)
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
        if result.rows == 0:
            raise InputError(f"{data}: the file has no data rows")
        if writer is None:  # an empty rejects file still says which columns a reject would have
            fields = [pa.field("row", pa.int64())] + [pa.field(n, pa.string()) for n in
                                                       (schema.names + ([id_col] if with_id else []))]
            fields.append(pa.field("reason", pa.string()))
            pacsv.CSVWriter(rejects_file, pa.schema(fields)).close()
        else:
            writer.close()
        result.reject_reasons = reasons_count
        p = np.concatenate(probs) if probs else np.empty(0)
        probs.clear()
        row = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
        rows.clear()
        order = rank_order(p)
        keep = order[:selected_count(len(p), top, budget, offer_cost)]
        id_arr = pa.chunked_array(ids) if with_id and ids else None
        if explain and expl:
            e_idx = np.concatenate([e[0] for e in expl])
            e_val = np.concatenate([e[1] for e in expl])
        else:
            e_idx = e_val = None
        result.written = _write_ranked(out_file, out, keep, p, row, id_arr, id_col, scorer.threshold,
                                       e_idx, e_val, names)

    write_atomic(rejects, lambda rf: write_atomic(out, lambda of: run(rf, of)))
    return result


def default_rejects_path(out: Path) -> Path:
    return out.with_name(out.stem + ".rejects.csv")


def _available(path: Path, columns: list[str]) -> set[str]:
    if not path.exists() or path.is_dir() or path.stat().st_size == 0:
        return set(columns)  # iter_batches reports the problem
    if is_parquet(path):
        try:
            return set(pq.ParquetFile(path).schema_arrow.names)
        except (pa.ArrowInvalid, OSError):
            return set(columns)
    return set(csv_header(path, sniff_delimiter(path)))


def _collect(res, probs, rows, ids, expl, names, reasons_count, rejects_file, writer, with_id, id_col,
             result: BatchResult):
    batch, start, valid, why, p, top_c = res
    n = batch.num_rows
    result.rows += n
    idx = np.arange(start, start + n, dtype=np.int64)
    probs.append(p)
    rows.append(idx[valid])
    if with_id:
        ids.append(pc.cast(batch.column(id_col), pa.string()).filter(pa.array(valid)))
    if top_c is not None:
        expl.append((top_c[0], top_c[1]))
        if not names:
            names.extend(top_c[2])
    result.accepted += int(valid.sum())
    bad = ~valid
    if bad.any():
        result.rejected += int(bad.sum())
        table, counts = reject_table(batch, bad, why, {"row": pa.array(idx[bad])})
        for text, count in counts.items():
            reasons_count[text] = reasons_count.get(text, 0) + count
        if writer is None:
            writer = pacsv.CSVWriter(rejects_file, table.schema)
        writer.write_table(table)
    return writer


def reject_table(batch, bad: np.ndarray, reasons: pd.Series, keys: dict) -> tuple[pa.Table, dict[str, int]]:
    """The rejected rows of a batch: `keys` columns, every cell as text, and the reason; plus a count
    per reason. Shared by the single-machine and the cluster paths."""
    texts = reasons.to_numpy()[bad].astype(str)
    counts = {str(t): int(c) for t, c in zip(*np.unique(texts, return_counts=True))}
    sub = batch.filter(pa.array(bad))
    cols = dict(keys)
    for name in sub.schema.names:
        cols[name] = pc.cast(sub.column(name), pa.string())
    cols["reason"] = pa.array(texts, pa.string())
    return pa.table(cols), counts


def _write_ranked(f, out: Path, keep: np.ndarray, p: np.ndarray, row: np.ndarray, ids, id_col,
                  threshold: float, e_idx, e_val, names) -> int:
    """The ranked list, best first: row, [id], probability, decision, rank, [reason_1..k]."""
    parquet = out.suffix.lower() in {".parquet", ".pq"}
    writer = None
    step = 1 << 20
    for s in range(0, len(keep), step):
        sel = keep[s:s + step]
        cols = {"row": pa.array(row[sel])}
        if ids is not None:
            cols[id_col] = ids.take(pa.array(sel))
        ps = p[sel]
        cols["probability"] = pa.array(ps)
        cols["decision"] = pa.array((ps >= threshold).astype(np.int8))
        cols["rank"] = pa.array(np.arange(s + 1, s + len(sel) + 1, dtype=np.int64))
        if e_idx is not None:
            for k in range(e_idx.shape[1]):
                cols[f"reason_{k + 1}"] = pa.array(
                    [format_reason(names[j], v) for j, v in zip(e_idx[sel, k], e_val[sel, k])], pa.string())
        table = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(f, table.schema) if parquet else pacsv.CSVWriter(f, table.schema)
        writer.write_table(table)
    if writer is None:  # nothing selected: still a valid, empty list with its header
        fields = [pa.field("row", pa.int64())] + ([pa.field(id_col, pa.string())] if ids is not None else [])
        fields += [pa.field("probability", pa.float64()), pa.field("decision", pa.int8()),
                   pa.field("rank", pa.int64())]
        if e_idx is not None:
            fields += [pa.field(f"reason_{k + 1}", pa.string()) for k in range(e_idx.shape[1])]
        sch = pa.schema(fields)
        writer = pq.ParquetWriter(f, sch) if parquet else pacsv.CSVWriter(f, sch)
    writer.close()
    return int(len(keep))

