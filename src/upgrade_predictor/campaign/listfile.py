"""A plain ranked list that `score --events` wrote, read back for a readout: its users in rank order and
the day it was scored.

`score` records neither the scoring day nor the model's horizon beside the file, so the horizon is an
option and the day is `--as-of`, or else read off the list itself: each row carries `tenure_days`, the
days from the user's registration to the scoring day, so registration + tenure names the same day for
every user of a list scored once.

`score --events --dask` writes the list as a folder of Parquet parts (OUT/scored/part-NNNNN.parquet, the
ranks global across them); the folder, or its `scored` folder, is read as one list."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..sources.formats import file_fingerprint

SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
REQUIRED = ("user_id", "probability", "rank")
TENURE = "tenure_days"


@dataclass(frozen=True)
class ScoredList:
    path: Path
    users: pd.DataFrame  # user_id (text), probability, rank and, when the file has it, tenure_days


def is_scored_file(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def scored_parts(path: Path) -> list[Path]:
    """The parts of a folder that `score --events --dask` wrote (the folder or its `scored`), in name
    order; none for any other folder or a file."""
    if not path.is_dir():
        return []
    folder = path / "scored" if (path / "scored").is_dir() else path
    return sorted(folder.glob("part-*.parquet"))


def list_fingerprint(path: Path) -> str:
    """sha256 of the list's bytes; of a folder of parts, of each part's name and fingerprint in order."""
    parts = scored_parts(path)
    if not parts:
        return file_fingerprint(path)
    return hashlib.sha256("".join(f"{f.name}:{file_fingerprint(f)}\n" for f in parts).encode()).hexdigest()


def _read_frame(path: Path) -> pd.DataFrame:
    parts = scored_parts(path)
    if parts:
        return pd.concat([pd.read_parquet(f) for f in parts], ignore_index=True)
    if path.name.lower().endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype={"user_id": str}, keep_default_na=False, na_values=[""])


def read_scored(path: Path) -> ScoredList:
    """The list (a file, or the folder of parts of `score --dask`) in rank order, refused in one sentence
    when it is not a ranked list of users."""
    if not scored_parts(path):
        if not path.is_file():
            raise InputError(f"{path} does not exist; give the file or folder `score --events` wrote")
        if not is_scored_file(path):
            raise InputError(
                f"{path}: give a ranked list ending in .csv, .csv.gz or .parquet, or a plan folder"
            )
    try:
        frame = _read_frame(path)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise InputError(f"{path}: cannot read it as a ranked list ({e})") from None
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path}: no column {missing[0]!r}; a scored list has {', '.join(REQUIRED)} "
            "(the output of `score --events`)"
        )
    keep = [*REQUIRED, *([TENURE] if TENURE in frame.columns else [])]
    frame = frame[keep].assign(user_id=frame["user_id"].astype(str))
    if frame.empty:
        raise InputError(f"{path}: the list holds no user")
    users = _checked(path, frame).sort_values("rank", kind="stable").reset_index(drop=True)
    if scored_parts(path) and users["rank"].iloc[-1] != len(users):  # ranks are global across the parts
        raise InputError(
            f"{path}: its ranks do not run from 1 to {len(users):,} without a gap; a part is missing"
        )
    return ScoredList(path, users)


def _checked(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    p = pd.to_numeric(frame["probability"], errors="coerce").to_numpy(dtype="float64")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise InputError(f"{path}: column 'probability' holds a value that is not a number between 0 and 1")
    rank = pd.to_numeric(frame["rank"], errors="coerce")
    if rank.isna().any() or (rank < 1).any() or (rank % 1 != 0).any() or rank.duplicated().any():
        raise InputError(f"{path}: column 'rank' must hold distinct whole numbers from 1")
    repeated = frame["user_id"][frame["user_id"].duplicated()]
    if len(repeated):
        raise InputError(f"{path}: user_id {repeated.iloc[0]!r} is listed more than once")
    return frame.assign(probability=p, rank=rank.astype("int64"))


def scoring_day(scored: ScoredList, registered: pd.Series, as_of: str | None) -> tuple[date, str]:
    """The day the list was scored and where it comes from ("--as-of" or "tenure_days"); `registered`
    is each listed user's registration day, in the list's order."""
    days = _tenure_days(scored, registered)
    if as_of is not None:
        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            raise InputError(f"--as-of {as_of!r} is not a date; give YYYY-MM-DD") from None
        if days is not None and (days != pd.Timestamp(day)).any():
            other = days[days != pd.Timestamp(day)].iloc[0].date()
            raise InputError(
                f"{scored.path}: its tenure_days put the scoring day at {other}, not --as-of {day}; "
                f"give the day the list was scored"
            )
        return day, "--as-of"
    if days is None:
        raise InputError(
            f"{scored.path} has no tenure_days column to tell the day it was scored: give --as-of, the "
            "--as-of of the `score --events` run that wrote it"
        )
    if days.nunique() != 1:
        raise InputError(
            f"{scored.path}: its tenure_days name {days.nunique()} different scoring days; give --as-of"
        )
    return days.iloc[0].date(), TENURE


def _tenure_days(scored: ScoredList, registered: pd.Series) -> pd.Series | None:
    if TENURE not in scored.users.columns:
        return None
    tenure = pd.to_numeric(scored.users[TENURE], errors="coerce")
    if tenure.isna().any():
        raise InputError(f"{scored.path}: column 'tenure_days' holds a value that is not a number")
    reg = pd.to_datetime(registered.reset_index(drop=True))
    return (reg + pd.to_timedelta(tenure.round().astype("int64"), unit="D")).dt.normalize()
