"""Typed metrics of a training run, written to and read from metrics.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import InputError
from ..evaluation import Scores
from ..records import as_object, check_keys


@dataclass(frozen=True)
class Chosen:
    key: str
    family: str
    strategy: str
    params: dict[str, Any]
    label: str
    calibrated: bool


@dataclass(frozen=True)
class Threshold:
    value: float
    objective: str


@dataclass(frozen=True)
class Split:
    n_train: int
    n_test: int
    seed: int
    test_size: float
    group_duplicates: bool
    cv_splits: int
    cv_repeats: int
    group_column: str | None = None  # --group: rows sharing its value were kept on one side


@dataclass(frozen=True)
class Tuning:
    """What Optuna found for one family on the shared folds: the trials run and the best of them."""

    strategy: str
    best_value: float  # the best trial's CV mean of the objective
    n_trials: int  # trials run
    best_params: dict[str, Any]
    planned_trials: int | None = None  # trials planned (fewer ran under --time-limit); None in older runs

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "best_value": self.best_value,
            "n_trials": self.n_trials,
        }
        if self.planned_trials is not None:
            out["planned_trials"] = self.planned_trials
        out["best_params"] = self.best_params
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str = "tuning") -> Tuning:
        """Read one family's tuning record; an unknown or missing key is refused naming it."""
        check_keys(d, where, ["strategy", "best_value", "n_trials", "best_params"], ["planned_trials"])
        planned = d.get("planned_trials")
        return cls(
            strategy=str(d["strategy"]),
            best_value=float(d["best_value"]),
            n_trials=int(d["n_trials"]),
            best_params=dict(as_object(d["best_params"], f"{where}.best_params")),
            planned_trials=None if planned is None else int(planned),
        )


def tuning_to_dict(tuning: dict[str, Tuning]) -> dict[str, Any]:
    """The tuning records of a run, by family, as metrics.json holds them."""
    return {family: t.to_dict() for family, t in tuning.items()}


def tuning_from_dict(d: Any, where: str = "tuning") -> dict[str, Tuning]:
    """The tuning records of a run read back from metrics.json (an absent record: no tuning)."""
    return {str(f): Tuning.from_dict(t, f"{where}.{f}") for f, t in as_object(d or {}, where).items()}


@dataclass(frozen=True)
class Reference:
    """The course's recipe on the same split: a baseline row."""

    test: Scores
    cv: dict[str, float]
    threshold: float


@dataclass(frozen=True)
class NoLeak:
    """The chosen pipeline retrained without the features the audit flagged as leaks."""

    excluded: list[str]
    test: Scores
    train: Scores
    cv: dict[str, float]
    threshold: float


@dataclass(frozen=True)
class Limits:
    """What the budget, the data and a time limit changed in a run, stated in metrics.json."""

    time_limit: float | None = None  # seconds for the whole run; None: trial counts alone bound it
    fit_rows: dict[str, int] = field(default_factory=dict)  # family -> at most this many rows per fit
    smote_k: int = 5  # the neighbours SMOTE interpolates between
    left_out: dict[str, str] = field(default_factory=dict)  # family or candidate key -> why
    notes: list[str] = field(default_factory=list)  # one sentence each, for the summary and the report

    @property
    def repeatable(self) -> bool:
        """Whether the same seed gives the same run on any machine (not so under a time limit)."""
        return self.time_limit is None

    @staticmethod
    def time_limit_note(seconds: float) -> str:
        """What a time limit means for the results, in one sentence."""
        return (
            f"--time-limit {seconds:g}s: what was compared and how many trials ran depend on this "
            "machine's speed, so results may vary between machines (without a limit, a seed repeats exactly)"
        )

    @classmethod
    def from_dict(cls, d: Any, where: str = "limits") -> Limits:
        check_keys(d, where, [], _names(cls))  # every key optional: older runs have fewer
        return cls(
            time_limit=None if d.get("time_limit") is None else float(d["time_limit"]),
            fit_rows={str(k): int(v) for k, v in (d.get("fit_rows") or {}).items()},
            smote_k=int(d.get("smote_k", 5)),
            left_out={str(k): str(v) for k, v in (d.get("left_out") or {}).items()},
            notes=[str(n) for n in d.get("notes") or []],
        )


