"""A data audit before any fitting: what the table holds and what could fool a model or its user."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from . import config
from .dataset import Dataset
from .schema import MISSING_CATEGORY


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


def audit(ds: Dataset) -> dict:
    """Everything a careful analyst checks first, as plain numbers plus readable warnings."""
    X, y, schema = ds.X, ds.y, ds.schema
    keys = feature_keys(X)
    full = keys.astype("uint64") * np.uint64(2) + y.astype("uint64")  # features and label
    label_sets = pd.Series(y).groupby(keys.to_numpy()).nunique()
    conflicting = label_sets[label_sets > 1]
    n_conflict_rows = int(keys.isin(conflicting.index).sum())

    columns = []
    warnings: list[str] = []
    leaky: list[str] = []
    for col in schema.columns:
        s = X[col.name]
        missing = s.isna() if col.kind == "numeric" else s == MISSING_CATEGORY
        info = {"name": col.name, "kind": col.kind, "missing": int(missing.sum())}
        if col.kind == "numeric":
            v = s.dropna()
            p99 = float(v.quantile(0.99))
            info.update(
                min=float(v.min()),
                median=float(v.median()),
                p99=p99,
                max=float(v.max()),
                skew=float(v.skew()),
                zeros_share=float((v == 0).mean()),
            )
            ratio = float(v.max()) / p99 if p99 > 0 else (np.inf if v.max() > 0 else 1.0)
            info["heavy_tail"] = bool(ratio >= config.HEAVY_TAIL_RATIO or abs(info["skew"]) > 5)
            if info["heavy_tail"]:
                warnings.append(
                    f"{col.name} is heavy-tailed (max {info['max']:,.4g} vs. 99th percentile "
                    f"{p99:,.4g}); clipped at training-fold quantiles, rows kept"
                )
        else:
            counts = s.value_counts()
            rare = counts[counts < config.RARE_CATEGORY_ROWS]
            info.update(
                distinct=int(len(counts)),
                rare_categories=int(len(rare)),
                rare_rows=int(rare.sum()),
                top=counts.head(10).to_dict(),
            )
            if len(rare):
                warnings.append(
                    f"{col.name}: {len(rare)} of {len(counts)} categories have fewer than "
                    f"{config.RARE_CATEGORY_ROWS} rows ({int(rare.sum())} rows); they share one "
                    "'infrequent' level, as will codes never seen in training"
                )
        info["univariate_auc"] = univariate_auc(s, y, col.kind)
        info["leakage_flag"] = info["univariate_auc"] >= config.LEAKAGE_AUC
        if info["leakage_flag"]:
            leaky.append(col.name)
            warnings.append(
                f"possible leakage: {col.name} alone reaches ROC AUC {info['univariate_auc']:.3f}. A feature "
                "this predictive on its own is often measured after (or because of) the outcome; check "
                "how it was recorded before trusting a model that uses it"
            )
        columns.append(info)

    n_dupes = int(pd.Series(full).duplicated().sum())
    if n_dupes:
        warnings.append(
            f"{n_dupes} rows are exact duplicates of another row; a random split puts copies on "
            "both sides (use --group-duplicates to keep them together)"
        )
    if len(conflicting):
        warnings.append(
            f"{len(conflicting)} groups of feature-identical rows ({n_conflict_rows} rows) carry "
            "both labels: no model can separate them"
        )
    positives = int(y.sum())
    share = positives / len(y)
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
    return {
        "source": ds.source,
        "fingerprint": ds.fingerprint,
        "rows": int(len(y)),
        "columns": int(X.shape[1]),
        "target": schema.target,
        "positive_label": schema.positive_label,
        "class_balance": {
            "positive": positives,
            "negative": int(len(y) - positives),
            "positive_share": share,
        },
        "missing_cells": int(sum(c["missing"] for c in columns)),
        "exact_duplicates": n_dupes,
        "conflicting_groups": int(len(conflicting)),
        "conflicting_rows": n_conflict_rows,
        "feature_columns": columns,
        "leakage_flags": leaky,
        "warnings": warnings,
    }


def _row_order_correlation(X: pd.DataFrame) -> tuple[str, float] | None:
    num = X.select_dtypes("number")
    if num.empty or len(X) < 10:
        return None
    rank = pd.Series(np.arange(len(X)), index=X.index)
    corr = num.apply(lambda c: rank.corr(c, method="spearman")).fillna(0)
    col = corr.abs().idxmax()
    return str(col), float(corr[col])
