"""The event-table catalogue, outputs: no input is ever overwritten, and an interruption leaves nothing
behind."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from events_catalog_support import (
    BUYS,
    ENGAGE,
    FEATURES,
    LEARN,
    Case,
    both,
    case_folder,
    mapping,
    outside,
    read,
    run_case,
    sample_base,
    with_mapping,
)
from test_catalog import _snapshot
from upgrade_predictor import config

# Child processes on a sample of the real tables take minutes: run with the slow tests.
pytestmark = pytest.mark.slow

CASES = [
    # --- no input ever overwritten ---
    Case(
        "features-out-is-a-table-outside",
        [
            "features",
            "--events",
            "ev",
            "--mapping",
            "map.toml",
            "--out",
            "other/365_student_purchases.csv",
            "--force",
        ],
        2,
        r"same file as a table of the mapping",
        both(outside(BUYS), with_mapping(mapping(conversions="../other/365_student_purchases.csv"))),
    ),
    Case(
        "score-out-is-a-table-outside",
        [
            "score",
            "model.zip",
            "--events",
            "ev",
            "--mapping",
            "map.toml",
            "--out",
            "other/365_student_learning.csv",
        ],
        2,
        r"same file as a table of the mapping",
        both(outside(LEARN), with_mapping(mapping(learning="../other/365_student_learning.csv"))),
    ),
    Case(
        "score-rejects-is-a-table",
        ["score", "model.zip", "--events", "ev", "--mapping", "map.toml", "--out", "other/x.csv"],
        2,
        r"--rejects.*same file as a table",
        both(
            outside(LEARN),
            lambda d: shutil.move(d / "other" / LEARN, d / "other" / "x.rejects.csv"),
            with_mapping(mapping(learning="../other/x.rejects.csv")),
        ),
    ),
    Case(
        "drift-out-is-a-table",
        [
            "drift",
            "model.zip",
            "--events",
            "ev",
            "--mapping",
            "map.toml",
            "--out",
            "other/365_student_learning.csv",
        ],
        2,
        r"same file as a table",
        both(outside(LEARN), with_mapping(mapping(learning="../other/365_student_learning.csv"))),
    ),
    Case(
        "out-matches-a-table-glob",
        ["features", "--events", "ev", "--mapping", "map.toml", "--out", "parts/learn-new.csv"],
        2,
        r"matches the glob",
        both(lambda d: _split(d), with_mapping(mapping(learning="../parts/learn-*.csv"))),
    ),
    Case(
        "out-is-a-file-of-a-glob",
        ["features", "--events", "ev", "--mapping", "map.toml", "--out", "parts/learn-1.csv", "--force"],
        2,
        r"same file as a table|matches the glob",
        both(lambda d: _split(d), with_mapping(mapping(learning="../parts/learn-*.csv"))),
    ),
    Case("out-inside-the-events-folder", ["features", "--events", "ev", "--out", "ev/f.csv"], 2, r"inside"),
    Case(
        "out-is-the-mapping",
        ["features", "--events", "ev", "--mapping", "map.toml", "--out", "map.toml", "--force"],
        2,
        r"same file as --mapping",
        with_mapping(mapping()),
    ),
    Case(
        "audit-is-a-table",
        [
            "features",
            "--events",
            "ev",
            "--mapping",
            "map.toml",
            "--out",
            "f.csv",
            "--audit",
            "other/365_student_purchases.csv",
        ],
        2,
        r"--audit.*same file as a table",
        both(outside(BUYS), with_mapping(mapping(conversions="../other/365_student_purchases.csv"))),
    ),
    Case(
        "audit-without-events",
        ["score", "model.zip", "notes.txt", "--out", "s.csv", "--audit", "a.json"],
        2,
        r"--audit.*--events",
    ),
    Case("out-exists-without-force", FEATURES, 2, r"already exists", lambda d: (d / "f.csv").write_text("x")),
]


def _split(d: Path) -> None:
    """The learning table as two parts in parts/ (outside the events folder)."""
    (d / "parts").mkdir()
    df = read(d, LEARN)
    half = len(df) // 2
    df.iloc[:half].to_csv(d / "parts" / "learn-1.csv", index=False)
    df.iloc[half:].to_csv(d / "parts" / "learn-2.csv", index=False)
    (d / "ev" / LEARN).unlink()


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory, real_events: Path) -> Path:
    return sample_base(tmp_path_factory, real_events)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_events_catalog(case: Case, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_case(case, base, tmp_path, monkeypatch)


def test_sigterm_during_a_query_is_an_interruption(base: Path, tmp_path: Path) -> None:
    """A SIGTERM that lands inside DuckDB's reading exits 143 with nothing left behind, never 70."""
    d = case_folder(base, tmp_path)
    big = pd.concat([read(d, ENGAGE)] * 400, ignore_index=True)  # a long scan to land the signal in
    big["engagement_id"] = range(len(big))
    big.to_csv(d / "ev" / ENGAGE, index=False)
    before = _snapshot(d)
    proc = subprocess.Popen([sys.executable, "-m", "upgrade_predictor.cli", *FEATURES], cwd=d,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "duckdb" not in _maps(proc.pid):
        time.sleep(0.05)
    time.sleep(0.5)  # DuckDB loaded: the tables are being read
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == config.EXIT_TERMINATED, err
    assert "Traceback" not in err and "internal error" not in err and "SIGTERM" in err, err
    assert _snapshot(d) == before


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""
