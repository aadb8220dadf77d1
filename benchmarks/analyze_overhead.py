"""Overhead of `sftscope analyze` over the bare forward passes, and peak memory vs token-level sample count.

Prints, measured side by side in one run on a tiny pair (12 layers, d = 256, WikiText):
  ratio = median wall time of a full analyze (loading both models, every metric, both presets, bootstrap CIs
          and robustness test, tables; figures off) / median wall time of the bare forward passes of both models
          over the same batches, loading both models and preparing the same data included (both sides pay the
          same loading), over --rounds interleaved rounds;
  peak RSS of analyze (in a fresh process each) with token samples x1 and x4 at a fixed pooled sample count.
Usage: python benchmarks/analyze_overhead.py [--data-dir ../shared/data] [--rounds 3]
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

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _tiny_pair import save_pair  # noqa: E402

from sftscope.analysis.config import AnalyzeConfig  # noqa: E402
from sftscope.analysis.pipeline import _encode_side, run_analyze  # noqa: E402
from sftscope.capture.batches import make_batches  # noqa: E402
from sftscope.data.prepare import prepare_dataset  # noqa: E402
from sftscope.models.loading import load_pair  # noqa: E402


def bare_forward(cfg: AnalyzeConfig) -> float:
    """Load both models and prepare the data as analyze does, then run both models over the same batches analyze
    uses (same tokens, same padding), nothing else; all of it timed, as analyze's loading is."""
    start = time.perf_counter()
    models = load_pair(cfg.refs(), cfg.load_options())
    prepared = prepare_dataset(cfg.data[0], cfg.data_dir, cfg.seed, cfg.token_samples, cfg.pooled_samples)
    encoded = _encode_side(prepared, models[0], cfg)
    batches = list(make_batches(encoded, cfg.batch_size, models[0].tokenizer.pad_token_id))
    with torch.no_grad():
        for batch in batches:
            for m in models:
                m.model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
    return time.perf_counter() - start


def full_analyze(cfg: AnalyzeConfig, out: Path) -> float:
    """Everything analyze does, loading the models included."""
    start = time.perf_counter()
    run_analyze(cfg.replace(plots=False), out)
    return time.perf_counter() - start


def peak_rss_child(base: Path, sft: Path, data_dir: str, token_samples: int, pooled: int) -> float:
    code = (f"import resource, torch; torch.set_num_threads(1); from sftscope.analysis.config import AnalyzeConfig; "
            f"from sftscope.analysis.pipeline import run_analyze; import tempfile; "
            f"cfg = AnalyzeConfig(base={str(base)!r}, sft={str(sft)!r}, data=['wikitext'], data_dir={data_dir!r}, "
            f"token_samples={token_samples}, pooled_samples={pooled}, max_length=256, batch_size=8); "
            f"run_analyze(cfg.replace(plots=False), tempfile.mkdtemp()); "
            f"print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # KiB -> MiB


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 default: extra threads spin-wait on a shared 2-core machine)")
    parser.add_argument("--data-dir", default=os.environ.get("SFTSCOPE_DATA_DIR", str(Path(__file__).parents[2] / "shared/data")))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="sftscope-bench-"))
    base, sft = save_pair(root, args.data_dir)
    cfg = AnalyzeConfig(base=str(base), sft=str(sft), data=["wikitext"], data_dir=args.data_dir,
                        token_samples=args.samples // 2, pooled_samples=args.samples, max_length=256, batch_size=8)
    print(f"tiny pair: 12 layers, d=256, WikiText {args.samples} samples (token-level {args.samples // 2}), "
          f"max_length 256, batch 8, torch threads {torch.get_num_threads()}")
    bare_forward(cfg)  # warm-up: file caches and lazy imports would otherwise land on the first round
    bare, full = [], []
    for r in range(args.rounds):  # alternate so background load hits both alike
        bare.append(bare_forward(cfg))
        full.append(full_analyze(cfg, root / f"run{r}"))
        print(f"round {r}: bare forward {bare[-1]:.2f}s, full analyze {full[-1]:.2f}s")
    print(f"RATIO full analyze / bare forward (median of {args.rounds} interleaved rounds, loading timed on both "
          f"sides): {statistics.median(full) / statistics.median(bare):.3f}")
    small = peak_rss_child(base, sft, args.data_dir, 50, 200)
    large = peak_rss_child(base, sft, args.data_dir, 200, 200)
    print(f"PEAK RSS analyze: token samples 50: {small:.0f} MiB, token samples 200 (x4): {large:.0f} MiB, "
          f"ratio {large / small:.3f} (must not grow with token samples)")


if __name__ == "__main__":
    main()
