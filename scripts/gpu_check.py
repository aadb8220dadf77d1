"""End-to-end check on one accelerator: analyze vs the bare forward, one tune cell, evaluate; offline.

Builds everything it needs in --out (no network, no shared data): a byte-level BPE tokenizer and GSM8K-format
records generated from a fixed seed, and a random Base / SFT pair at the shape of OLMo-2-0425-1B (bf16 on a
GPU). Then, timed in this process, with peak accelerator memory per step:
  1. `sftscope analyze` with its defaults at 200 pooled / 50 token-level samples of 512 tokens, and the bare
     forward passes of both models over the same number of samples and tokens (loading and tokenisation
     included on both sides, as analyze includes them), in --rounds interleaved rounds -> median ratio;
  2. `sftscope tune` of one cell (LoRA on mask 01000, 20 steps, gsm8k 20 items, no retention);
  3. `sftscope evaluate` of the Base on gsm8k (20 items).
Prints one summary: the ratio, every step's seconds, peak memory, where analyze's eigenvalue decompositions ran
(`--eigen-route auto`: GPU and CPU threads, with each route's measured speed), and any error (exit status 1 if
one failed).
--tiny runs the same steps at a tiny shape and small counts (the CPU dry run the tests use).

Usage: bash scripts/gpu_check.sh --out DIR [--tiny] [--rounds 3] [--engine-cost]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

from sftscope import runtime

OLMO2_1B = dict(vocab_size=100352, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=4096, rope_theta=500000.0,
                rms_norm_eps=1e-6, tie_word_embeddings=False)
TINY = dict(OLMO2_1B, vocab_size=0, hidden_size=64, intermediate_size=128, num_hidden_layers=5, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=1024)
NAMES = ["Ava", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea", "Max", "Nia"]
ITEMS = ["apples", "marbles", "stamps", "books", "coins", "shells", "cards", "pencils", "cookies", "stickers"]


def gsm8k_records(n: int, seed: int, sentences: int) -> list[dict]:
    """GSM8K-format records ({"question", "answer" ending in '#### N'}): long multi-step word problems."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        total = rng.randint(5, 40)
        question = [f"{name} has {total} {item}."]
        steps = []
        for _ in range(sentences):
            other, k = rng.choice(NAMES), rng.randint(1, 9)
            if rng.random() < 0.5 or total <= k:
                question.append(f"Then {other} gives {name} {k} more {item}, and {name} puts them in a box.")
                steps.append(f"{total} + {k} = <<{total}+{k}={total + k}>>{total + k}")
                total += k
            else:
                question.append(f"Later {name} gives {k} of the {item} to {other}, who wanted some for school.")
                steps.append(f"{total} - {k} = <<{total}-{k}={total - k}>>{total - k}")
                total -= k
        question.append(f"How many {item} does {name} have at the end?")
        records.append({"question": " ".join(question), "answer": "\n".join(steps) + f"\n#### {total}"})
    return records


