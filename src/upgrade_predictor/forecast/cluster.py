"""Point-in-time features of event tables beyond one machine: `DaskEvents`, the cluster `EventEngine`.

Every mapped table is read by Dask (the columns the mapping needs, plus a digest of the others: exact
duplicates compare every column) and shuffled by Dask on a partition number hashed from the user's id as
staging compares it (`sources.event_parts.partition_of`), so a user's rows of every table meet in partition k.
The shuffled partitions stay in the cluster's memory. Each call runs one task per partition on a worker:
it writes partition k of every table as Parquet into a worker-local temp folder, opens an `EventSource` on
it (the single-machine DuckDB code) and runs the single-machine function. Cleaning is per user, so the
partitions' audits add up to the whole extract's; a key that leaves out the id is checked on the cluster
not to be shared by different users (there cleaning would not be per user).

A first round gathers the partitions' audits and users; the merged last day is then every partition's
`data_end` (features check their cutoffs against it), and the users' global order (their key order, as
the embedded engine numbers them) puts the partitions' rows back in the order `LocalEvents` gives.
"""

from __future__ import annotations

import contextlib
import logging
import math
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..files import write_atomic
from ..parallel import connect
from ..sources.event_audit import EventAudit, merge_audits
from ..sources.event_mapping import Attribute, EventMapping, UsersTable, resolve_mapping
from ..sources.event_parts import (
    PART,
    PartTable,
    key_owners,
    open_part,
    part_mapping,
    part_table,
    prepare_part,
    read_part_table,
)
from ..sources.event_staging import INTEGER_TYPES, ident, one_row, scan_sql, table_files
from ..sources.events import EventSource
from ..sources.messages import error_line
from .engine import LocalEvents
from .features import DEFAULT_WINDOWS, features_as_of, point_in_time_features

if TYPE_CHECKING:
    from typing_extensions import Self

USERS_PER_PARTITION = 250_000  # one task stages a partition of every table in DuckDB on one worker
BYTES_PER_PARTITION = 256 * 2**20  # of input files (a gzipped CSV counts its compressed bytes)
UID = "__uid"  # the users' place in key order, named apart from any feature


@dataclass(frozen=True)
class _Job:
    """What each partition task needs: the partition's mapping, the tables' Parquet schemas (in mapping
    order) and the extract's last day (None in the first round)."""

    mapping: EventMapping
    schemas: tuple[pa.Schema, ...]
    data_end: date | None = None


@dataclass(frozen=True)
class _PartInfo:
    """The first round's answer of one partition."""

    audit: EventAudit
    users: pd.DataFrame  # users_frame() of the partition
    integer_ids: bool  # ids compared as numbers (their key order is number order)
    kinds: tuple[str, ...]  # the attributes' kinds as this partition infers them
    filled: tuple[bool, ...]  # whether the partition holds a non-empty cell of each attribute


