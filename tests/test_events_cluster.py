"""Event tables on a Dask cluster: the same audit, users, features and scores as the embedded engine."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SMALL_MAPPING, synthetic_events
from upgrade_predictor.errors import InputError
from upgrade_predictor.forecast.engine import LocalEvents
from upgrade_predictor.sources.event_parts import partition_of

distributed = pytest.importorskip("distributed")
from upgrade_predictor.forecast.cluster import DaskEvents  # noqa: E402  (needs Dask)


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as lc,
        distributed.Client(lc) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def engines(real_events, client):
    """The real tables in both engines; three partitions on two workers, so a worker stages several."""
    with DaskEvents(real_events, client=client, partitions=3) as cluster, LocalEvents(real_events) as local:
        yield cluster, local


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """An events bundle trained through the real code on small tables of the 365 layout."""
    from upgrade_predictor.api import TrainConfig, train

    root = tmp_path_factory.mktemp("events_bundle")
    folder = synthetic_events(root / "tables", n_users=600, seed=3)
    config = TrainConfig(
        events=folder,
        out=root / "run",
        budget="quick",
        report=False,
        families=["gbm"],
        strategies=["none"],
        horizon=14,
        jobs=1,
    )
    return train(config).dir / "model.zip"


def cli(*args: str) -> None:
    from typer.testing import CliRunner

    from upgrade_predictor.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_audit_users_and_todays_features_equal_the_embedded_engine(engines):
    cluster, local = engines
    assert cluster.audit == local.audit
    assert cluster.data_end == local.data_end
    assert cluster.attributes == local.attributes
    pd.testing.assert_frame_equal(cluster.users_frame(), local.users_frame())
    day = local.data_end + timedelta(days=1)
    expected = local.features_on(day)
    assert len(expected) > 10_000
    pd.testing.assert_frame_equal(cluster.features_on(day), expected)
    chunks = list(cluster.features_on_chunks(day))
    assert len(chunks) > 1 and max(len(c) for c in chunks) < len(expected)
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), expected)


@pytest.mark.slow
def test_features_of_random_user_cutoff_rows_equal_the_embedded_engine(engines):
    cluster, local = engines
    users = local.users_frame()
    rng = np.random.default_rng(5)
    picked = users.iloc[rng.integers(0, len(users), 2_000)]
    # Cutoffs from before registration to the day after the data end, users repeated, in random order.
    days = rng.integers(-10, 200, len(picked))
    cutoff = (picked["registered"] + pd.to_timedelta(days, unit="D")).clip(
        upper=pd.Timestamp(local.data_end + timedelta(days=1))
    )
    rows = pd.DataFrame({"user_id": picked["user_id"].to_numpy(), "cutoff": cutoff.to_numpy()})
    expected = local.features_at(rows)
    assert expected["learning_events"].gt(0).any()
    pd.testing.assert_frame_equal(cluster.features_at(rows), expected)
    pd.testing.assert_frame_equal(cluster.features_at(rows.head(0)), local.features_at(rows.head(0)))


@pytest.mark.slow
def test_first_day_activity_and_bad_rows_as_the_embedded_engine(engines):
    cluster, local = engines
    got, expected = cluster.first_day_activity(), local.first_day_activity()
    assert len(expected) > 1_000
    assert set(got["user_id"]) == set(expected["user_id"]) and len(got) == len(expected)
    assert got["first_day_activity"].all()
    late = pd.DataFrame({"user_id": ["nobody", "258798"], "cutoff": ["2022-01-05", "2022-01-05"]})
    with pytest.raises(InputError, match="1 users that are not in the users table \\(first: nobody\\)"):
        cluster.features_at(late)
    late["user_id"] = "258798"
    late.loc[0, "cutoff"] = str(local.data_end + timedelta(days=5))
    with pytest.raises(InputError, match="after the data ends"):
        cluster.features_at(late)


def mixed_ids_folder(folder: Path) -> Path:
    """Users in Parquet with integer ids; their lessons in CSV with the ids as padded text; purchases in
    Parquet as floats with a gap (as pandas writes them); a duplicate, an unknown id and a bad date."""
    folder.mkdir()
    ids = np.arange(10, 30)
    pd.DataFrame(
        {
            "user_id": ids,
            "signup": pd.to_datetime("2022-01-01") + pd.to_timedelta(ids % 7, unit="D"),
            "country": np.where(ids % 3 == 0, "NA", "DE"),
        }
    ).to_parquet(folder / "users.parquet")
    lessons = [(f"  {i} " if i % 2 else str(i), f"2022-01-{8 + i % 9:02d}", int(i % 5), "c1") for i in ids]
    lessons += [
        (" 16 ", "2022-01-09", 3, "c2"),
        (" 16 ", "2022-01-09", 3, "c2"),
        ("999", "2022-01-09", 1, "c1"),
    ]
    lessons += [("14", "not a day", 2, "c1"), ("  ", "2022-01-10", 2, "c1")]
    pd.DataFrame(lessons, columns=["user_id", "day", "minutes", "course"]).to_csv(
        folder / "learning.csv", index=False
    )
    paid_on = ["2022-01-12", "2022-01-20", "2022-01-03", "2022-01-15"]
    paid = pd.DataFrame({"user_id": [12.0, 17.0, np.nan, 25.0], "paid_on": paid_on})
    paid.to_parquet(folder / "purchases.parquet")
    mapping = folder.parent / "mapping.toml"  # the small tables' mapping, two of them in Parquet
    mapping.write_text(
        SMALL_MAPPING.replace("users.csv", "users.parquet").replace("purchases.csv", "purchases.parquet")
    )
    return mapping


@pytest.mark.slow
def test_a_users_rows_meet_in_one_partition_whatever_the_type_of_its_id(tmp_path, client):
    assert len({int(partition_of(pd.Series(v), 5)[0]) for v in ([12], ["  12 "], [12.0], ["12"])}) == 1
    folder = tmp_path / "tables"
    mapping = mixed_ids_folder(folder)
    day = pd.Timestamp("2022-01-18").date()
    # As many partitions as leave one without users: it still counts its rows of unknown users.
    k = next(k for k in range(2, 40) if len(np.unique(partition_of(pd.Series(np.arange(10, 30)), k))) < k)
    with (
        DaskEvents(folder, mapping, client=client, partitions=k) as cluster,
        LocalEvents(folder, mapping) as local,
    ):
        assert cluster.audit == local.audit
        assert local.audit.tables[2].unknown_ids == 1 and local.audit.tables[2].duplicate_rows == 1
        pd.testing.assert_frame_equal(cluster.users_frame(), local.users_frame())
        expected = local.features_on(day)
        # The padded text ids met their integer users: lessons counted, user 16 with its two courses.
        assert expected["learning_events"].gt(0).sum() > 10
        assert expected.set_index("user_id").loc["16", "learning_items"] == 2
        pd.testing.assert_frame_equal(cluster.features_on(day), expected)


def test_a_key_shared_by_two_users_is_refused_on_a_cluster(tmp_path, client):
    folder = synthetic_events(tmp_path / "tables", n_users=40, seed=1)
    buys = pd.read_csv(folder / "365_student_purchases.csv")
    assert len(buys) >= 2
    buys.loc[1, "purchase_id"] = buys.loc[0, "purchase_id"]  # two users, one purchase id
    buys.to_csv(folder / "365_student_purchases.csv", index=False)
    with LocalEvents(folder) as local:  # the embedded engine keeps the earliest row of the key
        assert local.audit.tables[1].duplicate_keys == 1
    with pytest.raises(InputError, match="shared by rows of different users"):
        DaskEvents(folder, client=client, partitions=2)


@pytest.fixture(scope="module")
def scored(real_events, bundle, client, tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`score --events` of the real tables on this machine (a file) and on the cluster (a folder)."""
    tmp = tmp_path_factory.mktemp("scored")
    one, many = tmp / "one.parquet", tmp / "many"
    cli("score", str(bundle), "--events", str(real_events), "--out", str(one), "--no-progress")
    dask = ["--dask", client.scheduler.address]
    cli("score", str(bundle), "--events", str(real_events), *dask, "--out", str(many), "--no-progress")
    assert sorted(p.name for p in tmp.iterdir()) == ["many", "one.parquet", "one.rejects.csv"]  # no temp left
    parts = sorted((many / "scored").glob("part-*.parquet"))
    return pd.read_parquet(one), pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


