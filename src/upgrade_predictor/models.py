"""Model families, imbalance strategies and the pipelines that join them to the features.

FAMILIES is the one registry of model families: each owns its estimator, the fitted types its model
holds (the bundle's trust list is built from them), its SHAP explainer, whether `--explain` works, its
cost and its row-cap class. The command line, the budgets' row caps, the bundle, scoring and the
report read them from here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from imblearn import FunctionSampler
from imblearn.pipeline import Pipeline
from lightgbm import LGBMClassifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from . import config
from .features import (
    EngagementFeatures,
    drop_columns,
    drop_reference_outliers,
    encode_step,
    ordinal_step,
    prepare_step,
)
from .models_sampling import SMOTE_K, make_sampler, subsample_step
from .models_sampling import stratified_sample as stratified_sample  # the name older bundles refer to
from .schema import Schema

Params = dict[str, Any]

KNN_MAX_NEIGHBOURS = 101  # the most neighbours KNN's tuning tries: every KNN fit needs more rows than that


# How SHAP values are computed for a family's model: "contributions" from the model itself (LightGBM's
# exact TreeSHAP, the scorer's --explain path), shap's "tree" or "linear" explainer, or the
# model-agnostic "kernel" explainer.
Explainer = Literal["contributions", "tree", "linear", "kernel"]
# How a family's fit cost grows with its rows, which decides its row cap (config.Budget.fit_rows and
# config.EVENTS_FIT_ROWS give the rows per class): "neighbours" (every row is searched), "costly"
# (kernels, forests of deep trees) or "cheap".
RowCap = Literal["neighbours", "costly", "cheap"]


@dataclass(frozen=True)
class Family:
    name: str
    label: str
    scale: bool  # needs skew removal and scaling (distance and linear models)
    class_weight: bool  # supports class_weight="balanced"
    make: Callable[[Params, int, Any], Any]  # (params, seed, class_weight) -> estimator
    defaults: Params
    space: Callable[[Any], Params]  # optuna trial -> params
    estimator: type  # the type of the model `make` returns: how a fitted model is known as this family
    # Every type the fitted model holds, as skops names them; the pipeline's own are in bundle.trust.
    fitted_types: frozenset[str]
    note: str = ""
    cost: float = 1.0  # relative cost of one fit: a tuning budget buys fewer trials of a costly family
    explainer: Explainer = "kernel"
    row_cap: RowCap = "cheap"

    @property
    def explain(self) -> bool:
        """Whether scoring can explain each score (--explain): only a model with its own contributions."""
        return self.explainer == "contributions"


def _logreg(p, seed, cw):
    return LogisticRegression(C=p["C"], solver="newton-cholesky", max_iter=500, class_weight=cw)


def _knn(p, seed, cw):
    return KNeighborsClassifier(n_neighbors=p["n_neighbors"], weights=p["weights"], algorithm="brute")


def _svm(p, seed, cw):
    # An exact RBF SVC costs seconds per fit here and has no probabilities; a Nystroem map feeds a
    # linear SVM, and Platt scaling (as SVC(probability=True) does) turns margins into probabilities.
    inner = make_pipeline(
        Nystroem(gamma=p["gamma"], n_components=p["n_components"], random_state=seed),
        LinearSVC(C=p["C"], class_weight=cw, dual="auto", max_iter=5000, random_state=seed),
    )
    return CalibratedClassifierCV(inner, method="sigmoid", cv=3)


def _tree(p, seed, cw):
    return DecisionTreeClassifier(
        max_depth=p["max_depth"], min_samples_leaf=p["min_samples_leaf"], class_weight=cw, random_state=seed
    )


def _forest(p, seed, cw):
    return RandomForestClassifier(
        n_estimators=p["n_estimators"],
        min_samples_leaf=p["min_samples_leaf"],
        max_features=p["max_features"],
        max_depth=p.get("max_depth"),
        class_weight=cw,
        n_jobs=1,
        random_state=seed,
    )


def _gbm(p: Params, seed: int, cw: str | None) -> LGBMClassifier:
    return LGBMClassifier(
        n_estimators=p["n_estimators"],
        learning_rate=p["learning_rate"],
        num_leaves=p["num_leaves"],
        max_depth=p["max_depth"],
        min_child_samples=p["min_child_samples"],
        reg_lambda=p["reg_lambda"],
        subsample=p["subsample"],
        subsample_freq=1 if p["subsample"] < 1 else 0,
        colsample_bytree=p["colsample_bytree"],
        class_weight=cw,
        random_state=seed,
        n_jobs=1,
        verbose=-1,
    )


FOREST_TYPES = frozenset(
    {
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
    }
)

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "logreg",
            "logistic regression",
            True,
            True,
            _logreg,
            {"C": 1.0},
            lambda t: {"C": t.suggest_float("C", 1e-3, 100, log=True)},
            LogisticRegression,
            frozenset({"sklearn.linear_model._logistic.LogisticRegression"}),
            explainer="linear",
        ),
        Family(
            "knn",
            "k-nearest neighbours",
            True,
            False,
            _knn,
            {"n_neighbors": 25, "weights": "distance"},
            lambda t: {
                "n_neighbors": t.suggest_int("n_neighbors", 5, KNN_MAX_NEIGHBOURS, step=2),
                "weights": t.suggest_categorical("weights", ["uniform", "distance"]),
            },
            KNeighborsClassifier,
            frozenset(
                {
                    "sklearn.neighbors._classification.KNeighborsClassifier",
                    "sklearn.neighbors._kd_tree.KDTree",
                    "sklearn.neighbors._ball_tree.BallTree",
                }
            ),
            note="no class weights in KNN",
            cost=4,
            row_cap="neighbours",
        ),
        Family(
            "svm",
            "SVM (RBF, Nystroem 100)",
            True,
            True,
            _svm,
            {"C": 0.1, "gamma": 0.1, "n_components": 100},
            lambda t: {
                "C": t.suggest_float("C", 1e-3, 10, log=True),
                "gamma": t.suggest_float("gamma", 1e-3, 1, log=True),
                "n_components": 100,
            },
            CalibratedClassifierCV,
            frozenset(
                {
                    "sklearn.calibration.CalibratedClassifierCV",
                    "sklearn.calibration._CalibratedClassifier",
                    "sklearn.calibration._SigmoidCalibration",
                    "sklearn.pipeline.Pipeline",
                    "sklearn.kernel_approximation.Nystroem",
                    "sklearn.svm._classes.LinearSVC",
                }
            ),
            note="RBF kernel approximated by a 100-component Nystroem map, Platt-scaled",
            cost=8,
            row_cap="costly",
        ),
        Family(
            "tree",
            "decision tree",
            False,
            True,
            _tree,
            {"max_depth": 6, "min_samples_leaf": 20},
            lambda t: {
                "max_depth": t.suggest_int("max_depth", 2, 12),
                "min_samples_leaf": t.suggest_int("min_samples_leaf", 1, 100, log=True),
            },
            DecisionTreeClassifier,
            frozenset({"sklearn.tree._classes.DecisionTreeClassifier", "sklearn.tree._tree.Tree"}),
            explainer="tree",
        ),
        Family(
            "forest",
            "random forest",
            False,
            True,
            _forest,
            {"n_estimators": 100, "min_samples_leaf": 3, "max_features": "sqrt", "max_depth": None},
            # Bounded so one trial costs a few default fits: wide forests of deep trees cost minutes.
            lambda t: {
                "n_estimators": t.suggest_int("n_estimators", 100, 200, step=50),
                "min_samples_leaf": t.suggest_int("min_samples_leaf", 1, 30, log=True),
                "max_features": t.suggest_float("max_features", 0.2, 0.6),
                "max_depth": t.suggest_int("max_depth", 6, 20),
            },
            RandomForestClassifier,
            FOREST_TYPES,
            cost=8,
            explainer="tree",
            row_cap="costly",
        ),
        Family(
            "gbm",
            "gradient boosting (LightGBM)",
            False,
            True,
            _gbm,
            {
                "n_estimators": 250,
                "learning_rate": 0.04,
                "num_leaves": 15,
                "max_depth": 4,
                "min_child_samples": 50,
                "reg_lambda": 1.0,
                "subsample": 1.0,
                "colsample_bytree": 1.0,
            },
            lambda t: {
                "n_estimators": t.suggest_int("n_estimators", 100, 600, step=50),
                "learning_rate": t.suggest_float("learning_rate", 0.01, 0.15, log=True),
                "num_leaves": t.suggest_int("num_leaves", 4, 48, log=True),
                "max_depth": t.suggest_int("max_depth", 2, 8),
                "min_child_samples": t.suggest_int("min_child_samples", 10, 200, log=True),
                "reg_lambda": t.suggest_float("reg_lambda", 1e-3, 30, log=True),
                "subsample": t.suggest_float("subsample", 0.5, 1.0),
                "colsample_bytree": t.suggest_float("colsample_bytree", 0.4, 1.0),
            },
            LGBMClassifier,
            frozenset({"lightgbm.sklearn.LGBMClassifier", "lightgbm.basic.Booster"}),
            explainer="contributions",
        ),
    ]
}

FAMILY_NAMES = tuple(FAMILIES)
if set(FAMILY_NAMES) != set(get_args(config.FamilyName)):  # the command line offers config's names
    raise RuntimeError(
        f"config.FamilyName {get_args(config.FamilyName)} differs from FAMILIES {FAMILY_NAMES}"
    )
EXPLAIN_FAMILIES = tuple(name for name, f in FAMILIES.items() if f.explain)
REFERENCE = "reference"  # the course recipe's forest, which has a row cap of its own


def family_of(model: Any) -> Family | None:
    """The family whose estimator a fitted model is (the model step of a pipeline; the course recipe's
    forest is a forest), or None for a model no family makes."""
    return next((f for f in FAMILIES.values() if isinstance(model, f.estimator)), None)


def row_caps(rows: Mapping[str, int]) -> dict[str, int]:
    """The row cap of each family (and of the course recipe) from rows per row-cap class
    (config.Budget.fit_rows for table runs, config.EVENTS_FIT_ROWS for events runs); a family whose
    class has no rows there fits on every row."""
    caps = {f.name: rows[f.row_cap] for f in FAMILIES.values() if f.row_cap in rows}
    return caps | ({REFERENCE: rows[REFERENCE]} if REFERENCE in rows else {})


STRATEGY_LABELS = {
    "none": "none",
    "class_weight": "class weights",
    "oversample": "random oversampling",
    "undersample": "random undersampling",
    "smote": "SMOTE",
}


def supports(family: str, strategy: str) -> bool:
    return strategy != "class_weight" or FAMILIES[family].class_weight


def build_pipeline(
    schema: Schema,
    family: str,
    strategy: str,
    params: Params | None = None,
    seed: int = config.SEED,
    fit_rows: int | None = None,
    smote_k: int = SMOTE_K,
) -> Pipeline:
    """[stratified sample] -> features -> numeric prep -> sampler -> encoding -> model, all refitted on
    every training fold. With `fit_rows`, every fit uses at most that many of its rows."""
    fam = FAMILIES[family]
    if not supports(family, strategy):
        raise ValueError(f"{fam.label} does not support {STRATEGY_LABELS[strategy]}")
    p = {**fam.defaults, **(params or {})}
    cw = "balanced" if strategy == "class_weight" else None
    sample = [("subsample", subsample_step(fit_rows, seed))] if fit_rows else []
    return Pipeline(
        [
            *sample,
            ("features", EngagementFeatures()),
            ("prepare", prepare_step(fam.scale)),
            ("sampler", make_sampler(strategy, schema, seed, smote_k)),
            ("encode", encode_step()),
            ("model", fam.make(p, seed, cw)),
        ]
    )


def build_reference(seed: int = config.SEED, fit_rows: int | None = None) -> Pipeline:
    """The course's recipe: outliers dropped from training rows only, one column dropped,
    ordinal country, a random forest, threshold 0.5 (with `fit_rows`, fitted on at most that many rows)."""
    sample = [("subsample", subsample_step(fit_rows, seed))] if fit_rows else []
    return Pipeline(
        [
            *sample,
            ("drop_outliers", FunctionSampler(func=drop_reference_outliers, validate=False)),
            (
                "drop_columns",
                FunctionTransformer(drop_columns, kw_args={"columns": config.REFERENCE_DROPPED}),
            ),
            ("encode", ordinal_step()),
            ("model", RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)),
        ]
    )


def inner_pipeline(estimator: Any) -> Any:
    """The feature/model pipeline inside a calibration wrapper (ensemble=False keeps exactly one; an
    events model recalibrated on recent rows wraps its pipeline in a FrozenEstimator)."""
    cal = getattr(estimator, "calibrated_classifiers_", None)
    inner = cal[0].estimator if cal is not None and len(cal) == 1 else estimator
    return inner.estimator if isinstance(inner, FrozenEstimator) else inner
