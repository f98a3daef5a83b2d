"""What the catalogue of awkward and hostile event tables shares: its cases, table edits, checks, sample.

Each case runs the real command line (`features`, `score --events`, `drift --events`, `train --events`)
in a child process, in a folder holding a copy of a small sample of the real event tables (ev/), an
events model and a file of the user's; the folder is compared before and after, byte for byte. A case
asserts its exit code, its message, no traceback or internal error, nothing of the user's changed and
nothing left behind but the documented outputs; cases that must be read right check the result too.
The cases live in test_events_catalog_*.py, grouped by what they try.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_cli
from test_catalog import _snapshot
from upgrade_predictor import config

USERS = 500  # users sampled from the real tables: small enough for a quick catalogue
INFO, BUYS, LEARN, ENGAGE = (
    "365_student_info.csv",
    "365_student_purchases.csv",
    "365_student_learning.csv",
    "365_student_engagement.csv",
)
TRAIN = ["train", "--events", "ev", "--out", "run", "--budget", "quick", "--families", "logreg",
         "--strategies", "none", "--no-report", "--jobs", "1"]  # fmt: skip
FEATURES = ["features", "--events", "ev", "--out", "f.csv"]
SCORE = ["score", "model.zip", "--events", "ev", "--out", "s.csv", "--no-progress"]
DRIFT = ["drift", "model.zip", "--events", "ev", "--out", "d.json"]


@dataclass
class Case:
    name: str
    args: list[str]
    code: int
    message: str  # a regular expression the output must match (case-insensitive)
    setup: Callable[[Path], None] = lambda d: None
    writes: list[str] = field(default_factory=list)  # the outputs the command may write
    check: Callable[[Path], None] | None = None  # what a case read right must give


# ------------------------------------------------------------------------------------------- table edits


def read(d: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(d / "ev" / name, dtype=str, keep_default_na=False)


def edit(name: str, change: Callable[[pd.DataFrame], pd.DataFrame | None]) -> Callable[[Path], None]:
    """Rewrite one table through `change` (a frame of text cells; it may edit in place)."""

    def setup(d: Path) -> None:
        df = read(d, name)
        out = change(df)
        (out if out is not None else df).to_csv(d / "ev" / name, index=False)

    return setup


def column(name: str, col: str, value: Callable[[str], str], rows: slice = slice(None)):
    def change(df: pd.DataFrame) -> None:
        idx = df.index[rows]
        df.loc[idx, col] = df.loc[idx, col].map(value)

    return edit(name, change)


def append(name: str, data: bytes) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        with open(d / "ev" / name, "ab") as f:
            f.write(data)

    return setup


def replace_file(name: str, data: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        path = d / "ev" / name
        path.write_bytes(data(path.read_bytes()))

    return setup


def both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        for step in steps:
            step(d)

    return setup


def last_row(name: str, row: str) -> Callable[[Path], None]:
    """A row appended after every good one: a defect the reader meets only at the end."""
    return append(name, row.encode() + b"\n")


def to_parquet(name: str, types: dict[str, pa.DataType] | None = None) -> Callable[[Path], None]:
    """The table as Parquet (same stem), its columns cast to `types`; the mapping must name it."""

    def setup(d: Path) -> None:
        df = read(d, name)
        table = pa.Table.from_pandas(df, preserve_index=False)
        for col, typ in (types or {}).items():
            arr = pa.array(pd.to_numeric(df[col]) if pa.types.is_floating(typ) or pa.types.is_integer(typ)
                           else df[col]).cast(typ)  # fmt: skip
            table = table.set_column(table.schema.get_field_index(col), col, arr)
        pq.write_table(table, d / "ev" / name.replace(".csv", ".parquet"))
        (d / "ev" / name).unlink()

    return setup


def mapping(**files: str) -> str:
    """The 365 layout as a mapping file, with some tables' files (or other keys) replaced."""
    from upgrade_predictor.sources.event_mapping import builtin_mapping

    m = builtin_mapping()
    lines = []
    for role, t in (("users", m.users), ("conversions", m.conversions)):
        lines += [f"[{role}]", f'file = "{files.get(role, t.file)}"', f'id = "{t.id}"',
                  f'time = "{files.get(role + "_time", t.time)}"']  # fmt: skip
        if role == "users":
            lines.append('attributes = ["student_country"]')
        elif t.key:
            lines.append(f"key = {json.dumps(list(t.key))}")
    for a in m.activities:
        if files.get(a.name) == "":
            continue
        lines += ["[[activity]]", f'name = "{a.name}"', f'file = "{files.get(a.name, a.file)}"',
                  f'id = "{a.id}"', f'time = "{files.get(a.name + "_time", a.time)}"',
                  f"measures = {json.dumps(list(a.measures))}", f"key = {json.dumps(list(a.key))}"]  # fmt: skip
        if a.item:
            lines.append(f'item = "{a.item}"')
    return "\n".join(lines) + "\n"


def with_mapping(text: str, name: str = "map.toml") -> Callable[[Path], None]:
    return lambda d: (d / name).write_text(text)


