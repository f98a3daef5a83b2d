"""Typed metrics of a training run, written to and read from metrics.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import InputError
from ..evaluation import Scores


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
    def from_dict(cls, d: Any) -> Limits:
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
    tuning: dict[str, Any] = field(default_factory=dict)
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
            "tuning": self.tuning,
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
        """Read metrics.json; a file of another shape says how to get a readable run."""
        try:
            ref, nl = d.get("reference"), d.get("no_leak")
            return cls(
                chosen=Chosen(**d["chosen"]),
                objective=str(d["objective"]),
                threshold=Threshold(float(d["threshold"]["value"]), str(d["threshold"]["objective"])),
                train=Scores.from_dict(d["train"]),
                test=Scores.from_dict(d["test"]),
                cv={k: float(v) for k, v in d["cv"].items()},
                split=Split(**d["split"]),
                tuning=dict(d.get("tuning") or {}),
                limits=Limits.from_dict(d.get("limits") or {}),
                reference=None
                if ref is None
                else Reference(Scores.from_dict(ref["test"]), dict(ref["cv"]), float(ref["threshold"])),
                no_leak=None
                if nl is None
                else NoLeak(
                    list(nl["excluded"]),
                    Scores.from_dict(nl["test"]),
                    Scores.from_dict(nl["train"]),
                    dict(nl["cv"]),
                    float(nl["threshold"]),
                ),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(
                f"{where}: not the metrics of a run of this version ({type(e).__name__}: {e}); "
                "retrain with 'upgrade-predictor train'"
            ) from None