@pytest.mark.slow
def test_score_events_on_dask_scores_every_user_as_on_one_machine(scored):
    expected, got = scored
    assert len(expected) > 10_000 and list(got.columns) == list(expected.columns)
    a, b = (f.sort_values("user_id").reset_index(drop=True) for f in (expected, got))
    np.testing.assert_allclose(b["probability"], a["probability"], rtol=0, atol=1e-12)
    # The same row numbers too: the feature parts hold the users in the order of the feature file.
    cols = ["row", "user_id", "tenure_days", "decision"]
    pd.testing.assert_frame_equal(b[cols], a[cols])


@pytest.mark.slow
def test_score_events_on_dask_ranks_as_on_one_machine(scored):
    expected, got = scored
    assert expected["probability"].duplicated().any()  # ties: ranked by the users' order on both paths
    pd.testing.assert_series_equal(got["user_id"], expected["user_id"])
    pd.testing.assert_series_equal(got["rank"], expected["rank"])


@pytest.mark.slow
def test_features_on_dask_is_the_feature_file_as_a_folder_of_parts(real_events, client, tmp_path):
    address = client.scheduler.address
    one, many = tmp_path / "features.parquet", tmp_path / "features"
    cli("features", "--events", str(real_events), "--out", str(one))
    cli("features", "--events", str(real_events), "--dask", address, "--out", str(many))
    parts = sorted(many.glob("part-*.parquet"))
    assert len(parts) > 1 and not list(tmp_path.glob(".features.*"))
    got = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(got, pd.read_parquet(one))


def test_events_on_dask_still_refuses_an_id_and_explanations(tmp_path):
    from typer.testing import CliRunner

    from upgrade_predictor.cli import app

    base = ["score", str(tmp_path / "model.zip"), "--events", str(tmp_path), "--out", str(tmp_path / "o")]
    for extra, message in ((["--id", "x"], "drop --id"), (["--dask", "local", "--explain"], "--explain")):
        result = CliRunner().invoke(app, [*base, *extra])
        assert isinstance(result.exception, InputError) and message in str(result.exception)
    assert not (tmp_path / "o").exists()
