"""Where point-in-time features are computed: the embedded DuckDB source on this machine (the default),
or a Dask cluster (`cluster.py`) for event logs beyond one machine. An events run, `features` and
`score --events` only talk to an `EventEngine`, so both give the same features by construction: the
cluster runs the same DuckDB code on each partition of users.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from ..errors import InputError
from ..sources.event_audit import EventAudit
from ..sources.event_database import is_database
from ..sources.event_mapping import Attribute, EventMapping
from ..sources.event_staging import ident
from ..sources.events import EventSource
from .features import DEFAULT_WINDOWS, features_as_of, features_as_of_chunks, point_in_time_features

if TYPE_CHECKING:
    from typing_extensions import Self


class EventEngine(Protocol):
    """The cleaned event tables of one extract and the features computed from them."""

    folder: Path
    mapping: EventMapping
    attributes: tuple[Attribute, ...]
    audit: EventAudit
    data_end: date

    def users_frame(self) -> pd.DataFrame:
        """user_id, registered, first_upgrade (NaT if none), then the attributes; one row per user."""
        ...

    def features_at(self, rows: pd.DataFrame, windows: tuple[int, ...] = DEFAULT_WINDOWS) -> pd.DataFrame:
        """Features of each (user_id, cutoff) row, in the rows' order (see features.point_in_time_features)."""
        ...

    def features_on(self, day: date, windows: tuple[int, ...] = DEFAULT_WINDOWS) -> pd.DataFrame:
        """Features on `day` of every user registered by then and still free, one frame."""
        ...

    def features_on_chunks(
        self, day: date, windows: tuple[int, ...] = DEFAULT_WINDOWS
    ) -> Iterator[pd.DataFrame]:
        """The same rows as `features_on`, a bounded chunk at a time (for scoring millions of users)."""
        ...

    def first_day_activity(self) -> pd.DataFrame:
        """user_id of every user active on the registration day, with first_day_activity = True."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> EventEngine: ...

    def __exit__(self, *exc: object) -> None: ...


class LocalEvents:
    """The embedded engine: one `EventSource` (DuckDB) on this machine."""

    def __init__(self, folder: Path | str, mapping: Path | None = None) -> None:
        self.source = EventSource(folder, mapping)
        self.folder = self.source.folder
        self.mapping = self.source.mapping
        self.attributes = self.source.attributes
        self.audit = self.source.audit
        self.data_end = self.source.data_end

    def users_frame(self) -> pd.DataFrame:
        return self.source.users_frame()

    def features_at(self, rows: pd.DataFrame, windows: tuple[int, ...] = DEFAULT_WINDOWS) -> pd.DataFrame:
        return point_in_time_features(self.source, rows, windows)

    def features_on(self, day: date, windows: tuple[int, ...] = DEFAULT_WINDOWS) -> pd.DataFrame:
        return features_as_of(self.source, day, windows)

    def features_on_chunks(
        self, day: date, windows: tuple[int, ...] = DEFAULT_WINDOWS
    ) -> Iterator[pd.DataFrame]:
        return features_as_of_chunks(self.source, day, windows)

    def first_day_activity(self) -> pd.DataFrame:
        parts = [
            f"SELECT a.user_id FROM {ident('act_' + a.name)} a JOIN users u USING (user_id) "
            "WHERE a.day = u.registered"
            for a in self.mapping.activities
        ]
        con = self.source.con
        df = con.sql(" UNION ".join(parts)).df() if parts else pd.DataFrame({"user_id": []})
        return df.assign(first_day_activity=True)

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_engine(folder: Path | str, mapping: Path | None, client: object | None = None) -> EventEngine:
    """The engine of a run: DuckDB on this machine, or the Dask cluster of `client` when one is given.
    A database (`--events postgresql://...`) is read on this machine only."""
    if client is None:
        return LocalEvents(folder, mapping)
    refuse_database_on_dask(folder)
    from .cluster import DaskEvents  # Dask is imported only for a cluster run

    return DaskEvents(Path(folder), mapping, client=client)


def refuse_database_on_dask(events: object) -> None:
    """The workers of a cluster read files at a shared path; a database is read on this machine."""
    if is_database(events):
        raise InputError(
            "--dask: the cluster reads event tables from a folder the workers share; read a database "
            "without --dask (the events are staged on this machine)"
        )
