"""Training step time and peak memory: LoRA on the 20%-80% block vs on all layers, at the same budget.

    python benchmarks/midblock_step.py [--layers 16 --d-model 256 --seq 256 --batch 8 --steps 8 --rounds 3]

Each (spec, round) runs in a fresh subprocess so one configuration's allocations cannot hide in another's
peak. Memory, two ways. (1) peak+ MiB: tracemalloc sees only Python objects, not torch's C++ allocations, so
on CPU it is the process's peak resident set (VmHWM in /proc/self/status, reset by writing 5 to
/proc/self/clear_refs) minus the resident set once model, adapters and optimizer exist, over the warm-up and
timed steps: activations kept for backward, gradients, Adam state, allocator slack. On CUDA it is
torch.cuda.max_memory_allocated over the same window. (2) saved MiB: the bytes of the tensors autograd saves
for backward in one forward pass (torch.autograd.graph.saved_tensors_hooks, each storage once): exact and
noise-free, the part of the peak that block selection changes. Rounds alternate the two specs so drifting
load on a shared machine hits both alike. Time, two ways: wall clock per step and process CPU time per step;
with one torch thread (default --threads 1) CPU time counts the work done and is far less disturbed by other
processes on a shared machine than wall time (on CUDA only the wall time after synchronize means anything).

Why the mid-block step is cheaper, and by how much at most: with embeddings frozen and inputs that need no
grad, autograd records nothing below the first adapted block, so those blocks keep no activations and are
never back-propagated (checked below with forward hooks). The blocks ABOVE the selection must still be
back-propagated to reach it, so with 20%-80% of 16 blocks (3-12) backward spans 13 of 16 blocks.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time

SPECS = ("20%-80%", "all")


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _one_run(spec: str, args: argparse.Namespace, queue) -> None:
    import gc
    import warnings

    warnings.simplefilter("ignore", FutureWarning)  # PEFT calls a deprecated transformers helper

    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from sftscope.tuning.config import TrainConfig
    from sftscope.tuning.train import adapt_model

    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=args.vocab, hidden_size=args.d_model, intermediate_size=int(args.d_model * 8 / 3),
                         num_hidden_layers=args.layers, num_attention_heads=args.d_model // 32,
                         num_key_value_heads=args.d_model // 64, max_position_embeddings=args.seq)
    model = AutoModelForCausalLM.from_config(config).to(device).train()
    adapted = adapt_model(model, TrainConfig(blocks=spec, rank=args.rank))
    peft_model = adapted.model
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, args.vocab, (args.batch, args.seq), generator=gen).to(device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}

    # Which blocks does autograd record? (their output requires grad iff backward will pass through them)
    recorded = {}
    blocks = peft_model.base_model.model.model.layers
    hooks = [b.register_forward_hook(lambda m, i, o, k=k: recorded.__setitem__(k, o.requires_grad))
             for k, b in enumerate(blocks)]
    peft_model(**batch)
    for h in hooks:
        h.remove()

    def step():
        loss = peft_model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # Activation memory, exactly: bytes of the tensors autograd saves for backward (each storage once).
    saved = {}
    def pack(t):
        saved[(t.untyped_storage().data_ptr(), t.device)] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = peft_model(**batch).loss
    del loss
    gc.collect()
    # Peak window opens before the first step: Adam state, gradients and activations all count.
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        peak_reset = _reset_peak_rss()
        base = _rss_kib("VmRSS") * 1024
    times, cpu_times = [], []
    step()  # warm-up, untimed
    for _ in range(args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else _rss_kib("VmHWM") * 1024
    queue.put({"spec": spec, "layers": adapted.layers, "trainable": adapted.trainable_count,
               "reference": adapted.reference_count, "step_s": statistics.median(times),
               "cpu_s": statistics.median(cpu_times),
               "peak_extra_mib": (peak - base) / 2**20,
               "saved_mib": sum(saved.values()) / 2**20, "device": device,
               "peak_reset": device == "cuda" or peak_reset,
               "backprop_blocks": sorted(k for k, v in recorded.items() if v)})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per run (after one warm-up step)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh-process runs per spec, alternating")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 = steadier on shared boxes)")
    args = parser.parse_args(argv)

    ctx = mp.get_context("spawn")
    results = {spec: [] for spec in SPECS}
    for _ in range(args.rounds):
        for spec in SPECS:
            queue = ctx.Queue()
            proc = ctx.Process(target=_one_run, args=(spec, args, queue))
            proc.start()
            results[spec].append(queue.get())
            proc.join()

    first = {spec: runs[0] for spec, runs in results.items()}
    step = {spec: statistics.median(r["step_s"] for r in runs) for spec, runs in results.items()}
    cpu = {spec: statistics.median(r["cpu_s"] for r in runs) for spec, runs in results.items()}
    peak = {spec: statistics.median(r["peak_extra_mib"] for r in runs) for spec, runs in results.items()}
    saved = {spec: runs[0]["saved_mib"] for spec, runs in results.items()}
    print(f"Llama d={args.d_model}, {args.layers} layers, vocab {args.vocab}, batch {args.batch} x {args.seq} "
          f"tokens, LoRA q,k,v,o, reference rank {args.rank}, device {first['all']['device']}, "
          f"{args.rounds} rounds x {args.steps} steps, medians")
    print(f"{'spec':>9} {'blocks':>7} {'trainable':>10} {'vs ref':>8} {'step ms':>8} {'cpu ms':>8} {'peak+ MiB':>9} {'saved MiB':>9}  backprop blocks")
    for spec in SPECS:
        r = first[spec]
        err = (r["trainable"] - r["reference"]) / r["reference"]
        bp = r["backprop_blocks"]
        print(f"{spec:>9} {len(r['layers']):>7} {r['trainable']:>10,} {err:>+8.3%} {step[spec] * 1e3:>8.1f} {cpu[spec] * 1e3:>8.1f} "
              f"{peak[spec]:>9.1f} {saved[spec]:>9.1f}  {bp[0]}-{bp[-1]} ({len(bp)})")
    print(f"step-time ratio 20%-80% / all = {step['20%-80%'] / step['all']:.3f} (wall), "
          f"{cpu['20%-80%'] / cpu['all']:.3f} (process CPU time); "
          f"peak-memory ratio = {peak['20%-80%'] / peak['all']:.3f}; "
          f"saved-activation ratio = {saved['20%-80%'] / saved['all']:.3f}"
          + ("" if first["all"]["peak_reset"] else " (peak RSS could not be reset: figures include set-up)"))
    print("per-round step ms: " + "; ".join(f"{s}: " + ", ".join(f"{r['step_s'] * 1e3:.0f}" for r in runs)
                                              for s, runs in results.items()))


if __name__ == "__main__":
    main()
