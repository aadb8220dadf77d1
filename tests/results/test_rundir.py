import pandas as pd
import pytest

from sftscope.errors import SftscopeError
from sftscope.results.rundir import RunDir
from sftscope.results.schema import CORE_COLUMNS, Row


def _rows(v):
    return [Row(side="base", dataset="d", layer=l, metric="m", value=v + l, n=3, preset="paper") for l in range(3)]


def test_units_tables_and_resume(tmp_path):
    run = RunDir(tmp_path / "run")
    run.bind_config("analyze", {"a": 1})
    assert not run.is_done("metrics", "d1")
    run.write_unit("metrics", "d1", _rows(0.0))
    df = run.write_unit("metrics", "d2", _rows(10.0))
    assert run.is_done("metrics", "d1") and len(df) == 6
    assert list(df.columns[:len(CORE_COLUMNS)]) == CORE_COLUMNS and set(df["run"]) == {"run"}
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 6
    run.bind_config("analyze", {"a": 1})  # same config: resume allowed


def test_different_config_refused_and_nothing_lost(tmp_path):
    run = RunDir(tmp_path)
    run.bind_config("analyze", {"a": 1, "b": 2})
    run.write_unit("metrics", "d1", _rows(0.0))
    with pytest.raises(SftscopeError, match="differs in: b"):
        run.bind_config("analyze", {"a": 1, "b": 3})
    assert len(run.read_table("metrics")) == 3


def test_nan_values_refused():
    with pytest.raises(ValueError, match="NaN"):
        Row(side="s", dataset="d", layer=0, metric="m", value=float("nan"), n=1).as_dict()
    assert Row(side="s", dataset="d", layer=0, metric="m", value=float("inf"), n=1).as_dict()["value"] == float("inf")


def test_environment_record(tmp_path):
    import json
    run = RunDir(tmp_path)
    run.write_environment(seed=7, models=[{"name": "base", "id": "x"}])
    run.write_environment(seed=7, models=[{"name": "sft", "id": "y"}])
    env = json.loads((tmp_path / "environment.json").read_text())
    assert env["seed"] == 7 and env["packages"]["torch"] and [m["name"] for m in env["models"]] == ["base", "sft"]
