"""The models compared: leaderboard curves, imbalance strategies, and the chosen model on the test set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

from ..evaluation import METRICS
from ..models import STRATEGY_LABELS
from ..training.runs import Run
from .format import signed

LEADING_MODELS = 4


@dataclass(frozen=True)
class Curves:
    """Out-of-fold ROC and precision-recall curves of one model, with its cross-validated areas."""

    fpr: np.ndarray
    tpr: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    roc_auc: float
    pr_auc: float


@dataclass(frozen=True)
class TrainTest:
    """One metric of the chosen model in-sample, across folds and on the test set."""

    metric: str
    train: float
    cv: float | None
    test: float

    @property
    def gap(self) -> float:
        return self.train - self.test


@dataclass(frozen=True)
class Comparison:
    board: pd.DataFrame  # the leaderboard, by rank
    curves: dict[str, Curves]  # the leading models and the course reference
    train_test: list[TrainTest]
    base_rate: float  # upgrade rate of the cross-validated rows: the no-skill precision


@dataclass(frozen=True)
class Imbalance:
    # key, family, model, strategy, strategy_label, pr_auc, d_pr_auc, sd, d_recall,
    # d_precision, d_brier, verdict: each strategy against "none" for the same family
    table: pd.DataFrame
    summary: list[str]


@dataclass(frozen=True)
class ChosenSection:
    confusion: np.ndarray  # 2 × 2 on the test set at the chosen threshold
    observed: np.ndarray  # reliability diagram: upgrade rate per bin of predicted probability
    predicted: np.ndarray


def comparison_section(run: Run) -> Comparison:
    board = run.leaderboard.sort_values("rank")
    models = board[~board["is_reference"].astype(bool)]
    cvp = run.cv_predictions
    lead = [k for k in models["key"].head(LEADING_MODELS) if k in cvp.columns]
    if "reference" in cvp.columns:
        lead.append("reference")
    by_key = board.set_index("key")
    curves = {}
    for key in lead:
        fpr, tpr, _ = roc_curve(cvp["y"], cvp[key])
        prec, rec, _ = precision_recall_curve(cvp["y"], cvp[key])
        row = by_key.loc[key]
        curves[key] = Curves(fpr, tpr, prec, rec, float(row["roc_auc_mean"]), float(row["pr_auc_mean"]))
    m = run.metrics
    train_test = [TrainTest(k, m.train[k], m.cv.get(f"{k}_mean"), m.test[k]) for k in METRICS]
    return Comparison(board, curves, train_test, float(cvp["y"].mean()))


def imbalance_section(run: Run) -> Imbalance:
    """Each strategy against 'none' for the same family, on the same folds."""
    lb = run.leaderboard
    board = lb[~lb["is_reference"].astype(bool)].set_index("key").to_dict("index")
    rows = []
    for key, r in board.items():
        base_key = f"{r['family']}/none"
        # Tuned rows would be compared with an untuned baseline; their untuned twin is on the board.
        if r["strategy"] == "none" or base_key not in board or bool(r["tuned"]):
            continue
        b = board[base_key]
        d_pr = float(r["pr_auc_mean"] - b["pr_auc_mean"])
        noise = max(float(b["pr_auc_sd"]), float(r["pr_auc_sd"]), 1e-9)
        verdict = "helped" if d_pr > noise else "hurt" if d_pr < -noise else "no clear difference"
        strategy = str(r["strategy"])
        rows.append(
            {
                "key": key,
                "family": r["family"],
                "model": r["model"],
                "strategy": strategy,
                "strategy_label": STRATEGY_LABELS.get(strategy, strategy),
                "pr_auc": r["pr_auc_mean"],
                "d_pr_auc": d_pr,
                "sd": noise,
                "d_recall": r["recall_mean"] - b["recall_mean"],
                "d_precision": r["precision_mean"] - b["precision_mean"],
                "d_brier": r["brier_mean"] - b["brier_mean"],
                "verdict": verdict,
            }
        )
    df = pd.DataFrame(rows)
    return Imbalance(df, _imbalance_summary(df) if len(df) else [])


def _imbalance_summary(df: pd.DataFrame) -> list[str]:
    helped = sorted(set(df.loc[df["verdict"] == "helped", "strategy_label"]))
    summary = [
        "On this data, "
        + (
            f"{', '.join(helped)} improved PR AUC beyond fold noise for at least one model."
            if helped
            else "no imbalance strategy improved PR AUC beyond fold noise for any model: they shift "
            "probabilities (higher recall at 0.5, worse calibration) without ranking users better."
        )
    ]
    for _, g in df.groupby("strategy", sort=False):
        counts, label = g["verdict"].value_counts(), g["strategy_label"].iloc[0]
        summary.append(
            f"{label}: helped PR AUC for {counts.get('helped', 0)}, hurt it for {counts.get('hurt', 0)} and "
            f"made no clear difference for {counts.get('no clear difference', 0)} of {len(g)} model(s); "
            f"mean change {signed(g['d_pr_auc'].mean())} PR AUC, {signed(g['d_recall'].mean())} recall at "
            f"0.5, {signed(g['d_brier'].mean())} Brier (higher Brier = worse calibrated)"
        )
    return summary


def chosen_section(run: Run) -> ChosenSection:
    thr = run.metrics.threshold.value
    y, p = run.y("test"), run.rows("test")["p"].to_numpy()
    cm = confusion_matrix(y, (p >= thr).astype(int), labels=[0, 1])
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    return ChosenSection(cm, observed, predicted)
