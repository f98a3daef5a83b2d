"""The typed records of a campaign: the plan (`campaign.json`), the readout (`readout.json`) and the
readout of a plain ranked list without a holdout (`ListReadout`, also `readout.json`, `"holdout": false`).

Each is a tree of frozen dataclasses written by `to_dict` and read back by one strict `from_dict`:
every key of every object is checked (`records.check_keys`), so a misspelled key is refused with a
message naming it and where it sits instead of being read as a missing value."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import InputError
from ..records import as_object, check_keys

PLAN_FILE = "campaign.json"
READOUT_FILE = "readout.json"
T = TypeVar("T")


@dataclass(frozen=True)
class Interval:
    """An estimate and its 95% interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Rate:
    """How many users an arm (or band of an arm) holds, how many upgraded, and the share."""

    users: int
    upgrades: int
    rate: float


@dataclass(frozen=True)
class ArmPlan:
    users: int
    expected_upgrades: float  # sum of forecast probabilities: without any effect of the offer


@dataclass(frozen=True)
class PowerRecord:
    baseline: float
    mde: float
    break_even: float
    can_tell: bool
    alpha: float
    power: float
    method: str
    warning: str | None = None


@dataclass(frozen=True)
class Plan:
    """campaign.json: how the campaign was drawn, and the digest of the assignments it drew."""

    as_of: str
    horizon: int
    model: str  # the bundle's path as given
    model_sha256: str
    events: str
    mapping: str | None
    economics: dict[str, float]
    seed: int
    holdout_share: float
    top: int | None
    budget: float | None
    scored_users: int
    targeted_users: int
    offer: ArmPlan
    holdout: ArmPlan
    power: PowerRecord
    assignments_sha256: str


@dataclass(frozen=True)
class Band:
    band: int
    offer: Rate
    holdout: Rate
    difference: Interval | None = None  # the band's offer rate - holdout rate, 95% Wald (unpooled)


@dataclass(frozen=True)
class BandBalance:
    """Offer against holdout in one band (0: the whole target group) before the offer went out."""

    band: int
    offer_mean_probability: float
    holdout_mean_probability: float
    smd: dict[str, float]  # standardized mean difference of each numeric column of assignments.csv
    flagged: list[str]  # the columns whose |SMD| exceeds the threshold
    chance: float  # sqrt(1/n_offer + 1/n_holdout): about the sd of an SMD under a fair draw


@dataclass(frozen=True)
class Balance:
    """Whether the random split gave both arms alike users: a flagged column is worth a look before
    the effect is trusted (a broken draw, or chance in a small band)."""

    threshold: float
    overall: BandBalance
    bands: list[BandBalance]
    flagged: bool


@dataclass(frozen=True)
class Effect:
    difference: Interval  # offer rate - holdout rate, 95% Wald (unpooled)
    adjusted: Interval  # Lin (2013) regression adjustment on the forecast probability, HC2


@dataclass(frozen=True)
class Profit:
    incremental: Interval  # Economics.profit summed over the offer arm at the measured effect
    baseline_rate: float  # p: the holdout's upgrade rate, what the offer arm would have done without it
    economics: dict[str, float]


@dataclass(frozen=True)
class Calibration:
    """The forecast against what happened, per arm (the offer arm's includes the offer's effect)."""

    holdout_expected: float
    holdout_actual: int
    offer_expected: float
    offer_actual: int


@dataclass(frozen=True)
class Srm:
    """Sample-ratio mismatch: the arm sizes against the plan's holdout share (chi-square, 1 df)."""

    expected_holdout_share: float
    observed_holdout_share: float
    chi2: float
    p_value: float
    mismatch: bool


@dataclass(frozen=True)
class Readout:
    """readout.json: what the offer did, measured against the holdout over the model's horizon."""

    as_of: str
    horizon: int
    window_end: str  # the last day whose upgrades count
    data_end: str
    horizon_closed: bool
    days_open: int
    interim: bool
    assignments_sha256: str
    offer: Rate
    holdout: Rate
    bands: list[Band]
    effect: Effect
    incremental_upgrades: Interval
    profit: Profit
    calibration: Calibration
    srm: Srm
    balance: Balance | None = None  # absent from readouts written before the check


@dataclass(frozen=True)
class ListBand:
    """One score band (quintile by rank) of a plain ranked list: the forecast against what happened."""

    band: int
    first_rank: int
    last_rank: int
    users: int
    mean_probability: float
    expected_upgrades: float
    actual_upgrades: int
    precision: float  # the band's upgrade rate: the share of its users who upgraded
    lift: float  # precision over the whole list's upgrade rate
    expected_lift: float  # the forecast's lift: mean probability over the whole list's


@dataclass(frozen=True)
class ListReadout:
    """readout.json of a plain `score --events` list: what can be known without a holdout."""

    holdout: bool  # always false: nobody was held out, so no effect of an offer is measured
    note: str
    scored_file: str
    scored_sha256: str
    as_of: str
    as_of_source: str  # "--as-of" or "tenure_days" (registration day + tenure, the same for every user)
    horizon: int
    window_end: str
    data_end: str
    horizon_closed: bool
    days_open: int
    interim: bool
    users: int
    expected_upgrades: Interval  # sum of probabilities; 95% range of the count if the forecast is right
    actual_upgrades: int
    upgrade_rate: float
    actual_over_expected: float
    upgraded_before_as_of: int  # users of the list whose first upgrade the tables date before the as-of
    roc_auc: float | None  # None when nobody (or everybody) upgraded
    average_precision: float | None
    bands: list[ListBand]


def to_dict(record: Any) -> dict[str, Any]:
    return dataclasses.asdict(record)


def from_dict(cls: type[T], d: Any, where: str) -> T:
    """A record of type `cls` from `d`, every object's keys and every value's type checked."""
    return typing.cast(T, _read(cls, d, where))


def _read(tp: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        flds = dataclasses.fields(tp)
        required = [f.name for f in flds if f.default is dataclasses.MISSING]
        check_keys(value, where, required, [f.name for f in flds if f.name not in required])
        d = as_object(value, where)
        make: Any = tp
        return make(**{k: _read(hints[k], v, f"{where}.{k}") for k, v in d.items()})
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        return _read(next(o for o in options if o is not type(None)), value, where)
    if origin is list:
        if not isinstance(value, list):
            raise InputError(f"{where} is not a list")
        (item,) = typing.get_args(tp)
        return [_read(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        return {
            str(k): _read(typing.get_args(tp)[1], v, f"{where}.{k}")
            for k, v in as_object(value, where).items()
        }
    return _scalar(tp, value, where)


def _scalar(tp: Any, value: Any, where: str) -> Any:
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise InputError(f"{where} is {value!r}, not a {tp.__name__}")
    return float(value) if tp is float else value


def read_json(path: Path, writer: str = "campaign plan") -> Any:
    """A record file's JSON; a missing or unreadable file is refused naming it and the command that writes it."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; give the folder `{writer}` wrote") from None
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read it as JSON ({e})") from None


def read_record(cls: type[T], path: Path) -> T:
    """A record from its JSON file; an unreadable or malformed file is refused naming it."""
    return from_dict(cls, read_json(path), str(path))
