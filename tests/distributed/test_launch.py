"""Under torchrun with 2 CPU processes (gloo) every pipeline gives the one-process result; rank 0 alone writes
and prints; a launch that is not one process group, or ranks with different configs, is one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _env(**more) -> dict:
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **more}


def launch(module_args: list[str], ranks: int, check: bool = True, **env) -> subprocess.CompletedProcess:
    """`python -m <module_args>` in one process, or under torchrun with `ranks` CPU processes (one-process
    `sftscope` commands run in this process: the same code, without a second interpreter's start-up)."""
    if ranks == 1 and module_args[0] == "sftscope" and not env:
        import contextlib
        import io

        from sftscope import cli
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main([str(a) for a in module_args[1:]])
        done = subprocess.CompletedProcess(module_args, code, out.getvalue(), err.getvalue())
        if check:
            assert code == 0, (done.stdout[-2000:], done.stderr[-4000:])
        return done
    prefix = [sys.executable, "-m"] if ranks == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks), "-m"]
    done = subprocess.run(prefix + [str(a) for a in module_args], cwd=ROOT, env=_env(**env), capture_output=True,
                          text=True, timeout=400)
    if check:
        assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    return done


def _table(folder: Path, name: str, keys: list[str]) -> pd.DataFrame:
    df = pd.read_parquet(folder / f"{name}.parquet").drop(columns=["run"], errors="ignore")
    keys = [k for k in keys if k in df.columns]
    return df.sort_values(keys).reset_index(drop=True)


def _same_values(one: pd.DataFrame, two: pd.DataFrame, keys: list[str], rel: float) -> None:
    keys = [k for k in keys if k in one.columns]
    pd.testing.assert_frame_equal(one[keys], two[keys])
    close = np.isclose(two["value"], one["value"], rtol=rel, atol=rel)  # inf (a singular matrix) equals inf
    assert close.all(), one.assign(two=two["value"])[~close]


def test_scoring_primitives_split_over_ranks_equal_one_process(tmp_path):
    launch(["tests.distributed.scoring_worker", tmp_path / "one.pt"], 1)
    launch(["tests.distributed.scoring_worker", tmp_path / "two.pt"], 2)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert (one["world"], two["world"]) == (1, 2)
    assert two["generations"] == one["generations"]  # greedy generations identical
    assert two["logprobs"] == pytest.approx(one["logprobs"], abs=1e-6)
    assert two["perplexity"][1] == one["perplexity"][1]
    assert two["perplexity"][0] == pytest.approx(one["perplexity"][0], rel=1e-9)


def test_evaluate_on_two_ranks(tmp_path, tiny_pair_dir):
    base, sft = tiny_pair_dir("llama")
    args = ["sftscope", "evaluate", "--model", f"base={base}", "--model", f"sft={sft}", "--tasks",
            "mmlu,gsm8k,ppl:wikitext", "--limit", "6", "--num-fewshot", "0", "--max-new-tokens", "6",
            "--batch-size", "2", "--data-dir", SHARED_DATA]
    single = launch([*args, "--out", tmp_path / "one"], 1)
    double = launch([*args, "--out", tmp_path / "two"], 2)
    keys = ["side", "dataset", "metric"]
    _same_values(_table(tmp_path / "one", "tasks", keys), _table(tmp_path / "two", "tasks", keys), keys, 1e-6)
    assert double.stdout.count("results:") == single.stdout.count("results:") == 1  # rank 0 alone prints