class DaskEvents:
    """The cluster engine: the same users, audit and features as `LocalEvents` on the same folder.

    Give a connected `client` or an `address` ("local": a 2-worker cluster on this machine); every worker
    must read the data folder at the same path. `partitions` overrides the number of user partitions
    (default: at most USERS_PER_PARTITION users and BYTES_PER_PARTITION bytes each, one per worker at least).
    """

    def __init__(
        self,
        folder: Path,
        mapping: Path | None = None,
        *,
        client: Any = None,
        address: str | None = None,
        partitions: int | None = None,
    ) -> None:
        self._stack = contextlib.ExitStack()
        self._persisted: Any = None
        self._parts: list[tuple[Any, ...]] = []  # per partition: its Delayed part of every table
        self._uids: list[Any] = []  # per partition: futures of its users' order (Series by user_id)
        try:
            self.folder = Path(folder)
            self.mapping = resolve_mapping(self.folder, mapping)
            self.client: Any = client
            if client is None:
                self.client = self._stack.enter_context(connect(address or "local"))
            logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)  # each shuffle logs a warning
            tables = [part_table(self.folder, t) for t in self.mapping.tables()]
            if partitions is not None and partitions < 1:
                raise InputError(f"partitions {partitions}: give a whole number of at least 1")
            with self._read_errors():
                self.partitions = partitions or self._default_partitions(tables)
                self._shuffle(tables)
                self._first_round()
        except BaseException:
            self.close()
            raise

    def _default_partitions(self, tables: list[PartTable]) -> int:
        size = sum(Path(f).stat().st_size for t in tables for f in t.files)
        users = int(self.client.compute(read_part_table(tables[0]).shape[0], sync=True))
        workers = len(self.client.scheduler_info()["workers"])
        return max(1, workers, math.ceil(users / USERS_PER_PARTITION), math.ceil(size / BYTES_PER_PARTITION))

    def _shuffle(self, tables: list[PartTable]) -> None:
        """Read and shuffle every table into the user partitions, kept in the cluster's memory."""
        k = self.partitions
        shuffled, schemas = [], []
        for t in tables:
            raw = read_part_table(t)
            rest = tuple(c for c in raw.columns if c not in t.columns)
            ready = raw.map_partitions(prepare_part, t, rest, k)
            schemas.append(pa.Schema.from_pandas(ready._meta.drop(columns=PART), preserve_index=False))
            # Divisions 0, 1, ..., k: partition i holds exactly the rows whose partition number is i.
            shuffled.append(ready.set_index(PART, divisions=list(range(k + 1))))
        self._persisted = self.client.persist(shuffled)
        parts = [p.to_delayed() for p in self._persisted]
        assert all(len(p) == k for p in parts)
        self._parts = [tuple(p[i] for p in parts) for i in range(k)]
        self._check_keys(tables)
        self._job = _Job(part_mapping(self.mapping), tuple(schemas))

    def _check_keys(self, tables: list[PartTable]) -> None:
        """Refuse a key that leaves out the id and is shared by rows of different users: the embedded
        engine keeps one row of such a key across users, while each partition cleans its users apart."""
        checks = [(t, self._persisted[i]) for i, t in enumerate(tables) if t.shared_key]
        owners = [f.map_partitions(key_owners, t).groupby("key")["owner"].agg(["min", "max"], split_out=True)
                  for t, f in checks]  # fmt: skip
        counts = self.client.compute([(o["min"] != o["max"]).sum() for o in owners], sync=True)
        for (t, _), n in zip(checks, counts):
            if n:
                raise InputError(
                    f"{t.where}: {int(n):,} values of its key ({', '.join(t.shared_key)}) are shared by rows "
                    "of different users; on a cluster each user's rows are cleaned apart, so give a key that "
                    f"includes the id `{t.id}` in the mapping, or read the tables without --dask"
                )

    def _first_round(self) -> None:
        """Audits and users of every partition; the attributes' kinds as the whole users table infers them."""
        infos: list[_PartInfo] = self._map(_info, [None] * self.partitions)
        kinds = _kinds(self.mapping.users, infos)
        self._job = replace(self._job, mapping=part_mapping(self.mapping, kinds))
        if any(i.kinds != kinds for i in infos):  # a partition inferred a kind the whole table does not
            infos = self._map(_info, [None] * self.partitions)
        self.attributes = tuple(Attribute(a.column, k) for a, k in zip(self.mapping.users.attributes, kinds))
        self.audit = merge_audits([i.audit for i in infos], self.folder, self.mapping)
        if self.audit.users == 0:
            raise InputError(
                f"users table {self.mapping.users.file}: no user has both an id and a registration date; "
                "check the file and mapping"
            )
        self.data_end: date = self.audit.data_end
        self._job = replace(self._job, data_end=self.data_end)
        users = pd.concat([i.users.assign(**{PART: k}) for k, i in enumerate(infos)], ignore_index=True)
        users[UID] = _key_order(users["user_id"], infos[0].integer_ids)
        self._users = users
        self._part_of = pd.Series(users[PART].to_numpy(), index=users["user_id"].to_numpy())
        # Each partition's users and their global order, sent once to the workers.
        uids = [users.loc[users[PART] == k, ["user_id", UID]] for k in range(self.partitions)]
        self._uids = self.client.scatter([pd.Series(u[UID].to_numpy(), index=u["user_id"]) for u in uids])

    @contextlib.contextmanager
    def _read_errors(self) -> Iterator[None]:
        """A table a worker cannot parse becomes one readable input error."""
        try:
            yield
        except (pd.errors.ParserError, pd.errors.EmptyDataError, pa.ArrowInvalid, UnicodeDecodeError) as e:
            raise InputError(f"{self.folder}: an event table cannot be read ({error_line(e)})") from None

    def _tasks(self, run: Callable[[EventSource, Any], Any], args: dict[int, Any]) -> list[Any]:
        """Futures of run(source of partition k, args[k]) on the workers, in the order of `args`."""
        import dask

        task = dask.delayed(_on_part, pure=False)
        return list(self.client.compute([task(self._job, self._parts[k], run, a) for k, a in args.items()]))

    def _map(self, run: Callable[[EventSource, Any], Any], args: list[Any]) -> list[Any]:
        return list(self.client.gather(self._tasks(run, dict(enumerate(args)))))

    # ------------------------------------------------------------------------------------- the engine

    def users_frame(self) -> pd.DataFrame:
        """user_id, registered, first_upgrade (NaT if none), then the attributes; one row per user."""
        users = self._users.sort_values(["registered", UID], kind="stable")
        return users.drop(columns=[PART, UID]).reset_index(drop=True)

    def features_at(self, rows: pd.DataFrame, windows: tuple[int, ...] = DEFAULT_WINDOWS) -> pd.DataFrame:
        """Features of each (user_id, cutoff) row, computed in its user's partition; in the rows' order."""
        frame = _checked_rows(rows, self.data_end)
        part = self._part_of.reindex(frame["user_id"].to_numpy()).to_numpy()
        unknown = pd.isna(part)
        if unknown.any():
            raise InputError(
                f"rows name {int(unknown.sum()):,} users that are not in the users table (first: "
                f"{frame['user_id'][unknown].min()}); features need a registered user"
            )
        part = part.astype(np.int64)
        at = {int(k): np.flatnonzero(part == k) for k in np.unique(part)} or {0: np.arange(0)}
        args = {k: (frame.iloc[idx].reset_index(drop=True), windows) for k, idx in at.items()}
        out: pd.DataFrame = pd.concat(self.client.gather(self._tasks(_features_at, args)), ignore_index=True)
        return out.iloc[np.argsort(np.concatenate(list(at.values())), kind="stable")].reset_index(drop=True)

    def features_on(self, day: date, windows: tuple[int, ...] = DEFAULT_WINDOWS) -> pd.DataFrame:
        """Features on `day` of every user registered by then and still free, in the users' key order."""
        out = pd.concat(self._map(_features_on, [(day, windows, u) for u in self._uids]), ignore_index=True)
        out = out.iloc[np.argsort(out[UID].to_numpy(), kind="stable")]
        return out.drop(columns=UID).reset_index(drop=True)

    def features_on_chunks(
        self, day: date, windows: tuple[int, ...] = DEFAULT_WINDOWS
    ) -> Iterator[pd.DataFrame]:
        """The rows of `features_on`, one ordered partition (a range of users) at a time; at least one."""
        parts = self._ordered(day, windows).to_delayed()
        empty = True
        for i, p in enumerate(parts):
            frame = self.client.compute(p, sync=True).reset_index(drop=True)
            if len(frame) or (empty and i == len(parts) - 1):
                empty = False
                yield frame

    def write_features_on(
        self, day: date, folder: Path, windows: tuple[int, ...] = DEFAULT_WINDOWS, drop: tuple[str, ...] = ()
    ) -> int:
        """The rows of `features_on` less the `drop` columns, written on the workers into `folder` as one
        Parquet part per ordered partition (part-00000.parquet ...: name order is row order); rows written."""
        import dask

        write = dask.delayed(_write_part, pure=False)
        parts = self._ordered(day, windows).to_delayed()
        tasks = [write(p, str(folder / f"part-{i:05d}.parquet"), drop) for i, p in enumerate(parts)]
        return int(sum(self.client.compute(tasks, sync=True)))

    def _ordered(self, day: date, windows: tuple[int, ...]) -> Any:
        """The rows of `features_on` as a Dask dataframe in the cluster's memory, put in the users' order
        by a Dask shuffle."""
        import dask.dataframe as dd

        futures = self._tasks(_features_on, {k: (day, windows, u) for k, u in enumerate(self._uids)})
        meta = self.client.submit(_empty, futures[0]).result()
        n = len(self._users)
        divisions = sorted({int(x) for x in np.linspace(1, n + 1, self.partitions + 1)})
        ddf = dd.from_delayed(futures, meta=meta, verify_meta=False)
        return self.client.persist(ddf.set_index(UID, divisions=divisions))  # before `futures` are released

    def first_day_activity(self) -> pd.DataFrame:
        """user_id of every user active on the registration day, with first_day_activity = True."""
        return pd.concat(self._map(_first_day, [None] * self.partitions), ignore_index=True)

    def close(self) -> None:
        self._persisted, self._parts, self._uids = None, [], []  # the cluster frees what nothing holds
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kinds(users: UsersTable, infos: list[_PartInfo]) -> tuple[str, ...]:
    """Each attribute's kind as the whole users table infers it: numeric when every partition holding a
    value infers numeric (a partition without any value says nothing, unless none holds one)."""
    kinds = []
    for i, a in enumerate(users.attributes):
        said = [p.kinds[i] for p in infos if p.filled[i]] or [infos[0].kinds[i]]
        kinds.append(a.kind or ("numeric" if all(k == "numeric" for k in said) else "categorical"))
    return tuple(kinds)


