"""Event tables read straight from PostgreSQL (`--events postgresql://...`) on a real server started for
the session (tests/postgres_support.py): the same features, scores and runs as from the CSV folder, a
read-only role that suffices and a database left unchanged, and one sentence for each failure."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_cli
from events_catalog_support import sample_base
from postgres_support import READER, READER_PASSWORD, Server, load_database
from postgres_support import postgres as postgres  # noqa: F401  (the session's server fixture)

SAMPLE = "sample"


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory, real_events: Path, postgres: Server) -> Path:
    """The catalogue's sample of real users (ev/) and its events model, loaded as database `sample`."""
    base = sample_base(tmp_path_factory, real_events)
    load_database(postgres, SAMPLE, base / "ev")
    return base


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The reader's password where libpq looks for it, and no ~/.pgpass of the machine's."""
    monkeypatch.setenv("PGPASSWORD", READER_PASSWORD)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))


def _state(server: Server, database: str) -> str:
    """Every relation of the database and every row ever written to one: what a reader must not change."""
    return server.psql(
        "SELECT string_agg(n.nspname || '.' || c.relname || ':' || c.relkind::text, ',' ORDER BY c.relname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', "
        "'information_schema', 'pg_toast'); SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM "
        "pg_stat_all_tables",
        database,
    )


def _ok(done) -> None:
    assert done.returncode == 0, done.stderr + done.stdout


def test_features_from_the_database_equal_the_folder(
    postgres: Server, real_events: Path, password: None, tmp_path: Path
) -> None:
    before = _state(postgres, "events")
    _ok(run_cli("features", "--events", postgres.url(), "--out", str(tmp_path / "db.parquet"), "--audit",
                str(tmp_path / "db.json"), "--as-of", "2022-09-01"))  # fmt: skip
    _ok(run_cli("features", "--events", str(real_events), "--out", str(tmp_path / "files.parquet"), "--audit",
                str(tmp_path / "files.json"), "--as-of", "2022-09-01"))  # fmt: skip
    db, files = (pd.read_parquet(tmp_path / f"{n}.parquet") for n in ("db", "files"))
    assert len(db) > 10_000
    pd.testing.assert_frame_equal(db, files)
    audit_db, audit_files = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("db", "files"))
    for t in audit_files["tables"]:
        t["file"] = t["file"].removesuffix(".csv")  # the folder names files, the database tables
    audit_files["notes"] = [n for n in audit_files["notes"] if not n.startswith("not used")]
    assert audit_db == audit_files
    assert _state(postgres, "events") == before  # read-only: nothing created, nothing written


def test_scores_from_the_database_equal_the_folder(
    postgres: Server, sample: Path, password: None, tmp_path: Path
) -> None:
    model = str(sample / "model.zip")
    _ok(run_cli("score", model, "--events", postgres.url(database=SAMPLE), "--out", str(tmp_path / "db.csv"),
                "--no-progress"))  # fmt: skip
    _ok(run_cli("score", model, "--events", str(sample / "ev"), "--out", str(tmp_path / "files.csv"),
                "--no-progress"))  # fmt: skip
    db, files = (pd.read_csv(tmp_path / f"{n}.csv") for n in ("db", "files"))
    assert len(db) > 100
    pd.testing.assert_frame_equal(db, files)


def test_the_read_only_role_can_create_nothing(postgres: Server) -> None:
    """What the equality tests ran as: a role that can read and cannot write, not even a temp table."""
    import adbc_driver_postgresql.dbapi as dbapi

    url = postgres.url().replace(f"{READER}@", f"{READER}:{READER_PASSWORD}@")  # the test's own connection
    with dbapi.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute('SELECT count(*) FROM "365_student_info"')
        assert cur.fetchone()[0] > 20_000
        for sql in (
            "CREATE TEMP TABLE t (x int)",
            "CREATE TABLE t (x int)",
            'DELETE FROM "365_student_info"',
        ):
            with pytest.raises(dbapi.Error, match="permission denied"):
                cur.execute(sql)


@pytest.mark.slow
def test_a_run_from_the_database_equals_the_folder(
    postgres: Server, sample: Path, password: None, tmp_path: Path
) -> None:
    from upgrade_predictor.api import TrainConfig, train

    runs = {}
    for name, events in (("db", postgres.url(database=SAMPLE)), ("files", sample / "ev")):
        run = train(TrainConfig(events=events, out=tmp_path / name, budget="quick", report=False,
                                families=["logreg"], strategies=["none"], horizon=14, jobs=1))  # fmt: skip
        runs[name] = json.loads((run.dir / "metrics.json").read_text())
        if name == "db":  # the run names its database as given, with no password
            assert json.loads((run.dir / "run.json").read_text())["events"] == str(events)
    assert runs["db"] == runs["files"]


def _mapping(tmp_path: Path, **changes: str) -> Path:
    """The 365 mapping for a database, with some of its lines changed."""
    text = _PG_MAPPING
    for old, new in changes.items():
        text = text.replace(old, new)
    path = tmp_path / "mapping.toml"
    path.write_text(text)
    return path


_PG_MAPPING = """
[users]
table = "public.365_student_info"
id = "student_id"
time = "date_registered"
attributes = ["student_country"]

