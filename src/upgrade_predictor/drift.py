"""Drift: how far new data has moved from the training data a model saw, checked batch by batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import config
from .drift_report import (
    CategoricalDrift,
    DriftCheck,
    DriftReport,
    FeatureDrift,
    NumericDrift,
    RejectedRow,
    ScoreDrift,
    Thresholds,
)
from .errors import InputError
from .profile import CategoricalProfile, NumericProfile, ReferenceProfile, numeric_counts, psi
from .schema import Schema, batch_to_frame
from .scoring.batch import duplicate_count
from .scoring.scorer import Scored, Scorer
from .sources.inputs import input_files
from .sources.messages import excerpt

PSI_WARN = config.PSI_WARN
PSI_ALERT = config.PSI_ALERT
NEW_CATEGORY_SHARE = config.NEW_CATEGORY_SHARE  # share of rows with codes never seen in training
RANGE_SHARE = config.RANGE_SHARE  # share of rows outside the training min..max


def _level(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    return "alert" if value >= PSI_ALERT else "warn" if value >= PSI_WARN else "ok"


def _f(x: float) -> float | None:
    return x if np.isfinite(x) else None


@dataclass
class _NumericTally:
    counts: np.ndarray
    missing: int = 0
    below: int = 0
    above: int = 0
    max: float | None = None

    def add(self, v: np.ndarray, ref: NumericProfile) -> None:
        counts, missing = numeric_counts(v, ref.cuts)
        self.counts += counts
        self.missing += missing
        if ref.min is not None:
            self.below += int(np.sum(v < ref.min))
        if ref.max is not None:
            self.above += int(np.sum(v > ref.max))
        if len(v) and not np.all(np.isnan(v)):
            m = float(np.nanmax(v))
            self.max = m if self.max is None else max(self.max, m)


@dataclass
class Tally:
    """Counts of new data in the training bins, added batch by batch (a file never sits in memory)."""

    profile: ReferenceProfile
    schema: Schema
    n: int = 0
    numeric: dict[str, _NumericTally] = field(default_factory=dict)
    categorical: dict[str, pd.Series] = field(default_factory=dict)
    score_counts: np.ndarray = field(init=False)
    score_sum: float = 0.0

    def __post_init__(self) -> None:
        self.score_counts = np.zeros(len(self.profile.score.cuts) + 1, dtype=np.int64)

    def add(self, X: pd.DataFrame, scores: np.ndarray) -> None:
        self.n += len(X)
        for col in self.schema.columns:
            ref = self.profile.features.get(col.name)
            if ref is None or col.name not in X.columns:
                continue
            if isinstance(ref, NumericProfile):
                t = self.numeric.setdefault(col.name, _NumericTally(np.zeros(len(ref.cuts) + 1, np.int64)))
                t.add(X[col.name].to_numpy(dtype="float64"), ref)
            else:
                vc = X[col.name].astype("str").value_counts()
                prev = self.categorical.get(col.name)
                self.categorical[col.name] = vc if prev is None else prev.add(vc, fill_value=0)
        c, _ = numeric_counts(np.asarray(scores, dtype="float64"), self.profile.score.cuts)
        self.score_counts += c
        self.score_sum += float(np.sum(scores))

    def report(
        self,
        psi_alert: float = PSI_ALERT,
        new_category_share: float = NEW_CATEGORY_SHARE,
        range_share: float = RANGE_SHARE,
    ) -> DriftReport:
        thresholds = Thresholds(psi_alert, new_category_share, range_share)
        rows: list[FeatureDrift] = []
        alerts: list[str] = []
        for col in self.schema.columns:
            ref = self.profile.features.get(col.name)
            if ref is None or (col.name not in self.numeric and col.name not in self.categorical):
                continue
            entry: FeatureDrift
            if isinstance(ref, NumericProfile):
                entry, value = self._numeric(col.name, ref, thresholds, alerts)
            else:
                entry, value = self._categorical(col.name, ref, thresholds, alerts)
            if np.isfinite(value) and value >= psi_alert:
                alerts.append(f"{col.name}: PSI {value:.3f} >= {psi_alert}")
            rows.append(entry)
        score_psi = psi(self.profile.score.counts, self.score_counts)
        if np.isfinite(score_psi) and score_psi >= psi_alert:
            alerts.append(f"score: PSI {score_psi:.3f} >= {psi_alert}")
        n = self.n
        score = ScoreDrift(psi=_f(score_psi), level=_level(score_psi), mean=self.score_sum / n if n else None)
        return DriftReport(n, rows, score, thresholds, alerts, bool(alerts))

    def _numeric(
        self, name: str, ref: NumericProfile, thresholds: Thresholds, alerts: list[str]
    ) -> tuple[NumericDrift, float]:
        t, n = self.numeric[name], self.n
        value = psi([*ref.counts, ref.missing], [*t.counts, t.missing])
        share = (t.below + t.above) / n if n else 0.0
        if share > thresholds.range_share:
            alerts.append(f"{name}: {share:.1%} of rows outside the training range {ref.min:g}..{ref.max:g}")
        entry = NumericDrift(
            feature=name,
            kind="numeric",
            psi=_f(value),
            below_min=t.below,
            above_max=t.above,
            out_of_range_share=share,
            train_min=ref.min,
            train_max=ref.max,
            max=t.max,
            missing=t.missing,
            level=_level(value),
        )
        return entry, value

    def _categorical(
        self, name: str, ref: CategoricalProfile, thresholds: Thresholds, alerts: list[str]
    ) -> tuple[CategoricalDrift, float]:
        n = self.n
        vc = self.categorical[name].astype("int64").sort_values(ascending=False, kind="stable")
        known_named = list(ref.counts)
        known_all = set(ref.known) | set(self.schema.column(name).categories)
        actual = [int(vc.get(k, 0)) for k in known_named]
        actual.append(int(n - sum(actual)))
        value = psi([ref.counts[k] for k in known_named] + [ref.other], actual)
        new = vc[~vc.index.isin(list(known_all))]
        entry = CategoricalDrift(
            feature=name,
            kind="categorical",
            psi=_f(value),
            new_categories={str(k): int(c) for k, c in new.head(20).items()},
            new_category_rows=int(new.sum()),
            new_category_share=float(new.sum() / n) if n else 0.0,
            level=_level(value),
        )
        if entry.new_category_share > thresholds.new_category_share:
            shown = ", ".join(excerpt(c) for c in list(entry.new_categories)[:5])
            alerts.append(
                f"{name}: {entry.new_category_share:.1%} of rows carry codes never seen in training ({shown})"
            )
        return entry, value


REJECT_EXAMPLES = 20  # rejected rows listed by number (and id) in the report


def compare(
    profile: ReferenceProfile, X: pd.DataFrame, scores: np.ndarray, schema: Schema, **thresholds: float
) -> DriftReport:
    """PSI per feature and for the score, new categories and range violations of validated rows."""
    tally = Tally(profile, schema)
    tally.add(X, scores)
    return tally.report(**thresholds)


@dataclass
class _Rejects:
    """The rows of a check that failed validation: counted per reason, the first few by number."""

    total: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[RejectedRow] = field(default_factory=list)
    ids: list[pa.Array] = field(default_factory=list)

    def add(self, batch: pa.RecordBatch, scored: Scored, id_col: str | None) -> None:
        bad = np.flatnonzero(~scored.valid)
        batch_ids = pc.cast(batch.column(id_col), pa.string()) if id_col else None
        for i in bad[: max(0, REJECT_EXAMPLES - len(self.examples))].tolist():
            problem = scored.rows.problem(i)
            self.examples.append(
                RejectedRow(
                    row=self.total + i,
                    id=batch_ids[i].as_py() if batch_ids is not None else None,
                    column=None if problem is None else problem.column,
                    reason=None if problem is None else problem.message,
                )
            )
        for text, count in scored.rows.counts().items():
            self.reasons[text] = self.reasons.get(text, 0) + count
        if batch_ids is not None:
            self.ids.append(batch_ids)
        self.total += batch.num_rows
        self.rejected += len(bad)


def check_file(
    scorer: Scorer,
    data: str | Path,
    *,
    id_column: str | None = None,
    psi_alert: float = config.PSI_ALERT,
    new_category_share: float = config.NEW_CATEGORY_SHARE,
    range_share: float = config.RANGE_SHARE,
) -> DriftCheck:
    """Score a file, folder or glob with the bundle (Scorer.score_frame, batch by batch) and compare the
    valid rows with the training profile stored in the bundle. Rows are numbered as `score` numbers them."""
    profile = scorer.bundle.metadata.reference_profile
    if not profile:
        raise InputError(
            "this bundle has no training reference profile; retrain it with this version "
            "to enable drift checks"
        )
    inputs = input_files(data)
    cols = scorer.columns_for(inputs, id_column)
    id_col = cols.id
    inputs.require(cols.read)
    tally = Tally(profile, scorer.schema)
    rejects = _Rejects()
    for batch in inputs.batches(cols.read):
        scored = scorer.score_frame(batch_to_frame(batch, scorer.schema))
        tally.add(scored.valid_features, scored.probability)
        rejects.add(batch, scored, id_col)
    if rejects.total == 0:
        raise InputError(f"{data}: the input has no data rows")
    if rejects.rejected == rejects.total:  # nothing to compare: a report of empty bins would say "no drift"
        top = sorted(rejects.reasons.items(), key=lambda kv: -kv[1])[:3]
        raise InputError(
            f"no row of {data} passed validation ({'; '.join(f'{n:,} x {text}' for text, n in top)}); "
            "fix these cells (score the file for every row's reason) and check drift again"
        )
    return DriftCheck(
        drift=tally.report(
            psi_alert=psi_alert, new_category_share=new_category_share, range_share=range_share
        ),
        source=str(data),
        files=len(inputs.files),
        id_column=id_col,
        rows_read=rejects.total,
        rows_rejected=rejects.rejected,
        reject_reasons=rejects.reasons,
        rejected_rows=rejects.examples,
        duplicate_ids=duplicate_count(rejects.ids) if id_col else 0,
    )