def test_tune_cell_on_two_ranks_equals_one_process_with_the_same_global_batch(tmp_path, tiny_pair_dir):
    base, _ = tiny_pair_dir("llama")
    args = ["sftscope", "tune", "--base", base, "--train", "gsm8k", "--train-limit", "8", "--data-dir", SHARED_DATA,
            "--blocks", "01", "--max-steps", "1", "--max-length", "64", "--lr", "0.01", "--tasks", "mmlu",
            "--limit", "4", "--retention", "none", "--eval-batch-size", "2"]
    launch([*args, "--batch-size", "4", "--out", tmp_path / "one"], 1)
    launch([*args, "--batch-size", "2", "--out", tmp_path / "two"], 2)
    keys = ["side", "dataset", "metric", "step"]
    one, two = (_table(tmp_path / d, "tuning", keys) for d in ("one", "two"))
    # one step: the same loss and update (exact normalisation; after more steps Adam's g / (|g| + eps) amplifies
    # the rounding of the gradient all-reduce, which is not a difference in what is computed)
    loss = one["metric"] == "train_loss"
    assert loss.sum() == 1 and two.loc[loss, "value"].to_numpy() == pytest.approx(one.loc[loss, "value"].to_numpy(),
                                                                                    rel=1e-6)
    _same_values(_table(tmp_path / "one", "tune_eval", keys), _table(tmp_path / "two", "tune_eval", keys), keys,
                 1e-5)


def test_ranks_with_different_configs_are_refused(tmp_path):
    done = launch(["tests.distributed.config_worker", tmp_path / "run"], 2, check=False)
    assert done.returncode != 0
    assert "given different options (seed)" in done.stdout
    assert not (tmp_path / "run" / "config.json").exists()


def test_world_size_without_a_group_is_one_line(tmp_path):
    done = launch(["sftscope", "analyze", "--base", "x", "--sft", "y", "--out", tmp_path / "o"], 1, check=False,
                  WORLD_SIZE="2", RANK="0", LOCAL_RANK="0")
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1 and "cannot join a process group" in err[0]


def test_probe_on_two_ranks(tmp_path, tiny_pair_dir):
    base, sft = tiny_pair_dir("llama")
    args = ["sftscope", "probe", "--base", base, "--sft", sft, "--data", "wikitext,gsm8k", "--data-dir",
            SHARED_DATA, "--samples", "10", "--max-length", "32", "--batch-size", "3", "--bootstrap", "20",
            "--no-plots"]
    launch([*args, "--out", tmp_path / "one"], 1)
    launch([*args, "--out", tmp_path / "two"], 2)
    keys = ["side", "dataset", "layer", "metric", "mode"]
    one, two = (_table(tmp_path / d, "probe", keys) for d in ("one", "two"))
    _same_values(one, two, keys, 1e-9)
    pd.testing.assert_frame_equal(one[["ci_low", "ci_high"]], two[["ci_low", "ci_high"]])


@pytest.mark.parametrize("mode", ["resident", "sequential"])
def test_analyze_on_two_ranks(tmp_path, tiny_pair_dir, mode):
    """Each rank runs a disjoint share of the batches; rank 0 merges the per-layer accumulator states: the table
    (values, n, intervals, robustness) equals the one-process table to 1e-9."""
    base, sft = tiny_pair_dir("llama")
    args = ["sftscope", "analyze", "--base", base, "--sft", sft, "--data", "gsm8k,wikitext", "--data-dir",
            SHARED_DATA, "--token-samples", "5", "--pooled-samples", "12", "--max-length", "32", "--batch-size", "2",
            "--bootstrap", "30", "--robustness-splits", "4", "--mode", mode, "--no-plots"]
    launch([*args, "--out", tmp_path / "one"], 1)
    launch([*args, "--out", tmp_path / "two"], 2)
    keys = ["side", "dataset", "layer", "metric", "preset", "mode", "reason"]
    one, two = (_table(tmp_path / d, "metrics", keys) for d in ("one", "two"))
    _same_values(one, two, keys, 1e-9)
    assert (one["n"] == two["n"]).all()
    for column in ("ci_low", "ci_high", "p_value"):
        if column in one.columns:
            both = one[column].notna()
            assert (two[column].notna() == both).all()
            assert ((one.loc[both, column] - two.loc[both, column]).abs() <= 1e-9).all(), column
