"""The run kinds and their run.json records: one strict reader, one migration, one kind lookup."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from upgrade_predictor.errors import InputError
from upgrade_predictor.forecast.info import EventRunInfo
from upgrade_predictor.kinds import KINDS, TrainConfig, kind_of
from upgrade_predictor.runs.folder import published
from upgrade_predictor.runs.info import migrate
from upgrade_predictor.training.info import TableRunInfo


def test_a_table_run_json_round_trips_in_the_layout_it_has_always_had():
    cfg = TrainConfig(data=Path("d.csv"), seed=7, families=["logreg"], sign_key=Path("k.pem"))
    info = TableRunInfo.of(
        cfg, data="d.csv", threshold_objective="f1", fingerprint="ab", started="2026-01-01"
    )
    d = info.to_dict()
    assert list(d) == list(TableRunInfo.LAYOUT) and "kind" not in d
    assert d["seed"] == 7 and d["families"] == ["logreg"] and d["sign_key"] == "k.pem" and d["horizon"] == 30
    assert TableRunInfo.from_dict(json.loads(json.dumps(d))) == info


def test_an_events_run_json_names_its_kind_last():
    cfg = TrainConfig(events=Path("ev"), horizon=14)
    info = EventRunInfo.of(cfg, events="ev", data_end="2022-08-31", timings={"features": 2.5})
    d = info.to_dict()
    assert list(d) == list(EventRunInfo.LAYOUT) and list(d)[-1] == "kind" and d["kind"] == "events"
    assert EventRunInfo.from_dict(d) == info and info.horizon == 14


@pytest.mark.parametrize("cls", [TableRunInfo, EventRunInfo])
def test_an_unknown_or_misspelled_key_is_refused_naming_it_and_the_file(cls):
    with pytest.raises(InputError, match=r"runs/x/run\.json: unknown key `upgrade_valu`"):
        cls.from_dict({"kind": cls.KIND, "upgrade_valu": 90.0}, where="runs/x/run.json")


def test_a_value_of_the_wrong_type_is_refused_naming_the_key():
    with pytest.raises(InputError, match=r"run\.json: not the settings of a run.*'timings'"):
        EventRunInfo.from_dict({"kind": "events", "timings": {"features": "slow"}})
    with pytest.raises(InputError, match=r"'horizon' is 1.5, not a whole number"):
        EventRunInfo.from_dict({"kind": "events", "horizon": 1.5})


def test_an_older_table_run_json_loads_through_the_migration():
    # As table runs wrote it before run kinds, the group column, the time limit and signing existed.
    old = {"data": "d.csv", "target": "purchased", "seed": 7, "budget": "quick", "test_size": 0.2}
    assert migrate(old) == {**old, "kind": "table"}
    info = TableRunInfo.from_dict(old)
    assert (info.kind, info.seed, info.group_column, info.time_limit, info.sign_key) == (
        "table",
        7,
        None,
        None,
        None,
    )
    with pytest.raises(InputError, match="a run of kind 'table', not 'events'"):
        EventRunInfo.from_dict(old)


def test_kind_of_reads_run_json(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "run.json").write_text('{"data": "d.csv"}')
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "run.json").write_text('{"kind": "events"}')
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "run.json").write_text('{"kind": "campaign"}')
    assert kind_of(tmp_path / "t") is KINDS["table"] and kind_of(tmp_path / "e") is KINDS["events"]
    assert kind_of(tmp_path / "missing") is KINDS["table"]  # its loader says what is missing
    with pytest.raises(InputError, match="kind 'campaign', which this version does not know"):
        kind_of(tmp_path / "n")
    assert TrainConfig().kind is KINDS["table"] and TrainConfig(events=tmp_path).kind is KINDS["events"]


def test_the_run_folder_is_published_whole_or_not_at_all(tmp_path):
    with published(tmp_path / "run") as out:
        out.json("run.json", {"kind": "events"})
        out.frame("board.csv", pd.DataFrame({"a": [1, 2]}))
        assert not (tmp_path / "run").exists()
    assert (tmp_path / "run" / "board.csv").read_text() == "a\n1\n2\n"
    with pytest.raises(RuntimeError), published(tmp_path / "other") as out:
        out.json("run.json", {})
        raise RuntimeError("stopped")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_every_kind_names_an_options_record_and_loadable_functions():
    for name, kind in KINDS.items():
        assert kind.name == name and kind.info.KIND == name
        for ref in (kind.run_ref, kind.results_ref, kind.report_ref, kind.tracked_ref):
            module, name = ref.split(":")
            assert callable(getattr(__import__(module, fromlist=[name]), name)), ref
