"""Wall time of `analyze` and `evaluate` with 2 processes (torchrun, gloo) against 1, measured side by side.

    python benchmarks/scale_out.py --data-dir ../shared/data [--rounds 3]

A 12-layer d=256 Llama pair (random weights, BPE trained on WikiText) is analysed (both presets, every metric,
bootstrap CIs and robustness on) and evaluated (MMLU log-likelihood + WikiText perplexity). Each configuration
runs as a fresh command (start-up included: that is what a user waits for) in interleaved rounds; the script
prints every round and the median ratio 2 processes / 1 process for two fair baselines on this machine:
  same cores per process: 1 process x 1 thread  vs 2 processes x 1 thread (the scale-out factor)
  same cores in all:      1 process x 2 threads vs 2 processes x 1 thread (what 2 processes buy on 2 cores)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tiny_pair import save_pair  # noqa: E402


def run(args: list[str], processes: int, threads: int) -> float:
    """Seconds of one `sftscope ...` command with `processes` processes of `threads` threads each."""
    env = {**os.environ, "SFTSCOPE_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "ACCELERATE_USE_CPU": "true", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "TQDM_DISABLE": "1"}
    prefix = [sys.executable, "-m"] if processes == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), "-m"]
    start = time.perf_counter()
    done = subprocess.run(prefix + ["sftscope", *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SFTSCOPE_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=96, help="pooled samples of analyze (token-level: a third)")
    parser.add_argument("--items", type=int, default=114, help="MMLU items of evaluate")
    opts = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sftscope-scale-"))
    base, sft = save_pair(root, opts.data_dir)
    stages = {
        "analyze": lambda out: ["analyze", "--base", base, "--sft", sft, "--data", "wikitext", "--data-dir",
                                opts.data_dir, "--token-samples", str(opts.samples // 3), "--pooled-samples",
                                str(opts.samples), "--max-length", "128", "--batch-size", "8", "--no-plots",
                                "--out", out],
        "evaluate": lambda out: ["evaluate", "--model", f"sft={sft}", "--tasks", "mmlu,ppl:wikitext", "--limit",
                                 str(opts.items), "--batch-size", "8", "--data-dir", opts.data_dir, "--out", out],
    }
    configs = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1)}  # processes x threads
    times = {(s, c): [] for s in stages for c in configs}
    for r in range(opts.rounds):
        for stage, make in stages.items():
            for name, (procs, threads) in configs.items():  # interleaved: the machine's load hits all alike
                seconds = run([str(a) for a in make(str(root / f"{stage}-{name}-{r}"))], procs, threads)
                times[(stage, name)].append(seconds)
                print(f"round {r + 1} {stage:<8} {procs} process(es) x {threads} thread(s): {seconds:6.1f} s",
                      flush=True)
    print("\nmedian of", opts.rounds, "interleaved rounds (wall seconds, start-up included)")
    for stage in stages:
        med = {c: statistics.median(times[(stage, c)]) for c in configs}
        ratios = {c: [a / b for a, b in zip(times[(stage, "2x1")], times[(stage, c)])] for c in ("1x1", "1x2")}
        print(f"{stage:<8} 1x1 {med['1x1']:6.1f} s  1x2 {med['1x2']:6.1f} s  2x1 {med['2x1']:6.1f} s | "
              f"2 processes / 1 process: same cores per process {statistics.median(ratios['1x1']):.2f}, "
              f"same cores in all {statistics.median(ratios['1x2']):.2f}")


if __name__ == "__main__":
    main()
