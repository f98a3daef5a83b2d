"""Point-in-time features on a large event log: DuckDB (`features_as_of`) against plain pandas.

    .venv/bin/python benchmarks/bench_events.py [--users 1000000] [--events 26000000] [--out DIR]

Builds an event log resampled from the real 365 tables: users drawn with replacement (weighted towards
active users so the log reaches --events activity rows), given new ids, and shifted forward in time by a
random number of days (at most to the real end, 2022-08-31) together with all their events and purchases;
what a shift carries past the end is the clone's future and is left out, as an export leaves out what has
not happened yet. Shifting back instead would end each clone's real history before the log does: days of
no activity and no purchase that no real user had, which a forecast of the last weeks then over-counts.
It is written as Parquet with the 365 file names, so the built-in mapping reads it.

Then, each in its own child process (peak resident memory measured alone, from the child's own
getrusage): the DuckDB path (open the source: read, clean and audit every table; then `features_as_of`)
and a straightforward pandas version of the same cleaning and features. The engines alternate for
--runs rounds and each one's fastest run is reported: wall seconds (read+clean and features separately),
CPU seconds, peak memory, the ratios, and a comparison of both outputs on a sample of users.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from upgrade_predictor import config
from upgrade_predictor.sources.event_mapping import builtin_mapping

OUT = Path(__file__).resolve().parent / "out" / "events"
REAL = (config.PROJECT_ROOT / ".." / "shared" / "data" / "365_events").resolve()
REAL_END = "2022-08-31"  # the real tables' last day: a clone's events are never shifted past it
ROW_IDS = {"365_student_purchases": "purchase_id", "365_student_engagement": "engagement_id",
           "365_student_exams": "exam_attempt_id",
           "365_student_hub_questions": "hub_question_id"}  # fmt: skip
DATES = {"date_registered", "date_purchased", "date_watched", "date_engaged", "date_exam_completed",
         "date_question_asked", "date_rated"}  # fmt: skip


def read_real(stem: str) -> pd.DataFrame:
    frame = pd.read_csv(REAL / f"{stem}.csv", keep_default_na=False, na_values=[""])
    for col in DATES & set(frame.columns):
        frame[col] = pd.to_datetime(frame[col])
    return frame


def make_data(out: Path, users: int, events: int, seed: int = 0) -> Path:
    """Write the resampled log under `out` (reused when it exists with the same size)."""
    folder = out / f"u{users}_e{events}_s{seed}_forward"  # logs shifted back (before) are not reused
    if (folder / "_done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    stems = [Path(t.file).stem for t in builtin_mapping().tables()]
    real = {s: read_real(s) for s in stems}
    info = real["365_student_info"]
    per_user = pd.Series(0.0, index=info["student_id"])
    for a in builtin_mapping().activities:
        per_user = per_user.add(real[Path(a.file).stem]["student_id"].value_counts(), fill_value=0)
    x = per_user.to_numpy()
    # Draw users with weight x + c: the mean of x under that weight is (E[x^2] + c E[x]) / (E[x] + c).
    target = events / users
    c = (np.mean(x**2) - target * x.mean()) / (target - x.mean()) if target > x.mean() else np.inf
    weights = np.ones_like(x) if np.isinf(c) else x + c
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(info), size=users, p=weights / weights.sum())
    reg = info["date_registered"].to_numpy()[pick]
    room = (np.datetime64(REAL_END) - reg).astype("timedelta64[D]").astype(int)
    clones = pd.DataFrame({"new_id": np.arange(1, users + 1, dtype=np.int64),
                           "student_id": info["student_id"].to_numpy()[pick],
                           "shift": pd.to_timedelta(rng.integers(0, room + 1), unit="D")})  # fmt: skip
    for stem in stems:
        table, time_col = real[stem], next(c for c in real[stem].columns if c in DATES)
        writer: pq.ParquetWriter | None = None
        next_id = 1
        for start in range(0, users, 200_000):
            part = clones.iloc[start : start + 200_000].merge(table, on="student_id")
            part[time_col] = part[time_col] + part["shift"]
            part = part[~(part[time_col] > pd.Timestamp(REAL_END))]  # the clone's future: not yet happened
            part["student_id"] = part.pop("new_id")
            part = part.drop(columns="shift")[list(table.columns)]
            if stem in ROW_IDS:
                part[ROW_IDS[stem]] = np.arange(next_id, next_id + len(part), dtype=np.int64)
                next_id += len(part)
            arrow = pa.Table.from_pandas(part, preserve_index=False)
            arrow = arrow.set_column(arrow.schema.get_field_index(time_col), time_col,
                                     arrow[time_col].cast(pa.date32()))  # fmt: skip
            writer = writer or pq.ParquetWriter(folder / f"{stem}.parquet", arrow.schema)
            writer.write_table(arrow)
        assert writer is not None
        writer.close()
    (folder / "_done").write_text("ok")
    return folder


# ------------------------------------------------------------------------------------- pandas features


def read_clean(folder: Path, stem: str, id_col: str, time_col: str, key: tuple[str, ...],
               known: pd.Index | None) -> pd.DataFrame:  # fmt: skip
    """The same cleaning rules as the event source, in pandas."""
    frame = pq.read_table(folder / f"{stem}.parquet").to_pandas(date_as_object=False)
    frame = frame.drop_duplicates()
    frame = frame.dropna(subset=[id_col, time_col])
    if key:
        frame = frame.sort_values(time_col, kind="stable").drop_duplicates(subset=list(key))
    if known is not None:
        frame = frame[frame[id_col].isin(known)]
    return frame


def pandas_features(folder: Path, as_of: date, windows: tuple[int, ...]) -> tuple[pd.DataFrame, float]:
    """features_as_of written with pandas groupby; returns the frame and the seconds spent cleaning."""
    t0 = time.perf_counter()
    m = builtin_mapping(".parquet")
    users = read_clean(folder, "365_student_info", "student_id", "date_registered", ("student_id",), None)
    users = users.set_index("student_id")
    conv = read_clean(folder, "365_student_purchases", "student_id", "date_purchased", ("purchase_id",),
                      users.index)  # fmt: skip
    acts = {a.name: read_clean(folder, Path(a.file).stem, a.id, a.time, a.key, users.index)
            for a in m.activities}  # fmt: skip
    clean_s = time.perf_counter() - t0

    cutoff = pd.Timestamp(as_of)
    first = conv.groupby("student_id")["date_purchased"].min()
    upgrade = first.reindex(users.index)
    free = users[(users["date_registered"] <= cutoff) & (upgrade.isna() | (upgrade >= cutoff))].sort_index()
    out = pd.DataFrame(index=free.index)
    out["cutoff"] = cutoff
    out["tenure_days"] = (cutoff - free["date_registered"]).dt.days.astype(float)
    out["registered_weekday"] = free["date_registered"].dt.dayofweek.astype(float)
    out["student_country"] = free["student_country"]
    for a in m.activities:
        p = a.name
        ev = acts[p].rename(columns={a.id: "user", a.time: "day"})
        ev = ev[(ev["day"] < cutoff) & ev["user"].isin(free.index)]
        ev = ev.merge(free["date_registered"], left_on="user", right_index=True)
        g = ev.groupby("user")
        cols: dict[str, pd.Series] = {f"{p}_events": g.size()}
        for meas in a.measures:
            cols[f"{p}_{meas}_sum"] = g[meas].sum()
        cols[f"{p}_active_days"] = g["day"].nunique()
        if a.item:
            cols[f"{p}_items"] = g[a.item].nunique()
        last = g["day"].max()
        for w in windows:
            recent = ev[ev["day"] >= cutoff - pd.Timedelta(days=w)].groupby("user")
            cols[f"{p}_events_last{w}d"] = recent.size()
            for meas in a.measures:
                cols[f"{p}_{meas}_last{w}d"] = recent[meas].sum()
        day1 = ev[ev["day"] == ev["date_registered"]].groupby("user")
        cols[f"{p}_first_day_events"] = day1.size()
        for meas in a.measures:
            cols[f"{p}_first_day_{meas}"] = day1[meas].sum()
        n7 = ev[ev["day"] >= cutoff - pd.Timedelta(days=7)].groupby("user").size()
        before = ev[
            (ev["day"] < cutoff - pd.Timedelta(days=7)) & (ev["day"] >= cutoff - pd.Timedelta(days=28))
        ]
        n21 = before.groupby("user").size()
        for name, series in cols.items():
            out[name] = series.reindex(out.index).fillna(0).astype(float)
        out[f"{p}_days_since_last"] = (cutoff - last.reindex(out.index)).dt.days.astype(float)
        out[f"{p}_trend"] = n7.reindex(out.index).fillna(0) - n21.reindex(out.index).fillna(0) * 7 / 21
    out.index = out.index.astype(str)
    return out.rename_axis("user_id").reset_index(), clean_s


# ----------------------------------------------------------------------------------------------- runs


def child(engine: str, folder: Path, as_of: date, sample: Path) -> None:
    """One engine, in its own process: print a JSON line with timings and this process's peak memory."""
    t0 = time.perf_counter()
    if engine == "duckdb":
        from upgrade_predictor.forecast.features import features_as_of
        from upgrade_predictor.sources.events import EventSource

        with EventSource(folder) as src:
            open_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            feats = features_as_of(src, as_of)
            feat_s = time.perf_counter() - t1
            events = sum(t.kept for t in src.audit.tables if t.name not in ("users", "conversions"))
    else:
        feats, open_s = pandas_features(folder, as_of, (1, 7, 28))
        feat_s = time.perf_counter() - t0 - open_s
        events = -1
    total = time.perf_counter() - t0
    use = resource.getrusage(resource.RUSAGE_SELF)
    ids = set(pd.read_parquet(sample)["user_id"])
    feats[feats["user_id"].isin(ids)].to_parquet(sample.with_name(f"{engine}.parquet"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"open_s": open_s, "features_s": feat_s, "total_s": total, "rows": len(feats),
                      "cpu_s": use.ru_utime + use.ru_stime, "events": events, "peak_mb": peak_mb,
                      "columns": list(feats.columns)}))  # fmt: skip


