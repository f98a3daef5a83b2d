"""Point-in-time features of (user, cutoff) rows, computed in DuckDB from an `EventSource`.

THE RULE: only events dated strictly before the cutoff count. Dates are calendar days and the order of
events within a day is unknown, so the cutoff day itself belongs to the label (conversions dated on or
after the cutoff), never to the features.

Columns, all numeric ones float32 (half the memory of float64; counts stay exact):

* user_id, cutoff; tenure_days = cutoff - registered (days);
* registered_weekday (0 = Monday): known at registration and stable over the year. The registration month
  is left out on purpose: it mostly encodes which campaign was running (winter sale, June and August
  campaigns), so a model would learn this year's calendar and meet months it never saw in training;
* the users table's attributes, as they are there (categorical as text, numeric as float64);
* per activity table A (events of days d < cutoff only):
  A_events (rows), A_<m>_sum per measure, A_active_days (distinct days), A_items (distinct items, when
  the table names an item), A_days_since_last (cutoff - last active day; NaN when never active before the
  cutoff: the only NaN besides missing attributes), A_events_last<w>d and A_<m>_last<w>d per window w
  (days in [cutoff - w, cutoff)), A_first_day_events and A_first_day_<m> (activity dated on the
  registration day; 0 until the cutoff is past it), and A_trend = events in the last 7 days minus the
  events of the 21 days before (days [cutoff - 28, cutoff - 7)) scaled to 7 days (x 7/21): positive when
  the last week is busier than the three weeks before. The 21-day window is fixed, so for users younger
  than 28 days it includes days before registration, which count as inactivity.

Events dated before a user's registration (kept by the source with their own date) count like any other
event before the cutoff; they are not on the registration day. Refused with an InputError: a cutoff after
data_end + 1 day (days without data would read as inactivity) and a user_id not in the users table.

How: the rows go into a temp table; one SQL statement per activity table joins it to the events
(`day < cutoff`), sums them per (row, day), and aggregates the days per row with FILTER clauses, returning
only rows with activity (a second one counts distinct items); NumPy puts those values at their rows (0, or
NaN for days_since_last, elsewhere). This avoids one wide join and sort of every feature column in
DuckDB, which cost more than the aggregation itself.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from upgrade_predictor import config
from upgrade_predictor.errors import InputError
from upgrade_predictor.sources.engine_errors import engine_errors
from upgrade_predictor.sources.event_mapping import ActivityTable
from upgrade_predictor.sources.event_staging import KEPT, ident
from upgrade_predictor.sources.events import EventSource

DEFAULT_WINDOWS = (1, 7, 28)
AGE = "d.age"  # days from an active day to the cutoff: 1 = the day before
TREND_RECENT, TREND_BEFORE = 7, 21
_ids = itertools.count()


@dataclass(frozen=True)
class _Column:
    name: str
    sql: str  # an aggregate over d: the active days of one row (age, first_day, n, s0..)
    fill: float  # the value of rows without any activity before their cutoff


def _check_windows(windows: tuple[int, ...]) -> tuple[int, ...]:
    ok = all(isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w >= 1 for w in windows)
    if not windows or not ok or len(set(windows)) < len(windows):
        raise InputError(f"windows must be distinct whole numbers of days >= 1, got {windows}")
    return tuple(int(w) for w in windows)


def _columns(a: ActivityTable, windows: tuple[int, ...]) -> list[_Column]:
    """The feature columns of one activity table, in output order (items excluded: another statement)."""
    p, sums = a.name, [(m, f"d.s{i}") for i, m in enumerate(a.measures)]
    cols = [_Column(f"{p}_events", "sum(d.n)", 0.0)]
    cols += [_Column(f"{p}_{m}_sum", f"sum({s})", 0.0) for m, s in sums]
    cols.append(_Column(f"{p}_active_days", "count(*)", 0.0))
    cols.append(_Column(f"{p}_days_since_last", f"min({AGE})", np.nan))
    for w in windows:
        cols.append(_Column(f"{p}_events_last{w}d", f"sum(d.n) FILTER ({AGE} <= {w})", 0.0))
        cols += [_Column(f"{p}_{m}_last{w}d", f"sum({s}) FILTER ({AGE} <= {w})", 0.0) for m, s in sums]
    cols.append(_Column(f"{p}_first_day_events", "sum(d.n) FILTER (d.first_day)", 0.0))
    cols += [_Column(f"{p}_first_day_{m}", f"sum({s}) FILTER (d.first_day)", 0.0) for m, s in sums]
    recent, before = TREND_RECENT, TREND_RECENT + TREND_BEFORE
    trend = (
        f"COALESCE(sum(d.n) FILTER ({AGE} <= {recent}), 0) - "
        f"COALESCE(sum(d.n) FILTER ({AGE} > {recent} AND {AGE} <= {before}), 0) * {recent}.0 / {TREND_BEFORE}"
    )
    cols.append(_Column(f"{p}_trend", trend, 0.0))  # fmt: skip
    return cols


def _scatter(
    source: EventSource, sql: str, cols: list[_Column], block: np.ndarray, at: dict[str, int]
) -> None:
    """Run an aggregate returning (_row, one column per `cols`) and place its values in `block`.

    Rows the aggregate does not return (no activity before their cutoff) get each column's fill value.
    """
    table = source.con.sql(sql).to_arrow_table()
    assert table is not None
    rows = table.column("_row").to_numpy()
    for c in cols:
        values = table.column(c.name).to_numpy(zero_copy_only=False).astype(np.float32)
        out = block[at[c.name]]
        out[:] = c.fill
        out[rows] = values if np.isnan(c.fill) else np.nan_to_num(values, nan=c.fill)


def _compute(
    source: EventSource, rows: str, lo: int, hi: int, last: date, windows: tuple[int, ...]
) -> pd.DataFrame:
    """Features of rows lo..hi-1 of temp table `rows` (_row 0..n-1, uid, cutoff DATE, registered)."""
    attrs = "".join(
        f", CAST(u.{ident(a.column)} AS DOUBLE) AS {ident(a.column)}" if a.kind == "numeric"
        else f", u.{ident(a.column)}"
        for a in source.attributes
    )  # fmt: skip
    span = f"r._row >= {int(lo)} AND r._row < {int(hi)}"
    base = source.con.sql(
        f"SELECT u.user_id, r.cutoff, CAST(r.cutoff - r.registered AS FLOAT) AS tenure_days, "
        f"CAST(isodow(r.registered) - 1 AS FLOAT) AS registered_weekday{attrs} "
        f"FROM {rows} r JOIN _users u USING (uid) WHERE {span} ORDER BY r._row"
    ).to_arrow_table()
    assert base is not None
    frame = base.to_pandas(date_as_object=False)
    frame["cutoff"] = pd.to_datetime(frame["cutoff"]).astype("datetime64[ns]")
    frame["user_id"] = frame["user_id"].astype(str)
    order = [c for a in source.mapping.activities for c in _output_order(a, windows)]
    # One float32 (features x rows) block filled in place: the frame is then built on it without a copy,
    # at half the memory of float64 (counts stay exact to 16M; sums keep 7 significant digits).
    block, at = np.empty((len(order), hi - lo), dtype=np.float32), {name: j for j, name in enumerate(order)}
    bound = f"DATE '{last.isoformat()}'"
    for a in source.mapping.activities:
        events = ident(f"_ev_{a.name}")
        # The events of each row before its cutoff (a constant bound lets the scan skip later days).
        joined = (f"FROM {rows} r JOIN {events} e ON e.uid = r.uid AND e.day < r.cutoff "
                  f"WHERE {span} AND e.day < {bound} AND e.__reason = {KEPT}")  # fmt: skip
        # Every feature is a function of whole days, so events are summed per (row, day) first: exact, and
        # the per-row aggregates with their FILTERs then run over days instead of events.
        sums = "".join(f", sum(e.__m{i}) AS s{i}" for i in range(len(a.measures)))
        days = (f"SELECT r._row, any_value(r.cutoff - e.day) AS age, "
                f"any_value(e.day = r.registered) AS first_day, count(*) AS n{sums} {joined} "
                "GROUP BY r._row, e.day")  # fmt: skip
        cols = _columns(a, windows)
        select = ", ".join(f"{c.sql} AS {ident(c.name)}" for c in cols)
        sql = f"SELECT d._row - {int(lo)} AS _row, {select} FROM ({days}) d GROUP BY d._row"
        _scatter(source, sql, cols, block, at)
        if a.item:
            items = f"SELECT DISTINCT r._row, e.__item {joined} AND e.__item IS NOT NULL"
            name = f"{a.name}_items"
            sql = f"SELECT _row - {int(lo)} AS _row, count(*) AS {ident(name)} FROM ({items}) GROUP BY _row"
            _scatter(source, sql, [_Column(name, "", 0.0)], block, at)
    features = pd.DataFrame(block.T, columns=order, copy=False)
    return pd.concat([frame, features], axis=1)


def _output_order(a: ActivityTable, windows: tuple[int, ...]) -> list[str]:
    names = [c.name for c in _columns(a, windows)]
    if a.item:
        names.insert(names.index(f"{a.name}_active_days") + 1, f"{a.name}_items")
    return names


def _check_cutoffs(source: EventSource, last: date) -> None:
    if last > source.data_end + timedelta(days=1):
        raise InputError(
            f"cutoff {last} is after the data ends ({source.data_end}); days without data would count as "
            f"inactivity, so use a cutoff no later than {source.data_end + timedelta(days=1)}"
        )


@contextlib.contextmanager
def _staged(source: EventSource, rows_sql: str) -> Iterator[tuple[str, int, date]]:
    """The rows `rows_sql` yields (_row 0..n-1, uid, cutoff DATE) as a temp table: its name, size, last cutoff."""
    rows = f"__rows_{next(_ids)}"
    source.con.execute(f"CREATE TEMP TABLE {rows} AS SELECT q._row, q.uid, q.cutoff, u.registered "
                       f"FROM ({rows_sql}) q JOIN _users u USING (uid)")  # fmt: skip
    try:
        n, last = source.con.execute(f"SELECT count(*), max(cutoff) FROM {rows}").fetchall()[0]
        yield rows, int(n), last or source.data_end
    finally:
        source.con.execute(f"DROP TABLE {rows}")


def _chunks(
    source: EventSource, rows_sql: str, windows: tuple[int, ...], size: int
) -> Iterator[pd.DataFrame]:
    """Features of the rows `rows_sql` yields, `size` rows at a time in _row order (at least one frame)."""
    with engine_errors("the event features"), _staged(source, rows_sql) as (rows, n, last):
        for lo in range(0, max(n, 1), size):
            yield _compute(source, rows, lo, min(n, lo + size), last, windows)


def _run(source: EventSource, rows_sql: str, windows: tuple[int, ...]) -> pd.DataFrame:
    """Features of the rows `rows_sql` yields, in _row order, in one frame (built chunk by chunk)."""
    parts = list(_chunks(source, rows_sql, windows, config.FEATURE_CHUNK_ROWS))
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def point_in_time_features(
    source: EventSource, rows: pd.DataFrame, windows: tuple[int, ...] = DEFAULT_WINDOWS
) -> pd.DataFrame:
    """Features of each (user_id, cutoff) row from events dated before its cutoff; same rows, same order."""
    windows = _check_windows(windows)
    missing = [c for c in ("user_id", "cutoff") if c not in rows.columns]
    if missing:
        raise InputError(f"rows need the columns user_id and cutoff; `{missing[0]}` is missing")
    try:
        cutoff = pd.to_datetime(rows["cutoff"]).dt.floor("D")  # as_dates: a time of day is dropped
    except (ValueError, TypeError) as exc:
        raise InputError(f"rows.cutoff holds a value that is not a date ({exc}); fix the rows") from None
    bad = rows["user_id"].isna() | cutoff.isna()
    if bad.any():
        raise InputError(f"rows: user_id or cutoff is empty at row {int(bad.to_numpy().argmax())}; fill it")
    frame = pd.DataFrame({"_row": np.arange(len(rows)), "user_id": rows["user_id"].astype(str).to_numpy(),
                          "cutoff": cutoff.to_numpy().astype("datetime64[D]")})  # fmt: skip
    if len(frame):
        _check_cutoffs(source, frame["cutoff"].max().date())
    name = f"__input_{next(_ids)}"
    source.con.register(name, frame)
    try:
        with engine_errors("the event features"):
            first, count = source.con.execute(
                f"SELECT min(user_id), count(*) FROM {name} ANTI JOIN _users USING (user_id)"
            ).fetchall()[0]
        if count:
            raise InputError(f"rows name {count:,} users that are not in the users table (first: {first}); "
                             "features need a registered user")  # fmt: skip
        rows_sql = (
            f"SELECT q._row, u.uid, CAST(q.cutoff AS DATE) AS cutoff "
            f"FROM {name} q JOIN _users u USING (user_id)"
        )
        return _run(source, rows_sql, windows)
    finally:
        source.con.unregister(name)


def _free_on(source: EventSource, as_of: date, windows: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    windows = _check_windows(windows)
    as_of = pd.Timestamp(as_of).date()
    _check_cutoffs(source, as_of)
    d = f"DATE '{as_of.isoformat()}'"  # an isoformat date, not user text
    rows_sql = (
        f"SELECT row_number() OVER (ORDER BY u.uid) - 1 AS _row, u.uid, {d} AS cutoff "
        f"FROM _users u LEFT JOIN _conv c USING (uid) "
        f"WHERE u.registered <= {d} AND (c.converted IS NULL OR c.converted >= {d})"
    )
    return rows_sql, windows


def features_as_of(
    source: EventSource, as_of: date, windows: tuple[int, ...] = DEFAULT_WINDOWS
) -> pd.DataFrame:
    """Features on `as_of` of every user registered on or before it and not converted before it.

    A conversion dated `as_of` itself still leaves the user free: same-day order is unknown, so that
    conversion belongs to the label. Rows follow the users' ids (in number order when ids are numbers).
    """
    return _run(source, *_free_on(source, as_of, windows))


def features_as_of_chunks(
    source: EventSource,
    as_of: date,
    windows: tuple[int, ...] = DEFAULT_WINDOWS,
    size: int | None = None,
) -> Iterator[pd.DataFrame]:
    """`features_as_of` a chunk of at most `size` users at a time (default config.FEATURE_CHUNK_ROWS), in the
    same order: memory stays bounded by the chunk, not by the number of free users."""
    rows_sql, windows = _free_on(source, as_of, windows)
    return _chunks(source, rows_sql, windows, size or config.FEATURE_CHUNK_ROWS)


def feature_names(source: EventSource, windows: tuple[int, ...] = DEFAULT_WINDOWS) -> list[str]:
    """The feature columns (everything but user_id and cutoff) these functions return for `source`."""
    empty = point_in_time_features(source, pd.DataFrame({"user_id": [], "cutoff": []}), windows)
    return [c for c in empty.columns if c not in ("user_id", "cutoff")]
