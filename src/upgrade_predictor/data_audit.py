"""A data audit before any fitting: what the table holds and what could fool a model or its user."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, cast, get_type_hints

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from . import config
from .dataset import Dataset
from .errors import InputError
from .schema import MISSING_CATEGORY, Column
from .sources.messages import shown_name

# ------------------------------------------------------------------ the typed result (audit.json)


@dataclass(frozen=True)
class NumericStats:
    min: float
    median: float
    p99: float
    max: float
    skew: float
    zeros_share: float
    heavy_tail: bool


@dataclass(frozen=True)
class CategoryStats:
    distinct: int
    rare_categories: int
    rare_rows: int
    top: dict[str, int]  # the ten most frequent codes and their row counts


@dataclass(frozen=True)
class ColumnAudit:
    """One feature column; exactly one of `numeric` and `categorical` is set, after its kind."""

    name: str
    kind: str
    missing: int
    univariate_auc: float
    leakage_flag: bool
    numeric: NumericStats | None = None
    categorical: CategoryStats | None = None

    @property
    def heavy_tail(self) -> bool:
        return self.numeric is not None and self.numeric.heavy_tail

    @property
    def rare_categories(self) -> int:
        return self.categorical.rare_categories if self.categorical is not None else 0

    def to_dict(self) -> dict[str, Any]:
        # audit.json has one flat object per column: identity, the stats of its kind, then its signal.
        stats = self.numeric or self.categorical
        return {
            "name": self.name,
            "kind": self.kind,
            "missing": self.missing,
            **(asdict(stats) if stats is not None else {}),
            "univariate_auc": self.univariate_auc,
            "leakage_flag": self.leakage_flag,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnAudit:
        if d["kind"] == "numeric":
            return cls(**_scalars(cls, d), numeric=NumericStats(**_scalars(NumericStats, d)))
        top = {str(k): int(v) for k, v in d["top"].items()}
        return cls(**_scalars(cls, d), categorical=CategoryStats(**_scalars(CategoryStats, d), top=top))


@dataclass(frozen=True)
class ClassBalance:
    positive: int
    negative: int
    positive_share: float


@dataclass(frozen=True)
class AuditReport:
    """Everything a careful analyst checks first, as plain numbers plus readable warnings.

    The fields are in the order of audit.json; the counts after class_balance have defaults because
    readers have always treated them as optional."""

    source: str
    fingerprint: str
    rows: int
    columns: int  # how many feature columns
    target: str
    positive_label: str
    class_balance: ClassBalance
    missing_cells: int = 0
    exact_duplicates: int = 0
    conflicting_groups: int = 0
    conflicting_rows: int = 0
    feature_columns: list[ColumnAudit] = field(default_factory=list)
    leakage_flags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def column(self, name: str) -> ColumnAudit | None:
        return next((c for c in self.feature_columns if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The layout of audit.json, key for key as every earlier version wrote it."""
        return {**asdict(self), "feature_columns": [c.to_dict() for c in self.feature_columns]}

    @classmethod
    def from_dict(cls, d: Any, where: str = "audit.json") -> AuditReport:
        """Read audit.json; a file of another shape says how to get a readable run."""
        try:
            return cls(
                **_scalars(cls, d),
                class_balance=ClassBalance(**_scalars(ClassBalance, d["class_balance"])),
                feature_columns=[ColumnAudit.from_dict(c) for c in d["feature_columns"]],
                leakage_flags=[str(c) for c in d.get("leakage_flags", [])],
                warnings=[str(w) for w in d.get("warnings", [])],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(
                f"{where}: not the data audit of a run of this version ({type(e).__name__}: {e}); "
                "retrain with 'upgrade-predictor train'"
            ) from None


def _scalars(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """The text, number and flag fields of dataclass `cls` read from `d`, each converted to its field's
    type; a field with a default may be absent. Nested and list fields are left to the caller."""
    hints = get_type_hints(cls)
    out = {}
    for f in fields(cls):
        kind = hints[f.name]
        required = f.default is MISSING and f.default_factory is MISSING
        if kind in (str, int, float, bool) and (required or f.name in d):
            out[f.name] = kind(d[f.name])
    return out


# ------------------------------------------------------------------ computing it


def feature_keys(X: pd.DataFrame) -> pd.Series:
    """One hash per row of feature values: equal hashes mark feature-identical rows."""
    return pd.util.hash_pandas_object(X, index=False)


def univariate_auc(x: pd.Series, y: np.ndarray, kind: str, seed: int = config.SEED) -> float:
    """ROC AUC of one feature on its own, direction-free (0.5 = no signal, 1 = decides the label).

    A category is scored by its upgrade rate, cross-fitted so rare codes cannot memorise labels."""
    if kind == "numeric":
        v = x.fillna(x.median()).to_numpy()
    else:
        v = np.zeros(len(x))
        codes = x.astype(str).to_numpy()
        for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(codes, y):
            rates = pd.Series(y[tr]).groupby(codes[tr]).mean()
            v[te] = pd.Series(codes[te]).map(rates).fillna(y[tr].mean()).to_numpy()
    if np.all(v == v[0]):
        return 0.5
    auc = roc_auc_score(y, v)
    return float(max(auc, 1 - auc))


def _numeric_stats(name: str, s: pd.Series, warnings: list[str]) -> NumericStats:
    v = s.dropna().astype(float)
    # pandas-stubs type Series.skew() as any scalar; on a float column it is a float.
    p99, top, skew = float(v.quantile(0.99)), float(v.max()), float(cast(float, v.skew()))
    ratio = top / p99 if p99 > 0 else (np.inf if top > 0 else 1.0)
    heavy = bool(ratio >= config.HEAVY_TAIL_RATIO or abs(skew) > 5)
    if heavy:
        warnings.append(
            f"{name} is heavy-tailed (max {top:,.4g} vs. 99th percentile "
            f"{p99:,.4g}); clipped at training-fold quantiles, rows kept"
        )
    return NumericStats(float(v.min()), float(v.median()), p99, top, skew, float((v == 0).mean()), heavy)


def _category_stats(name: str, s: pd.Series, warnings: list[str]) -> CategoryStats:
    counts = s.value_counts()
    rare = counts[counts < config.RARE_CATEGORY_ROWS]
    if len(rare):
        warnings.append(
            f"{name}: {len(rare)} of {len(counts)} categories have fewer than "
            f"{config.RARE_CATEGORY_ROWS} rows ({int(rare.sum())} rows); they share one "
            "'infrequent' level, as will codes never seen in training"
        )
    top = {str(k): int(n) for k, n in counts.head(10).items()}
    return CategoryStats(int(len(counts)), int(len(rare)), int(rare.sum()), top)


def audit(ds: Dataset) -> AuditReport:
    """Everything a careful analyst checks first, as plain numbers plus readable warnings."""
    X, y, schema = ds.X, ds.y, ds.schema
    keys = feature_keys(X)
    full = keys.astype("uint64") * np.uint64(2) + y.astype("uint64")  # features and label
    label_sets = pd.Series(y).groupby(keys.to_numpy()).nunique()
    conflicting = label_sets[label_sets > 1]
    n_conflict_rows = int(keys.isin(conflicting.index).sum())
    warnings: list[str] = []
    columns = [_column_audit(col, X[col.name], y, warnings) for col in schema.columns]
    n_dupes = int(pd.Series(full).duplicated().sum())
    _repeat_warnings(ds, n_dupes, int(len(conflicting)), n_conflict_rows, warnings)
    positives = int(y.sum())
    share = positives / len(y)
    _shape_warnings(X, share, warnings)
    return AuditReport(
        source=ds.source,
        fingerprint=ds.fingerprint,
        rows=int(len(y)),
        columns=int(X.shape[1]),
        target=schema.target,
        positive_label=schema.positive_label,
        class_balance=ClassBalance(positives, int(len(y) - positives), share),
        feature_columns=columns,
        missing_cells=int(sum(c.missing for c in columns)),
        exact_duplicates=n_dupes,
        conflicting_groups=int(len(conflicting)),
        conflicting_rows=n_conflict_rows,
        leakage_flags=[c.name for c in columns if c.leakage_flag],
        warnings=warnings,
    )


def _column_audit(col: Column, s: pd.Series, y: np.ndarray, warnings: list[str]) -> ColumnAudit:
    missing = s.isna() if col.kind == "numeric" else s == MISSING_CATEGORY
    numeric = _numeric_stats(col.name, s, warnings) if col.kind == "numeric" else None
    categorical = None if col.kind == "numeric" else _category_stats(col.name, s, warnings)
    auc = univariate_auc(s, y, col.kind)
    leaky = auc >= config.LEAKAGE_AUC
    if leaky:
        warnings.append(
            f"possible leakage: {col.name} alone reaches ROC AUC {auc:.3f}. A feature "
            "this predictive on its own is often measured after (or because of) the outcome; check "
            "how it was recorded before trusting a model that uses it"
        )
    return ColumnAudit(col.name, col.kind, int(missing.sum()), auc, leaky, numeric, categorical)


def _repeat_warnings(
    ds: Dataset, n_dupes: int, conflicting: int, n_conflict_rows: int, warnings: list[str]
) -> None:
    """Rows that repeat: exact copies, feature-identical rows of both labels, ids of several rows."""
    if n_dupes:
        hint = (
            "both sides (use --group-duplicates to keep them together)"
            if ds.groups is None
            else "both sides unless they share a --group value"
        )
        warnings.append(
            f"{n_dupes} rows are exact duplicates of another row; a random split puts copies on {hint}"
        )
    if conflicting:
        warnings.append(
            f"{conflicting} groups of feature-identical rows ({n_conflict_rows} rows) carry "
            "both labels: no model can separate them"
        )
    if ds.ids is not None and ds.groups is None:
        known = ds.ids.dropna()
        repeated = known[known.duplicated(keep=False)]
        if len(repeated):
            name = shown_name(ds.ids.name)
            warnings.append(
                f"{repeated.nunique()} values of the id column {name} have more than one row "
                f"({len(repeated)} rows); a random split puts one id's rows on both sides, so pass "
                f"--group {name} if they belong to one user"
            )


def _shape_warnings(X: pd.DataFrame, share: float, warnings: list[str]) -> None:
    """Imbalanced classes, and rows ordered by a feature."""
    if share < 0.2:
        warnings.append(
            f"the classes are imbalanced: {share:.1%} positive; accuracy is misleading, "
            "PR AUC and F1 are reported"
        )
    order = _row_order_correlation(X)
    if order and abs(order[1]) >= 0.3:
        warnings.append(
            f"rows are ordered (row number vs. {order[0]}: Spearman {order[1]:+.2f}); "
            "every split here is shuffled"
        )


def _row_order_correlation(X: pd.DataFrame) -> tuple[str, float] | None:
    num = X.select_dtypes("number")
    if num.empty or len(X) < 10:
        return None
    rank = pd.Series(np.arange(len(X)), index=X.index)
    corr = num.apply(lambda c: rank.corr(c, method="spearman")).fillna(0)
    values = corr.to_numpy(dtype=float)
    i = int(np.argmax(np.abs(values)))
    return str(corr.index[i]), float(values[i])