[conversions]
table = "365_student_purchases"
id = "student_id"
time = "date_purchased"

[[activity]]
name = "learning"
table = "365_student_learning"
id = "student_id"
time = "date_watched"
measures = ["minutes_watched"]
"""


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("wrong-password", r"refused the password of user reader; give the password in PGPASSWORD"),
        ("no-password", r"asks for a password of user reader"),
        ("password-in-url", r"the database URL holds a password; give the password in PGPASSWORD"),
        ("unreachable", r"127\.0\.0\.1:1/events: cannot reach the server \(connection refused\)"),
        ("no-database", r"the server has no database nowhere"),
        (
            "missing-table",
            r"activity 'learning' table 365_student_lessons: no such table or view in postgresql:",
        ),
        ("missing-column", r"users table public\.365_student_info: no column `student_age`"),
        (
            "wrong-type",
            r"conversions table 365_student_purchases: the time column `purchase_id` holds numbers",
        ),
    ],
)
def test_a_failure_is_one_sentence_without_the_password(
    case: str, message: str, postgres: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    monkeypatch.setenv("PGPASSWORD", "wrong-secret-77" if case == "wrong-password" else READER_PASSWORD)
    url, mapping = postgres.url(), None
    if case == "no-password":
        monkeypatch.delenv("PGPASSWORD")
    elif case == "password-in-url":
        url = url.replace("reader@", "reader:url-secret-55@")
    elif case == "unreachable":
        url = "postgresql://reader@127.0.0.1:1/events"
    elif case == "no-database":
        url = postgres.url(database="nowhere")
    elif case == "missing-table":
        mapping = _mapping(tmp_path, **{'"365_student_learning"': '"365_student_lessons"'})
    elif case == "missing-column":
        mapping = _mapping(tmp_path, **{'["student_country"]': '["student_country", "student_age"]'})
    elif case == "wrong-type":
        mapping = _mapping(tmp_path, **{'time = "date_purchased"': 'time = "purchase_id"'})
    args = ["features", "--events", url, "--out", str(tmp_path / "f.csv")]
    done = run_cli(*args, *(["--mapping", str(mapping)] if mapping else []))
    text = done.stderr + done.stdout
    assert done.returncode == 2, text
    assert "Traceback" not in text and len(text.strip().splitlines()) <= 2, text
    assert re_search(message, text), text
    for secret in ("wrong-secret-77", "url-secret-55", READER_PASSWORD):
        assert secret not in text
    assert not (tmp_path / "f.csv").exists()


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, " ".join(text.split()), re.IGNORECASE) is not None


def test_drift_and_a_campaign_plan_from_the_database_equal_the_folder(
    postgres: Server, sample: Path, password: None, tmp_path: Path
) -> None:
    model = str(sample / "model.zip")
    for name, events in (("db", postgres.url(database=SAMPLE)), ("files", str(sample / "ev"))):
        done = run_cli("drift", model, "--events", events, "--out", str(tmp_path / f"{name}.json"))
        assert done.returncode in (0, 1), done.stderr  # 1: drift found, the same either way
        _ok(run_cli("campaign", "plan", model, "--events", events, "--out", str(tmp_path / f"plan-{name}"),
                    "--top", "100", "--holdout", "0.5"))  # fmt: skip
    drift_db, drift_files = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("db", "files"))
    assert drift_db.pop("source") != drift_files.pop("source")  # each names its own temp feature file
    assert drift_db == drift_files
    for part in sorted(
        p.name for p in (tmp_path / "plan-files").iterdir() if p.suffix in (".csv", ".parquet")
    ):
        read = pd.read_parquet if part.endswith(".parquet") else pd.read_csv
        pd.testing.assert_frame_equal(read(tmp_path / "plan-db" / part), read(tmp_path / "plan-files" / part))


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("postgresql://reader@db:5432/platform", "postgresql://reader@db:5432/platform"),
        (
            Path("postgresql://reader@db:5432/platform"),
            "postgresql://reader@db:5432/platform",
        ),  # `//` collapsed
        (
            "postgres://reader@%2Ftmp%2Fpg/platform?sslmode=disable",
            "postgresql://reader@%2Ftmp%2Fpg/platform?sslmode=disable",
        ),
        ("../shared/data/365_events", None),
    ],
)
def test_an_events_value_names_a_database_or_a_folder(value: object, url: str | None) -> None:
    from upgrade_predictor.sources.event_database import parse_database

    found = parse_database(value)
    assert (found.url if found else None) == url


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("postgresql://reader:hunter2@db/platform", "holds a password"),
        ("postgresql://reader@db/platform?password=hunter2", "holds a password"),
        ("postgresql:///platform", "name the host"),
    ],
)
def test_a_database_url_is_refused_without_echoing_it(value: str, message: str) -> None:
    from upgrade_predictor.errors import InputError
    from upgrade_predictor.sources.event_database import parse_database

    with pytest.raises(InputError, match=message) as info:
        parse_database(value)
    assert "hunter2" not in str(info.value)
