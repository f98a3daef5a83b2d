"""Tree rules: a shallow decision tree's leaves as IF ... rules, with their test-set upgrade rates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.tree import DecisionTreeClassifier, export_text
from statsmodels.stats.proportion import proportion_confint

Bounds = dict[str, tuple[float, float]]


@dataclass(frozen=True)
class TreeRules:
    """A shallow tree's leaves as IF ... rules, with test-set upgrade rates."""

    table: pd.DataFrame  # rule, train_rows, train_rate, test_rows, test_upgrades, test_rate, low, high
    text: str
    columns: list[str]
    depth: int
    min_leaf: int
    test_roc_auc: float


def _rule_text(bounds: Bounds) -> str:
    parts = []
    for f, (lo, hi) in bounds.items():
        if np.isfinite(lo) and np.isfinite(hi):
            parts.append(f"{lo:.4g} < {f} ≤ {hi:.4g}")
        elif np.isfinite(hi):
            parts.append(f"{f} ≤ {hi:.4g}")
        else:
            parts.append(f"{f} > {lo:.4g}")
    return " and ".join(parts) or "everyone"


def _leaves(t: Any, columns: list[str]) -> list[tuple[int, Bounds]]:
    """Every leaf of a fitted sklearn tree with its bounds per column (sklearn exports a tree as text
    but not its leaves as bounds)."""
    leaves: list[tuple[int, Bounds]] = []

    def walk(node: int, bounds: Bounds) -> None:
        if t.children_left[node] == -1:
            leaves.append((node, dict(bounds)))
            return
        f, thr = columns[t.feature[node]], float(t.threshold[node])
        lo, hi = bounds.get(f, (-np.inf, np.inf))
        walk(t.children_left[node], {**bounds, f: (lo, min(hi, thr))})
        walk(t.children_right[node], {**bounds, f: (max(lo, thr), hi)})

    walk(0, {})
    return leaves


def _leaf_row(t: Any, node: int, bounds: Bounds, in_leaf: np.ndarray, y_te: np.ndarray) -> dict[str, Any]:
    """One rule: its training rows and rate, and its test rows and upgrade rate (Wilson 95% interval)."""
    n, k = int(in_leaf.sum()), int(y_te[in_leaf].sum())
    lo_ci, hi_ci = proportion_confint(k, n, method="wilson") if n else (np.nan, np.nan)
    return {
        "rule": _rule_text(bounds),
        "train_rows": int(t.n_node_samples[node]),
        "train_rate": float(t.value[node][0][1] / t.value[node][0].sum()),
        "test_rows": n,
        "test_upgrades": k,
        "test_rate": k / n if n else np.nan,
        "low": lo_ci,
        "high": hi_ci,
    }


def tree_rules(
    X_tr: pd.DataFrame,
    y_tr: np.ndarray,
    X_te: pd.DataFrame,
    y_te: np.ndarray,
    columns: list[str],
    seed: int,
    depth: int = 3,
) -> TreeRules:
    """A shallow sklearn tree on the behaviour columns; each leaf as an IF ... rule with its upgrade
    rate on the test set (Wilson 95% interval)."""
    leaf_min = max(30, int(0.01 * len(X_tr)))
    tree = DecisionTreeClassifier(max_depth=depth, min_samples_leaf=leaf_min, random_state=seed)
    tree.fit(X_tr[columns].fillna(0), y_tr)
    t = tree.tree_
    leaf_te = tree.apply(X_te[columns].fillna(0))
    rows = [_leaf_row(t, node, bounds, leaf_te == node, y_te) for node, bounds in _leaves(t, columns)]
    table = pd.DataFrame(rows).sort_values("train_rate", ascending=False).reset_index(drop=True)
    p = tree.predict_proba(X_te[columns].fillna(0))[:, 1]
    return TreeRules(
        table,
        export_text(tree, feature_names=columns, decimals=1, show_weights=True),
        columns,
        depth,
        leaf_min,
        float(roc_auc_score(y_te, p)) if len(np.unique(y_te)) == 2 else np.nan,
    )
