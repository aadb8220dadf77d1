"""Peak memory and speed of `sftscope.weights.weight_change` on a pair of ~240 MB float32 checkpoints.

    python benchmarks/weights_memory.py [--hidden 512 --layers 8 --vocab 32000] [--keep DIR]

Builds a random Llama (~60M parameters, float32) saved in 50 MB shards and a perturbed copy saved in 80 MB
shards (so the shard boundaries do not line up), then runs weight_change in a fresh subprocess and reports
  peak RSS growth over an import-only baseline / size of one checkpoint   (target <= 0.5)
  peak anonymous-memory growth / size of one checkpoint (RSS minus the file-backed memory-mapped pages)
  seconds per GB of one checkpoint.
RSS is sampled every 2 ms from /proc/self/status by a thread; ru_maxrss (the kernel's exact peak) is reported
beside it, minus the ru_maxrss of an identical subprocess that only imports.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(base: str, sft: str, import_only: bool) -> None:
    """Run in a subprocess: print JSON with the baseline and peak RSS (KiB) and the elapsed seconds."""
    from sftscope.weights import weight_change  # noqa: F401  (imports count in the baseline)

    baseline = {"rss": _status_kib("VmRSS"), "anon": _status_kib("RssAnon")}
    peak = dict(baseline)
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak["rss"] = max(peak["rss"], _status_kib("VmRSS"))
            peak["anon"] = max(peak["anon"], _status_kib("RssAnon"))
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    n_rows = 0 if import_only else len(weight_change(base, sft, progress=False))
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    print(json.dumps({"baseline": baseline, "peak": peak, "seconds": seconds, "rows": n_rows,
                      "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def build_pair(root: Path, hidden: int, layers: int, vocab: int) -> tuple[Path, Path, int]:
    """Save a random float32 Llama and a perturbed copy with different shard sizes; return paths and bytes."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
                         num_attention_heads=8, num_key_value_heads=8, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    model.save_pretrained(root / "base", max_shard_size="50MB")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.001 * torch.randn_like(p))
    model.save_pretrained(root / "sft", max_shard_size="80MB")
    size = sum(f.stat().st_size for f in (root / "base").glob("*.safetensors"))
    return root / "base", root / "sft", size


def run_child(base: Path, sft: Path, import_only: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", str(base), str(sft)] + (["--import-only"] if import_only else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--keep", type=Path, default=None, help="build the pair here (or reuse it) and keep it")
    parser.add_argument("--child", nargs=2, metavar=("BASE", "SFT"), help=argparse.SUPPRESS)
    parser.add_argument("--import-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--build-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, import_only=args.import_only)
    if args.build_into:
        return print(build_pair(args.build_into, args.hidden, args.layers, args.vocab)[2])
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        # Build in a subprocess: children forked from a process that once held the model would inherit its
        # high-water mark in ru_maxrss.
        build = [sys.executable, __file__, "--build-into", str(root), "--hidden", str(args.hidden),
                 "--layers", str(args.layers), "--vocab", str(args.vocab)]
        if not (root / "sft" / "config.json").exists():
            subprocess.run(build, check=True, capture_output=True)
        base, sft = root / "base", root / "sft"
        size = sum(f.stat().st_size for f in base.glob("*.safetensors"))
        idle = run_child(base, sft, import_only=True)
        run = run_child(base, sft, import_only=False)
    kib = size / 1024
    rss_growth = run["peak"]["rss"] - run["baseline"]["rss"]
    anon_growth = run["peak"]["anon"] - run["baseline"]["anon"]
    maxrss_growth = run["ru_maxrss"] - idle["ru_maxrss"]
    print(f"checkpoint size: {size / 1e6:.1f} MB each (float32, sharded 50 MB / 80 MB)")
    print(f"rows: {run['rows']}, time: {run['seconds']:.2f} s = {run['seconds'] / (size / 1e9):.2f} s per GB "
          f"of one checkpoint")
    print(f"peak RSS growth (sampled):   {rss_growth / 1024:.1f} MiB = {rss_growth / kib:.3f} x checkpoint")
    print(f"peak anon growth (sampled):  {anon_growth / 1024:.1f} MiB = {anon_growth / kib:.3f} x checkpoint")
    print(f"ru_maxrss growth over import-only process: {maxrss_growth / 1024:.1f} MiB = "
          f"{maxrss_growth / kib:.3f} x checkpoint (target <= 0.5)")


if __name__ == "__main__":
    main()
