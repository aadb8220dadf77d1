"""Cost of one layer swap + restore relative to reloading the model from disk (target <= 0.1).

A swap copies one segment's blocks (k = 5) and the final norm + head from the SFT into the Base and restores
them on exit; the alternative it replaces is loading a fresh model. Printed side by side in one run.
Usage: python benchmarks/swap_cost.py [--hidden 512] [--layers 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _tiny_pair import save_pair  # noqa: E402

from sftscope.config import LoadConfig  # noqa: E402
from sftscope.models.loading import ModelRef, load_model  # noqa: E402
from sftscope.swapping.surgery import segment_layers, transplant  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 default: extra threads spin-wait on a shared 2-core machine)")
    parser.add_argument("--data-dir", default=os.environ.get("SFTSCOPE_DATA_DIR", str(Path(__file__).parents[2] / "shared/data")))
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base_dir, sft_dir = save_pair(Path(tempfile.mkdtemp(prefix="sftscope-swap-")), args.data_dir, args.layers, args.hidden)
    options = LoadConfig(dtype="float32", device="cpu")
    base = load_model(ModelRef("base", str(base_dir)), options)
    sft = load_model(ModelRef("sft", str(sft_dir)), options)
    segment = segment_layers(base.parts.num_layers, 5)[2]
    params = sum(p.numel() for p in base.model.parameters())
    swap_times, load_times = [], []
    for _ in range(args.repeats):  # alternate so background load hits both alike
        start = time.perf_counter()
        with transplant(base, sft, segment, head=True):
            pass
        swap_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        load_model(ModelRef("base", str(base_dir)), options)
        load_times.append(time.perf_counter() - start)
    swap, load = statistics.median(swap_times), statistics.median(load_times)
    print(f"model: Llama {args.layers} layers, d={args.hidden}, {params / 1e6:.1f}M parameters; swapped blocks "
          f"{segment} + final norm + head")
    print(f"swap + restore: {swap * 1000:.1f} ms (median of {args.repeats}); reload: {load * 1000:.1f} ms")
    print(f"RATIO swap+restore / reload: {swap / load:.3f} (target <= 0.1)")


if __name__ == "__main__":
    main()