def _key_order(user_id: pd.Series, integer: bool) -> np.ndarray:
    """Each user's place (1, 2, ...) in key order, as the embedded engine numbers them: numbers for integer
    ids, text (code point order) otherwise."""
    keys: np.ndarray = user_id.to_numpy(dtype=object)
    if integer:
        try:
            keys = user_id.astype(np.int64).to_numpy()
        except (OverflowError, ValueError):  # beyond 64 bits: Python integers
            keys = np.array([int(x) for x in keys], dtype=object)
    order = np.empty(len(keys), dtype=np.int64)
    order[np.argsort(keys, kind="stable")] = np.arange(1, len(keys) + 1)
    return order


def _checked_rows(rows: pd.DataFrame, data_end: date) -> pd.DataFrame:
    """(user_id, cutoff) rows as point_in_time_features checks them, checked on the whole input at once."""
    missing = [c for c in ("user_id", "cutoff") if c not in rows.columns]
    if missing:
        raise InputError(f"rows need the columns user_id and cutoff; `{missing[0]}` is missing")
    try:
        cutoff = pd.to_datetime(rows["cutoff"]).dt.floor("D")
    except (ValueError, TypeError) as exc:
        raise InputError(f"rows.cutoff holds a value that is not a date ({exc}); fix the rows") from None
    bad = rows["user_id"].isna() | cutoff.isna()
    if bad.any():
        raise InputError(f"rows: user_id or cutoff is empty at row {int(bad.to_numpy().argmax())}; fill it")
    frame = pd.DataFrame({"user_id": rows["user_id"].astype(str).to_numpy(), "cutoff": cutoff.to_numpy()})
    last = frame["cutoff"].max().date() if len(frame) else data_end
    if last > data_end + timedelta(days=1):
        raise InputError(
            f"cutoff {last} is after the data ends ({data_end}); days without data would count as "
            f"inactivity, so use a cutoff no later than {data_end + timedelta(days=1)}"
        )
    return frame