def outside(table: str) -> Callable[[Path], None]:
    """Move a table out of the events folder to other/, and name it there in map.toml."""

    def setup(d: Path) -> None:
        (d / "other").mkdir(exist_ok=True)
        shutil.move(d / "ev" / table, d / "other" / table)

    return setup


# ------------------------------------------------------------------------------------------------ checks


def audit_of(d: Path, name: str = "a.json") -> dict:
    return json.loads((d / name).read_text())


def table_audit(d: Path, table: str) -> dict:
    return next(t for t in audit_of(d)["tables"] if t["name"] == table)


def features_of(d: Path) -> pd.DataFrame:
    return pd.read_csv(d / "f.csv", keep_default_na=False, na_values=[""])


def expect_end(day: str) -> Callable[[Path], None]:
    """The data's end (and so the default --as-of) is `day`: a far-off outlier did not move it."""

    def check(d: Path) -> None:
        assert audit_of(d)["data_end"] == day
        f = features_of(d)
        assert f["tenure_days"].max() <= 243, "tenures run past the data"

    return check


def expect_counts(table: str, **counts: int) -> Callable[[Path], None]:
    def check(d: Path) -> None:
        t = table_audit(d, table)
        for k, v in counts.items():
            assert t[k] == v, (k, t[k], v)

    return check


def same_as_base(table: str) -> Callable[[Path], None]:
    """The table was read as the untouched copy is: every row kept, nothing left out."""

    def check(d: Path) -> None:
        t = table_audit(d, table)
        assert t["kept"] == t["rows"] > 0 and t["unknown_ids"] == 0 and t["unparseable_dates"] == 0, t

    return check


AUDIT = ["--audit", "a.json"]
F, FA = ["f.csv"], ["f.csv", "a.json"]


def one_id(d: Path) -> str:
    return read(d, INFO)["student_id"].iloc[0]


# ----------------------------------------------------------------------------------------------- sample


def sample_base(tmp_path_factory: pytest.TempPathFactory, real_events: Path) -> Path:
    """The sample folder every case copies, built once per session however many files ask for it."""
    return _built(tmp_path_factory.getbasetemp(), real_events)


# Keyed by the session's temp root: training the events model is the slow part of the sample.
@functools.cache
def _built(root: Path, real_events: Path) -> Path:
    """A sample of USERS real users with every dated table cut to them, and an events model trained on it."""
    from upgrade_predictor.api import TrainConfig, train
    from upgrade_predictor.sources.event_mapping import builtin_mapping

    d = root / "events-catalog"
    shutil.rmtree(d, ignore_errors=True)  # a build that failed half-way
    (d / "ev").mkdir(parents=True)
    info = pd.read_csv(real_events / INFO, dtype=str, keep_default_na=False)
    buyers = set(pd.read_csv(real_events / BUYS, dtype=str)["student_id"])
    # Buyers over-sampled so the model has upgrades to learn from.
    picked = pd.concat(
        [
            info[info["student_id"].isin(buyers)].sample(USERS // 4, random_state=0),
            info[~info["student_id"].isin(buyers)].sample(USERS - USERS // 4, random_state=0),
        ]
    )
    ids = set(picked["student_id"])  # fmt: skip
    for t in builtin_mapping().tables():
        df = pd.read_csv(real_events / t.file, dtype=str, keep_default_na=False)
        df[df["student_id"].isin(ids)].to_csv(d / "ev" / t.file, index=False)
    run = train(TrainConfig(events=d / "ev", out=d / "run", budget="quick", report=False, families=["logreg"],
                            strategies=["none"], horizon=14, jobs=1))  # fmt: skip
    shutil.copy(run.dir / "model.zip", d / "model.zip")
    shutil.rmtree(d / "run")
    (d / "notes.txt").write_text("the user's own file")
    return d


def case_folder(base: Path, tmp_path: Path) -> Path:
    d = tmp_path / "work"
    shutil.copytree(base, d)
    return d


def run_case(case: Case, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run one case in a copy of the sample and assert everything a case promises."""
    d = case_folder(base, tmp_path)
    case.setup(d)
    before = _snapshot(d)
    logs = tmp_path / "logs"
    monkeypatch.setenv(config.LOG_DIR_ENV, str(logs))
    result = run_cli(*case.args, cwd=d)
    output = result.stdout + result.stderr
    codes = case.code if isinstance(case.code, tuple) else (case.code,)
    assert result.returncode in codes, output
    assert re.search(case.message, output, re.IGNORECASE | re.DOTALL), output
    assert "Traceback" not in output and "internal error" not in output, output
    assert "Possible fixes" not in output and "strict_mode" not in output, (
        "the engine's dump reached the user"
    )
    assert not logs.exists(), "an internal error was logged"
    if result.returncode == 2:  # a refusal is one sentence on one line
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and len(errors[0]) < 600, result.stderr
    after = _snapshot(d)
    changed = {k for k in before if after.get(k) != before[k]}
    assert not changed, f"changed or removed: {sorted(changed)}"
    new = {k for k in after if k not in before}
    assert new == {k for k in new if k in case.writes}, f"left behind: {sorted(new - set(case.writes))}"
    if case.check is not None:
        case.check(d)