def build(out: Path, tiny: bool, device: str) -> tuple[Path, Path, Path]:
    """Data dir (gsm8k train/test), tokenizer, and the random Base / SFT pair saved like hub models."""
    from transformers import AutoModelForCausalLM, Olmo2Config

    from sftscope.organism.tokenizer import save_tokenizer, train_tokenizer

    data = out / "data"
    sentences = 6 if tiny else 40  # 40 sentences: every rendered record is longer than 512 tokens
    splits = {"train": gsm8k_records(120 if tiny else 400, 1, sentences),
              "test": gsm8k_records(60 if tiny else 240, 2, sentences)}
    (data / "gsm8k").mkdir(parents=True, exist_ok=True)
    for split, records in splits.items():
        (data / "gsm8k" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    texts = [r["question"] + " " + r["answer"] for r in splits["train"]]
    tokenizer = train_tokenizer(texts, vocab_size=600 if tiny else 2000, model_max_length=4096)
    shape = dict(TINY if tiny else OLMO2_1B)
    shape["vocab_size"] = shape["vocab_size"] or len(tokenizer)
    config = Olmo2Config(**shape, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    paths = []
    for name, noise in (("base", 0.0), ("sft", 0.02)):
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        if noise:
            gen = torch.Generator(device=device).manual_seed(1)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(noise * p.abs().mean() * torch.randn(p.shape, generator=gen, device=device, dtype=p.dtype))
        model.save_pretrained(out / name)
        save_tokenizer(tokenizer, out / name)
        paths.append(out / name)
        del model
    return data, paths[0], paths[1]


def bare_forward(base: Path, sft: Path, data: Path, samples: int, max_length: int, batch_size: int, dtype: str,
                 device: str) -> None:
    """The forward passes analyze needs and nothing else: load both models, render and tokenise the same number
    of gsm8k samples, run each batch (sorted by length, as analyze batches) through each model without the head."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftscope.data.registry import get_dataset, load_records

    spec = get_dataset("gsm8k")
    records = load_records("gsm8k", data)[:samples]
    torch_dtype = runtime.resolve_dtype(dtype, device)
    models = [AutoModelForCausalLM.from_pretrained(p, dtype=torch_dtype).to(device).eval() for p in (base, sft)]
    tokenizer = AutoTokenizer.from_pretrained(base)
    encoded = sorted((tokenizer(spec.render(r), truncation=True, max_length=max_length)["input_ids"] for r in records),
                     key=len)
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start:start + batch_size]
            width = max(len(x) for x in chunk)
            ids = torch.tensor([x + [tokenizer.pad_token_id] * (width - len(x)) for x in chunk], device=device)
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in chunk], device=device)
            for model in models:
                model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
    runtime.synchronize(device)


def cli(*argv: str) -> None:
    from sftscope.cli import main

    status = main([str(a) for a in argv])
    if status != 0:
        raise RuntimeError(f"sftscope {argv[0]} exited with status {status}")


class Steps:
    """Runs named steps, timing each (seconds, synchronised) with its peak accelerator memory; keeps errors."""

    def __init__(self, device: str):
        self.device, self.results = device, []

    def run(self, name: str, fn) -> float | None:
        runtime.reset_peak_memory(self.device)
        runtime.synchronize(self.device)
        start = time.perf_counter()
        error = None
        try:
            fn()
            runtime.synchronize(self.device)
        except Exception as exc:  # noqa: BLE001 - reported in the summary, the next steps still run
            error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        seconds = time.perf_counter() - start
        peak = runtime.peak_memory(self.device)
        kind = "accelerator"
        if peak is None:  # CPU: the process's resident-set high-water mark so far (it never goes down)
            import resource
            peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "RSS"
        self.results.append({"step": name, "seconds": seconds, "peak_gib": peak / 2 ** 30, "peak_kind": kind,
                             "error": error})
        print(f"[gpu_check] {name}: {seconds:.1f} s, peak {kind} {peak / 2 ** 30:.2f} GiB"
              + (f", ERROR {error}" if error else ""), flush=True)
        return None if error else seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="working folder (models, data, run directories)")
    parser.add_argument("--tiny", action="store_true", help="tiny shape and counts (CPU dry run)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved analyze / forward rounds (default 3; "
                        "tiny 1)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--engine-cost", action="store_true", help="also run benchmarks/engine_cost.py here")
    args = parser.parse_args()
    device = runtime.resolve_device(args.device)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rounds = args.rounds or (1 if args.tiny else 3)
    pooled, token, length = (24, 8, 128) if args.tiny else (200, 50, 512)
    steps, tune_steps, limit = (20, 20, 20)
    print(f"[gpu_check] device: {runtime.device_description()}; torch {torch.__version__}; out {out}", flush=True)
    check = Steps(device)
    built: dict = {}
    check.run("build random pair + data", lambda: built.update(zip(("data", "base", "sft"), build(out, args.tiny,
                                                                                                   device))))
    if not built:
        return _summary(check, None)
    data, base, sft = built["data"], built["base"], built["sft"]
    dtype = "bf16" if device.startswith("cuda") else "float32"
    check.run("warm-up forward", lambda: bare_forward(base, sft, data, 8, 32, 8, dtype, device))
    analyze, forward = [], []
    for r in range(rounds):  # interleaved, so load and clocks hit both alike
        forward.append(check.run(f"bare forward round {r}", lambda: bare_forward(base, sft, data, pooled, length, 8,
                                                                                  dtype, device)))
        analyze.append(check.run(f"analyze round {r}", lambda r=r: cli(
            "analyze", "--base", base, "--sft", sft, "--data", "gsm8k", "--data-dir", data, "--token-samples", token,
            "--pooled-samples", pooled, "--max-length", length, "--batch-size", 8, "--dtype", dtype,
            "--out", out / f"analyze-{r}")))
    ratio = None
    if all(analyze) and all(forward):
        ratio = statistics.median(analyze) / statistics.median(forward)
    check.run("tune one cell", lambda: cli(
        "tune", "--base", base, "--train", "gsm8k", "--blocks", "01000", "--max-steps", tune_steps, "--tasks", "gsm8k",
        "--limit", limit, "--retention", "none", "--data-dir", data, "--out", out / "tune"))
    check.run("evaluate gsm8k", lambda: cli("evaluate", "--model", f"base={base}", "--tasks", "gsm8k", "--limit", limit,
                                            "--data-dir", data, "--out", out / "evaluate"))
    if args.engine_cost:
        script = Path(__file__).resolve().parents[1] / "benchmarks" / "engine_cost.py"
        check.run("engine_cost.py", lambda: _run_script(script, ["--tiny"] if args.tiny else []))
    return _summary(check, ratio, rounds)


def _run_script(script: Path, argv: list[str]) -> None:
    import runpy

    saved = sys.argv
    sys.argv = [str(script), *argv]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = saved


def _summary(check: Steps, ratio: float | None, rounds: int = 0) -> int:
    errors = [r for r in check.results if r["error"]]
    print("\n[gpu_check] SUMMARY")
    for r in check.results:
        print(f"  {r['step']:<28} {r['seconds']:8.1f} s   peak {r['peak_kind']} {r['peak_gib']:6.2f} GiB   "
              f"{r['error'] or 'ok'}")
    if ratio is not None:
        print(f"  RATIO analyze / bare forward (median of {rounds} interleaved rounds, loading included on both "
              f"sides): {ratio:.2f}")
    from sftscope.metrics import dense

    eigen = dense.router("auto")  # analyze's default route: where its decompositions ran, over every round
    if sum(eigen.matrices.values()):
        print(f"  analyze's {eigen.describe()}")
    print(f"  errors: {len(errors)}")
    return 1 if errors or ratio is None else 0


if __name__ == "__main__":
    sys.exit(main())
