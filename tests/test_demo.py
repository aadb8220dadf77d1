"""`sftscope demo --quick`: the README's main command, every stage, on the built-in organism (offline)."""

import json

import pandas as pd
import pytest

from sftscope.cli import main
from sftscope.demo import STAGES

pytestmark = pytest.mark.integration  # runs the whole demo (organism, every stage, report) through the CLI


@pytest.mark.slow
def test_demo_quick_runs_every_stage_into_one_run_directory(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sftscope demo finished" in printed and "report.html" in printed
    assert [name for name, _ in STAGES][-1] == "report"
    for table in ("metrics", "weights", "correlation", "probe", "swap"):
        assert not pd.read_parquet(out / f"{table}.parquet").empty, table
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert {"organism-qa", "organism-facts", "organism-mc"} <= set(metrics["dataset"])
    assert not pd.read_parquet(out / "sweep" / "sweep_summary.parquet").empty
    assert json.loads((out / "suggestion.json").read_text())
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 10
    # Resume: a second run finds every unit finished and rewrites only the report.
    assert main(["demo", "--quick", "--out", str(out)]) == 0
