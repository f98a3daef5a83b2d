"""Training benchmark on the real data: wall time of each budget, our test scores beside the course's
reference recipe from the same run, and the cost of an exact RBF SVM against the Nystroem stand-in.

    .venv/bin/python benchmarks/bench_training.py [--budgets quick,standard] [--data PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.base import clone
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC

from upgrade_predictor.api import TrainConfig, train
from upgrade_predictor.dataset import load_dataset
from upgrade_predictor.models import build_pipeline
from upgrade_predictor.training.splits import holdout_split

console = Console()


def svm_cost(data: Path | None) -> None:
    """One validation fold of the training part (the test rows stay untouched)."""
    ds = load_dataset(data)
    tr, _ = holdout_split(ds.y, None, 0.2, 365)
    X, y = ds.X.iloc[tr], ds.y[tr]
    fit, val = next(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
    ours = build_pipeline(ds.schema, "svm", "none")
    exact = clone(ours)
    exact.steps[-1] = ("model", SVC(kernel="rbf", C=1.0, probability=True, random_state=0))
    rows = []
    for name, pipe in (
        ("SVM, Nystroem 100 + linear SVM, Platt", ours),
        ("SVC(kernel='rbf', probability=True)", exact),
    ):
        start = time.perf_counter()
        pipe.fit(X.iloc[fit], y[fit])
        p = pipe.predict_proba(X.iloc[val])[:, 1]
        rows.append((name, time.perf_counter() - start, average_precision_score(y[val], p)))
    t = Table(title=f"SVM on one fold ({len(fit):,} fit rows, {len(val):,} validation rows)")
    for c in ("model", "fit+predict s", "PR AUC"):
        t.add_column(c)
    for name, s, ap in rows:
        t.add_row(name, f"{s:.2f}", f"{ap:.3f}")
    console.print(t)
    console.print(f"exact / approximate time ratio: {rows[1][1] / rows[0][1]:.1f}x")


def budgets(data: Path | None, names: list[str]) -> None:
    t = Table(title="train runs on the real data (test = the unfiltered seed-365 hold-out)")
    for c in (
        "budget",
        "wall s",
        "chosen",
        "test PR AUC",
        "test F1",
        "ref. PR AUC",
        "ref. F1",
        "no-leak PR AUC",
    ):
        t.add_column(c)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            start = time.perf_counter()
            out = train(
                TrainConfig(data=data, budget=name, out=Path(tmp) / name), console=Console(quiet=True)
            ).dir
            wall = time.perf_counter() - start
            m = json.loads((out / "metrics.json").read_text())
            ref = m.get("reference", {}).get("test", {})
            nl = m.get("no_leak", {}).get("test", {})
            t.add_row(
                name,
                f"{wall:.0f}",
                m["chosen"]["key"],
                f"{m['test']['pr_auc']:.4f}",
                f"{m['test']['f1']:.4f}",
                f"{ref.get('pr_auc', np.nan):.4f}",
                f"{ref.get('f1', np.nan):.4f}",
                f"{nl.get('pr_auc', np.nan):.4f}",
            )
    console.print(t)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--budgets", default="quick,standard")
    args = ap.parse_args()
    svm_cost(args.data)
    budgets(args.data, args.budgets.split(","))