@dataclass(frozen=True)
class RunMetrics:
    chosen: Chosen
    objective: str
    threshold: Threshold
    train: Scores
    test: Scores
    cv: dict[str, float]  # "<metric>_mean" and "<metric>_sd" across folds
    split: Split
    tuning: dict[str, Tuning] = field(default_factory=dict)  # family -> what Optuna found
    reference: Reference | None = None
    no_leak: NoLeak | None = None
    limits: Limits = field(default_factory=Limits)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "chosen": asdict(self.chosen),
            "objective": self.objective,
            "threshold": asdict(self.threshold),
            "train": self.train.to_dict(),
            "test": self.test.to_dict(),
            "cv": self.cv,
            "split": asdict(self.split),
            "tuning": tuning_to_dict(self.tuning),
            "limits": asdict(self.limits),
        }
        if self.reference is not None:
            out["reference"] = {
                "test": self.reference.test.to_dict(),
                "cv": self.reference.cv,
                "threshold": self.reference.threshold,
            }
        if self.no_leak is not None:
            nl = self.no_leak
            out["no_leak"] = {
                "excluded": nl.excluded,
                "test": nl.test.to_dict(),
                "train": nl.train.to_dict(),
                "cv": nl.cv,
                "threshold": nl.threshold,
            }
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str = "metrics.json") -> RunMetrics:
        """Read metrics.json; an unknown or missing key, or a file of another shape, is refused naming
        what is wrong and saying how to get a readable run."""
        try:
            return cls._read(d)
        except InputError as e:
            problem = str(e)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            problem = f"{type(e).__name__}: {e}"
        raise InputError(
            f"{where}: not the metrics of a run of this version ({problem}); "
            "retrain with 'upgrade-predictor train'"
        ) from None

    @classmethod
    def _read(cls, d: Any) -> RunMetrics:
        optional = ["tuning", "limits", "reference", "no_leak"]  # older runs lack some
        check_keys(d, "the file", [k for k in _names(cls) if k not in optional], optional)
        return cls(
            chosen=Chosen(**_record(d["chosen"], "chosen", Chosen)),
            objective=str(d["objective"]),
            threshold=_threshold(d["threshold"], "threshold"),
            train=Scores.from_dict(d["train"], "train"),
            test=Scores.from_dict(d["test"], "test"),
            cv=_floats(d["cv"], "cv"),
            split=Split(**_record(d["split"], "split", Split, ["group_column"])),
            tuning=tuning_from_dict(d.get("tuning"), "tuning"),
            limits=Limits.from_dict(d.get("limits") or {}, "limits"),
            reference=None if d.get("reference") is None else _reference(d["reference"]),
            no_leak=None if d.get("no_leak") is None else _no_leak(d["no_leak"]),
        )


def _names(cls: Any) -> list[str]:
    return [f.name for f in fields(cls)]


def _record(d: Any, where: str, cls: Any, optional: list[str] | None = None) -> dict[str, Any]:
    """`d` as the keyword arguments of record `cls`, once its keys are checked."""
    optional = optional or []
    check_keys(d, where, [k for k in _names(cls) if k not in optional], optional)
    return dict(d)


def _floats(d: Any, where: str) -> dict[str, float]:
    return {str(k): float(v) for k, v in as_object(d, where).items()}


def _threshold(d: Any, where: str) -> Threshold:
    check_keys(d, where, _names(Threshold))
    return Threshold(float(d["value"]), str(d["objective"]))


def _reference(d: Any) -> Reference:
    at = "reference"
    check_keys(d, at, _names(Reference))
    return Reference(
        Scores.from_dict(d["test"], f"{at}.test"), _floats(d["cv"], f"{at}.cv"), float(d["threshold"])
    )


def _no_leak(d: Any) -> NoLeak:
    at = "no_leak"
    check_keys(d, at, _names(NoLeak))
    return NoLeak(
        [str(c) for c in d["excluded"]],
        Scores.from_dict(d["test"], f"{at}.test"),
        Scores.from_dict(d["train"], f"{at}.train"),
        _floats(d["cv"], f"{at}.cv"),
        float(d["threshold"]),
    )