# ------------------------------------------------------------------------------------ on a worker


def _on_part(
    job: _Job, frames: tuple[pd.DataFrame, ...], run: Callable[[EventSource, Any], Any], arg: Any
) -> Any:
    """run(source, arg) on the EventSource of one partition's tables."""
    with open_part(frames, job.schemas, job.mapping, job.data_end) as source:
        return run(source, arg)


def _info(source: EventSource, _: None) -> _PartInfo:
    key_type = dict(source.con.execute("SELECT column_name, column_type FROM (DESCRIBE _users)").fetchall())
    attrs = source.attributes
    filled = (False,) * len(attrs)
    if attrs:
        scan = scan_sql(*table_files(source.folder, source.mapping.users.file, "users"))
        counts = one_row(source.con, "SELECT " + ", ".join(f"count({ident(a.column)})" for a in attrs) +
                         f" FROM {scan}")  # fmt: skip
        filled = tuple(bool(n) for n in counts)
    integer = str(key_type["_key"]).upper().startswith(INTEGER_TYPES)
    return _PartInfo(source.audit, source.users_frame(), integer, tuple(str(a.kind) for a in attrs), filled)


def _features_at(source: EventSource, arg: tuple[pd.DataFrame, tuple[int, ...]]) -> pd.DataFrame:
    return point_in_time_features(source, *arg)


def _features_on(source: EventSource, arg: tuple[date, tuple[int, ...], pd.Series]) -> pd.DataFrame:
    day, windows, uids = arg
    frame = features_as_of(source, day, windows)
    return frame.assign(**{UID: uids.reindex(frame["user_id"].to_numpy()).to_numpy(dtype=np.int64)})


def _first_day(source: EventSource, _: None) -> pd.DataFrame:
    # The embedded engine's own query, on this partition's source (it reads only .source and .mapping).
    engine = types.SimpleNamespace(source=source, mapping=source.mapping)
    return LocalEvents.first_day_activity(cast(LocalEvents, engine))


def _empty(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.head(0)


def _write_part(frame: pd.DataFrame, path: str, drop: tuple[str, ...]) -> int:
    table = pa.Table.from_pandas(frame.reset_index(drop=True).drop(columns=list(drop)), preserve_index=False)
    write_atomic(Path(path), lambda f: pq.write_table(table, f))
    return table.num_rows
