import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_gpu_check_dry_run_at_a_tiny_shape(tmp_path):
    """scripts/gpu_check.sh end to end on the CPU at a tiny shape: builds its own model, tokenizer and data
    (no network, no shared data), runs analyze vs the bare forward, one tune cell and evaluate."""
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("SFTSCOPE_DATA_DIR", None)  # the script must bring its own records
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--tiny", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "RATIO analyze / bare forward" in done.stdout and "errors: 0" in done.stdout
    for step in ("analyze round 0", "tune one cell", "evaluate gsm8k"):
        assert step in done.stdout
    assert (tmp_path / "analyze-0" / "metrics.parquet").exists() and (tmp_path / "evaluate").is_dir()