def run_child(engine: str, folder: Path, as_of: date, sample: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", engine, "--data", str(folder), "--as-of", as_of.isoformat(),
           "--sample", str(sample)]  # fmt: skip
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(sample: Path) -> tuple[int, float]:
    """Rows compared and the largest absolute difference; raises if the two outputs disagree."""
    duck = pd.read_parquet(sample.with_name("duckdb.parquet")).set_index("user_id").sort_index()
    pdf = pd.read_parquet(sample.with_name("pandas.parquet")).set_index("user_id").sort_index()
    assert list(duck.index) == list(pdf.index), "the two engines chose different users"
    pdf = pdf[duck.columns]
    assert (duck["student_country"] == pdf["student_country"]).all()
    assert (duck["cutoff"] == pdf["cutoff"]).all()
    num = duck.columns.drop(["student_country", "cutoff"])
    a, b = duck[num].to_numpy(float), pdf[num].to_numpy(float)
    assert np.allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True), "DuckDB and pandas features differ"
    return len(duck), float(np.nanmax(np.abs(a - b)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=26_000_000, help="activity rows to aim for")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--as-of", type=date.fromisoformat, default=date(2022, 7, 1))
    ap.add_argument("--compare-users", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=2, help="runs per engine; the fastest is reported")
    ap.add_argument("--child", choices=["duckdb", "pandas"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--sample", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.data, a.as_of, a.sample)
        return

    t = time.perf_counter()
    folder = make_data(a.out, a.users, a.events)
    size = sum(p.stat().st_size for p in folder.glob("*.parquet")) / 1e6
    print(f"data {folder} ({size:,.0f} MB Parquet), ready in {time.perf_counter() - t:.0f} s")
    sample = folder / "sample_ids.parquet"
    ids = np.random.default_rng(1).choice(
        np.arange(1, a.users + 1), min(a.compare_users, a.users), replace=False
    )
    pd.DataFrame({"user_id": ids.astype(str)}).to_parquet(sample)

    load = os.getloadavg()[0]
    # Alternate the engines and keep each one's fastest run: other work on the machine only adds time.
    runs: dict[str, list[dict]] = {"duckdb": [], "pandas": []}
    for _ in range(a.runs):
        for engine in runs:
            runs[engine].append(run_child(engine, folder, a.as_of, sample))
    duck, pand = (min(runs[e], key=lambda r: r["total_s"]) for e in ("duckdb", "pandas"))
    assert duck["rows"] == pand["rows"], (duck["rows"], pand["rows"])
    compared, diff = compare(sample)
    print(f"users {a.users:,}; activity events {duck['events']:,}; features_as_of({a.as_of}) rows "
          f"{duck['rows']:,} x {len(duck['columns']) - 2} features")  # fmt: skip
    for name, r in (("DuckDB", duck), ("pandas", pand)):
        print(f"{name:7s} total {r['total_s']:7.1f} s (read+clean {r['open_s']:6.1f} s, features "
              f"{r['features_s']:6.1f} s; CPU {r['cpu_s']:.1f} s), "
              f"peak RSS {r['peak_mb']:,.0f} MB")  # fmt: skip
    print(f"ratio pandas / DuckDB: total {pand['total_s'] / duck['total_s']:.1f}x, features only "
          f"{pand['features_s'] / duck['features_s']:.1f}x")  # fmt: skip
    print(f"agreement on {compared:,} sampled users: all features allclose, max |diff| {diff:.3g}")
    ratio = pand["total_s"] / duck["total_s"]
    print(
        f"bars: DuckDB >= 3x faster end to end: {'met' if ratio >= 3 else 'NOT met'} ({ratio:.1f}x); "
        f"DuckDB under 4 GB: {'met' if duck['peak_mb'] < 4096 else 'NOT met'} ({duck['peak_mb']:,.0f} MB)"
    )
    print(
        f"best of {a.runs} run(s) each; load average before / after: {load:.1f} / {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
