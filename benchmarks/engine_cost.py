"""Cost of the representation-metric engine at the shape of OLMo-2-0425-1B, against the bare forward pass.

Prints, measured side by side on the current device (median of --rounds interleaved rounds):
  * forward s/batch: the bare forward pass (no LM head, as `analyze` runs it) of a batch of --batch samples of
    T tokens (random weights, 16 blocks + embeddings = 17 layers, d 2048; bf16 on CUDA, fp32 on CPU);
  * metric s/batch: feeding that batch's 17 layers to a SideAccumulator (both presets; every sample
    token-level and pooled) until its results are computed; and the same for a pooled-only batch;
  * end of run at --pooled-n samples per side (17 layers): finalize (pooled metrics of Base and SFT), pair rows,
    bootstrap CIs (200 replicates), robustness test (20 splits).
Then the work those steps did, counted per operation class by intercepting every aten op (GEMM FLOPs,
factorisation FLOPs, bytes of everything else), and the projected `analyze` / bare-forward ratio on an H200
for the default run (1000 pooled / 100 token-level samples of T tokens, Base + SFT) at stated rates per
class: with every eigenvalue decomposition on the GPU (`--eigen-route device`), and with prompt entropy's
decompositions on the host's CPU threads, all of them (`host`) or the share that host and GPU finish together
(`auto`), priced at the one-thread time of a T x T decomposition measured here, --host-cores cores (16, the lent
H200 machine's) less two, and a device-to-host copy. On an accelerator it also times a batch of decompositions
on the device and on the host route side by side. The projection is a model, not a measurement: see `RATES`
and the README.

With --against SRC (a checkout's src/ directory, e.g. of the previous version), each round also times the
same token-level batch fed to that version's SideAccumulator in a subprocess, interleaved with the others, and
prints the per-batch metric time of both and their ratio.

Usage: python benchmarks/engine_cost.py [--lengths 256 512] [--batch 4] [--rounds 3] [--pooled-n 1000]
       [--end-rounds 3] [--device auto] [--tiny] [--against ../old/src] [--skip-end]
       (--rounds 0 --end-rounds 0: no timing, only the work census and the projection)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from sftscope import runtime
from sftscope.metrics.accumulators import SideAccumulator, pair_rows, side_rows

OLMO2_1B = dict(vocab_size=100352, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=4096, rope_theta=500000.0,
                rms_norm_eps=1e-6)
TINY = dict(OLMO2_1B, vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=4)

# H200 SXM (NVIDIA datasheet): bf16 dense 989 TFLOP/s, fp64 tensor core 67 TFLOP/s, HBM3e 4.8 TB/s.
# Rates per operation class used for the projection (see the README's performance section for why):
RATES = {
    "forward_flops": 0.40 * 989e12,   # bf16 GEMMs of the forward at 40% of peak (the convention)
    "gemm_flops": 0.50 * 67e12,       # float64 GEMM (Grams, products): half of the fp64 tensor-core peak
    "bytes": 0.50 * 4.8e12,           # memory-bound ops (casts, masks, reductions): half of HBM bandwidth
    # eigvalsh / svdvals: the reduction to tri-/bidiagonal form is half matrix-vector work, which reads the
    # trailing matrix per column: ~0.25 flop per byte at 2.4 TB/s. A batched solver can reach this; a loop of
    # one cuSOLVER call per matrix (torch's CUDA eigvalsh for n > 32) is latency-bound and far slower.
    "factor_flops": 0.25 * 0.50 * 4.8e12,
    # blocked Householder QR: its trailing updates are matrix products; a quarter of the fp64 tensor-core peak
    "qr_flops": 0.25 * 67e12,
}
LAUNCH_US = 10.0  # host time per op (dispatch + kernel launch) on the accelerator path
CLASS_OF_RATE = {"gemm_flops": "GEMM fp64", "bytes": "memory-bound", "factor_flops": "eigvalsh/svdvals",
                 "qr_flops": "QR"}


class OpCensus(TorchDispatchMode):
    """Count the work of every aten op run inside: GEMM FLOPs (torch's flop formulas), factorisation FLOPs
    (eigvalsh 4/3 n^3, svdvals 4 m n^2 - 4/3 n^3, QR 2 m n^2 - 2/3 n^3; Golub & Van Loan), bytes read + written
    by the rest (views excluded), and the op count. The CPU's own route through NumPy / SciPy (invisible to torch's dispatcher) is
    switched off while counting, so the census is that of the accelerator path."""

    def __enter__(self):
        try:
            from sftscope.metrics import dense
        except ImportError:  # versions without the CPU shortcut
            dense = None
        self._dense = dense
        if dense is not None:
            self._libraries, dense.CPU_LIBRARIES = dense.CPU_LIBRARIES, False
        return super().__enter__()

    def __exit__(self, *exc):
        if self._dense is not None:
            self._dense.CPU_LIBRARIES = self._libraries
        return super().__exit__(*exc)

    GEMMS = ("mm", "bmm", "addmm", "baddbmm", "addbmm", "matmul", "dot", "mv", "addmv")

    def __init__(self):
        super().__init__()
        self.work = defaultdict(float)
        from torch.utils.flop_counter import flop_registry
        self._flops = flop_registry

    @staticmethod
    def _tensors(tree):
        out = []
        stack = [tree]
        while stack:
            x = stack.pop()
            if isinstance(x, torch.Tensor):
                out.append(x)
            elif isinstance(x, (list, tuple)):
                stack.extend(x)
            elif isinstance(x, dict):
                stack.extend(x.values())
        return out

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if func.is_view or name in ("detach", "alias", "lift_fresh", "_unsafe_view"):
            return result  # a view moves no data and launches no kernel
        self.work["ops"] += 1
        packet = func.overloadpacket
        if name in ("linalg_qr", "geqrf"):
            a = args[0]
            m, n = max(a.shape[-2:]), min(a.shape[-2:])
            self.work["qr_flops"] += (2.0 * m * n * n - 2.0 / 3.0 * n ** 3) * (a.numel() // max(m * n, 1))
        elif name in ("_linalg_eigh", "linalg_eigh", "_linalg_svd", "linalg_svd"):
            a = args[0]
            if "eigh" in name:
                n = a.shape[-1]
                flops, kind = 4.0 / 3.0 * n ** 3, "eigh_flops"
                self.work["eigh_matrices"] += a.numel() // max(n * n, 1)
            else:
                m, n = max(a.shape[-2:]), min(a.shape[-2:])
                flops, kind = 4.0 * m * n * n - 4.0 / 3.0 * n ** 3, "svd_flops"
            flops *= a.numel() // max(a.shape[-1] * a.shape[-2], 1)
            self.work["factor_flops"] += flops
            self.work[kind] += flops
        elif name in self.GEMMS and packet in self._flops:
            self.work["gemm_flops"] += self._flops[packet](*args, out_val=result, **kwargs)
        else:
            tensors = self._tensors(args) + self._tensors(kwargs) + self._tensors(result)
            self.work["bytes"] += sum(t.numel() * t.element_size() for t in tensors)
        return result


def projected_seconds(work: dict[str, float]) -> dict[str, float]:
    return {k: work.get(k, 0.0) / RATES[k] for k in CLASS_OF_RATE}


def ideal_factor_seconds(work: dict[str, float]) -> float:
    """Factorisations under the streaming bound of a batched solver: half their FLOPs are the matrix-vector
    half of the reduction, reading one triangle per column (eigvalsh, 0.5 flop/byte) or the full panel
    (svdvals, 0.25 flop/byte) at half the HBM bandwidth; the other half runs at the GEMM rate."""
    eigh, svd = work.get("eigh_flops", 0.0), work.get("svd_flops", 0.0)
    return (eigh / 2 / (0.5 * RATES["bytes"]) + svd / 2 / (0.25 * RATES["bytes"])
            + (eigh + svd) / 2 / RATES["gemm_flops"])


def build_model(shape: dict, device: str, dtype: torch.dtype):
    from transformers import AutoModel, Olmo2Config

    torch.manual_seed(0)
    config = Olmo2Config(**shape)
    with torch.device(device):
        model = AutoModel.from_config(config, dtype=dtype)
    return model.eval(), config


class Layers:
    """Hooks that hand every layer (0 = embedding output, l = output of block l) to a consumer."""

    def __init__(self, model):
        self.model, self.consumer = model, None
        blocks = model.layers
        blocks[0].register_forward_pre_hook(lambda m, a, k: self._emit(0, a[0] if a else k["hidden_states"]),
                                            with_kwargs=True)
        for i, block in enumerate(blocks):
            block.register_forward_hook(lambda m, a, out, i=i: self._emit(i + 1, out[0] if isinstance(out, tuple)
                                                                          else out))

    def _emit(self, layer, hidden):
        if self.consumer is not None:
            self.consumer(layer, hidden)

    @torch.no_grad()
    def forward(self, ids, mask, consumer=None):
        self.consumer = consumer
        try:
            self.model(input_ids=ids, attention_mask=mask, use_cache=False)
        finally:
            self.consumer = None


_AGAINST = """
import sys, time, torch
from sftscope.metrics.accumulators import SideAccumulator
torch.set_num_threads(int(sys.argv[3]))
hidden, mask, names = torch.load(sys.argv[1], weights_only=True)
acc = SideAccumulator(len(hidden), token_ids=None if sys.argv[2] == "token" else set())
start = time.perf_counter()
for layer, h in enumerate(hidden):
    acc.update(layer, h, mask, names)
getattr(acc, "flush", lambda: None)()
print(time.perf_counter() - start)
"""


def against_seconds(src: str, path: Path, token: bool) -> float:
    """Per-batch metric seconds of another version's SideAccumulator (src on PYTHONPATH) on saved states."""
    env = dict(os.environ, PYTHONPATH=str(Path(src).resolve()))
    out = subprocess.run([sys.executable, "-c", _AGAINST, str(path), "token" if token else "pooled",
                          str(torch.get_num_threads())], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _sync(device: str) -> None:
    runtime.synchronize(device) if hasattr(runtime, "synchronize") else None


def _flush(acc) -> None:
    if hasattr(acc, "flush"):
        acc.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pooled-n", type=int, default=1000)
    parser.add_argument("--end-rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tiny", action="store_true", help="a 4-layer d=64 model (smoke test of this script)")
    parser.add_argument("--against", help="src/ of another version: time its SideAccumulator on the same batches")
    parser.add_argument("--skip-end", action="store_true", help="skip the end-of-run timing and the projection")
    parser.add_argument("--eigen-route", default="auto", choices=["auto", "device", "host"],
                        help="analyze's --eigen-route for the timed batches (matters only on an accelerator)")
    parser.add_argument("--host-cores", type=int, default=16,
                        help="CPU cores beside the GPU in the projection (the lent H200 machine has 16)")
    args = parser.parse_args()
    device = runtime.resolve_device(args.device)
    if not device.startswith("cuda"):
        runtime.configure_cpu_threads()
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    shape = TINY if args.tiny else OLMO2_1B
    model, config = build_model(shape, device, dtype)
    layers = Layers(model)
    num_layers, d = config.num_hidden_layers + 1, config.hidden_size
    print(f"device {runtime.device_description() if device == runtime.default_device() else device}, "
          f"model dtype {str(dtype).removeprefix('torch.')}, {num_layers} layers, d {d}, batch {args.batch}, "
          f"torch threads {torch.get_num_threads()}, rounds {args.rounds} (median)")

    gen = torch.Generator().manual_seed(0)
    per_length = {}
    for t in args.lengths:
        ids = torch.randint(0, config.vocab_size, (args.batch, t), generator=gen).to(device)
        mask = torch.ones(args.batch, t, dtype=torch.long, device=device)
        captured: dict[int, torch.Tensor] = {}
        layers.forward(ids, mask, lambda layer, h: captured.__setitem__(layer, h.detach().clone()))
        bool_mask = mask.bool()
        counter = [0]

        def feed(token: bool, route: str = args.eigen_route):
            counter[0] += 1
            names = [f"r{counter[0]}s{i}" for i in range(args.batch)]
            acc = SideAccumulator(num_layers, token_ids=None if token else set(), **_route_kwargs(route))
            start = time.perf_counter()
            for layer in range(num_layers):
                acc.update(layer, captured[layer], bool_mask, names)
            _flush(acc)
            _sync(device)
            return time.perf_counter() - start

        def forward():
            _sync(device)
            start = time.perf_counter()
            layers.forward(ids, mask)
            _sync(device)
            return time.perf_counter() - start

        saved = None
        if args.against:
            saved = Path(tempfile.mkdtemp(prefix="engine-cost-")) / f"hidden-{t}.pt"
            torch.save(([captured[i].cpu() for i in range(num_layers)], bool_mask.cpu(),
                        [f"s{i}" for i in range(args.batch)]), saved)
        if args.rounds:
            forward(), feed(True)  # warm-up
        fwd, tok, pooled, other = [], [], [], []
        for _ in range(args.rounds):  # interleaved, so background load hits all alike
            fwd.append(forward())
            tok.append(feed(True))
            pooled.append(feed(False))
            if saved is not None:
                other.append(against_seconds(args.against, saved, True))
        census_tok, census_pool = OpCensus(), OpCensus()
        with census_tok:  # every decomposition on the device: the projection re-prices them per route
            feed(True, "device")
        with census_pool:
            feed(False, "device")
        n_eig = min(t, d)  # prompt entropy decomposes the smaller of T x T and d x d
        host_eig = host_eigvalsh_seconds(n_eig, max(1, args.rounds), d)
        flops = FlopCounterMode(display=False)
        with flops:
            layers.forward(ids, mask)
        med = statistics.median
        per_length[t] = dict(census_tok=census_tok.work, census_pool=census_pool.work,
                             fwd_flops=flops.get_total_flops(), host_eig=host_eig, n_eig=n_eig)
        print(f"T={t}: one {n_eig} x {n_eig} float64 eigvalsh on one CPU thread of this machine (LAPACK via NumPy, as the "
              f"host route runs it): {host_eig * 1e3:.1f} ms (median of {max(3, args.rounds)})")
        if device.startswith("cuda"):
            route_probe(n_eig, d, device, args.rounds)
        if args.rounds:
            print(f"T={t}: forward {med(fwd):.3f} s/batch | metrics, token-level + pooled batch {med(tok):.3f} s "
                  f"(x{med(tok) / med(fwd):.2f} of forward) | pooled-only batch {med(pooled):.4f} s "
                  f"(x{med(pooled) / med(fwd):.3f})   rounds: fwd {[round(x, 3) for x in fwd]} "
                  f"tok {[round(x, 3) for x in tok]}")
        if other:
            print(f"T={t}: metrics of {args.against}: {med(other):.3f} s/batch (rounds {[round(x, 3) for x in other]})"
                  f" -> this version is {med(other) / med(tok):.2f}x faster (median of {args.rounds} interleaved rounds)")
            saved.unlink()
        del captured

    if args.skip_end:
        return
    end = end_of_run(num_layers, d, args.pooled_n, args.end_rounds, device)
    project(per_length, end, args.batch, num_layers, args.host_cores)


def _route_kwargs(route: str) -> dict:
    """SideAccumulator's eigen_route where this version has it (an older one measured with --against has not)."""
    import inspect

    return {"eigen_route": route} if "eigen_route" in inspect.signature(SideAccumulator).parameters else {}


def _gram_like(t: int, d: int, seed: int) -> torch.Tensor:
    """A t x t unit-diagonal Gram of random rows with a shared direction (hidden states are far from isotropic)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(t, d, generator=gen, dtype=torch.float64) + 4.0 * torch.randn(1, d, generator=gen, dtype=torch.float64)
    z = z / torch.linalg.vector_norm(z, dim=-1, keepdim=True)
    return z @ z.T


def host_eigvalsh_seconds(t: int, rounds: int, d: int = 2048) -> float:
    """Median seconds of one t x t float64 eigvalsh on one CPU thread (the host route's unit of work)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    mat = _gram_like(t, d, 5).numpy()
    times = []
    with threadpool_limits(limits=1, user_api="blas"):
        np.linalg.eigvalsh(mat)  # warm-up
        for _ in range(max(3, rounds)):
            start = time.perf_counter()
            np.linalg.eigvalsh(mat)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def route_probe(t: int, d: int, device: str, rounds: int, count: int = 8) -> None:
    """On an accelerator: seconds for `count` t x t decompositions on the device (torch, one batched call) and on
    the host route (copy + LAPACK on the router's threads), median of interleaved rounds."""
    from sftscope.metrics import dense

    mats = torch.stack([_gram_like(t, d, i) for i in range(count)]).to(device)
    sizes = torch.full((count,), t, dtype=torch.int64, device=device)
    host = dense.EigenRouter("host")
    dev, hst = [], []
    for r in range(max(1, rounds) + 1):
        _sync(device)
        start = time.perf_counter()
        dense.eigvalsh_blocks(mats, sizes)
        _sync(device)
        a = time.perf_counter() - start
        start = time.perf_counter()
        dense.eigvalsh_blocks(mats, sizes, router=host)
        b = time.perf_counter() - start
        if r:  # the first round warms both up
            dev.append(a)
            hst.append(b)
    med = statistics.median
    print(f"T={t}: {count} decompositions of {t} x {t}: device {med(dev) * 1e3:.1f} ms "
          f"({med(dev) / count * 1e3:.2f} ms each), host route on {host.workers} threads {med(hst) * 1e3:.1f} ms "
          f"(median of {len(dev)} interleaved rounds)")


def end_of_run(num_layers: int, d: int, n: int, rounds: int, device: str) -> dict:
    """Time and census of the end-of-run math at n pooled samples per side (Base and a perturbed SFT)."""
    from sftscope.analysis.uncertainty import add_uncertainty

    gen = torch.Generator().manual_seed(1)
    basis = torch.randn(64, d, generator=gen)
    sides = {}
    for side, noise in (("base", 0.0), ("sft", 0.3)):
        acc = SideAccumulator(num_layers, token_ids=set())
        g = torch.Generator().manual_seed(2)
        for layer in range(num_layers):
            for start in range(0, n, 250):
                b = min(250, n - start)
                latent = torch.randn(b, 64, generator=g)
                rows = latent @ basis * (1 + layer) + torch.randn(b, d, generator=g) * (0.5 + noise) + 3.0
                acc.update(layer, rows[:, None, :].to(device), torch.ones(b, 1, dtype=torch.bool, device=device),
                           [f"x{start + i:05d}" for i in range(b)])
        _flush(acc)
        sides[side] = acc
    state = {k: v for k, v in sides.items()}

    def fresh(acc):
        # a copy with no finalized state, so every round recomputes the pooled metrics
        new = SideAccumulator(num_layers, token_ids=set())
        for layer in range(num_layers):
            ids, rows = acc.pooled_matrix(layer)
            new.update(layer, rows[:, None, :], torch.ones(len(ids), 1, dtype=torch.bool, device=rows.device), ids)
        _flush(new)
        return new

    steps = defaultdict(list)
    census = defaultdict(lambda: defaultdict(float))
    for r in range(rounds + 1):
        base, sft = fresh(state["base"]), fresh(state["sft"])
        watch = OpCensus() if r == rounds else None
        timings = {}
        for name, fn in (("finalize", lambda: (side_rows(base, "base", "x"), side_rows(sft, "sft", "x"))),
                         ("pair rows", lambda: pair_rows(base, sft, "sft", "x")),
                         ("bootstrap 200", lambda: add_uncertainty([], base, sft, "sft", "x", 200, 0, 0)),
                         ("robustness 20", lambda: add_uncertainty([], base, sft, "sft", "x", 0, 20, 0))):
            _sync(device)
            start = time.perf_counter()
            if watch is not None:
                with watch:
                    fn()
                for k, v in watch.work.items():
                    census[name][k] += v
                watch.work.clear()
            else:
                fn()
            _sync(device)
            timings[name] = time.perf_counter() - start
        if r < rounds:
            for k, v in timings.items():
                steps[k].append(v)
    med = {k: statistics.median(v) for k, v in steps.items()}
    if rounds:
        print(f"end of run, N={n} pooled per side, {num_layers} layers: " +
              ", ".join(f"{k} {v:.2f} s" for k, v in med.items()) + f"  (median of {rounds})")
    return {"seconds": med, "census": census}


def project(per_length: dict, end: dict, batch: int, num_layers: int, host_cores: int = 16) -> None:
    print("\nProjection to an H200 (a model at stated rates, not a measurement): "
          + ", ".join(f"{CLASS_OF_RATE[k]} {RATES[k] / 1e12:.1f} T{'B' if k == 'bytes' else 'FLOP'}/s"
                      for k in CLASS_OF_RATE) + f", forward bf16 {RATES['forward_flops'] / 1e12:.0f} TFLOP/s")
    end_s = sum(sum(projected_seconds(c).values()) for c in end["census"].values())
    for t, r in per_length.items():
        fwd = r["fwd_flops"] / RATES["forward_flops"]
        tok = projected_seconds(r["census_tok"])
        pool = projected_seconds(r["census_pool"])
        # default run: 1000 pooled samples of which 100 token-level, Base + SFT, T tokens each
        n_tok, n_pool, sides = 100, 1000, 2
        run_fwd = fwd * n_pool / batch * sides
        run_tok = sum(tok.values()) * n_tok / batch * sides
        run_pool = sum(pool.values()) * (n_pool - n_tok) / batch * sides
        ratio = (run_fwd + run_tok + run_pool + end_s) / run_fwd
        print(f"T={t}: per batch of {batch}: forward {fwd * 1e3:.1f} ms; token-level metrics "
              + ", ".join(f"{CLASS_OF_RATE[k]} {v * 1e3:.1f} ms" for k, v in tok.items())
              + f"; pooled-only {sum(pool.values()) * 1e3:.2f} ms; host launches at {LAUNCH_US:.0f} us per op: "
              f"token-level {r['census_tok']['ops'] * LAUNCH_US / 1e3:.1f} ms, pooled-only "
              f"{r['census_pool']['ops'] * LAUNCH_US / 1e3:.1f} ms (asynchronous: hidden while below the "
              f"forward's device time)")
        share = _factor_share(r, end, batch, n_tok, sides)
        ideal = sum(ideal_factor_seconds(c) for c in end["census"].values()) \
            + ideal_factor_seconds(r["census_tok"]) * n_tok / batch * sides
        print(f"T={t}: default run: forward {run_fwd:.1f} s, token-level metrics {run_tok:.1f} s, pooled updates "
              f"{run_pool:.2f} s, end of run {end_s:.2f} s -> PROJECTED H200 analyze / bare forward, every "
              f"decomposition on the GPU (--eigen-route device) = {ratio:.2f} (no overlap credited); with "
              f"factorisations at the streaming bound of a batched solver: "
              f"{(run_fwd + run_tok + run_pool + end_s - share + ideal) / run_fwd:.2f}; 10x slower than assumed "
              f"(one call per matrix): {(run_fwd + run_tok + run_pool + end_s + 9 * share) / run_fwd:.2f}")
        routes = route_projection(r, run_fwd, run_tok, run_pool, end_s, n_tok / batch * sides, r["n_eig"],
                                  host_cores)
        print(f"T={t}: the {routes['matrices']:.0f} decompositions of prompt entropy with the host's cores (one "
              f"{r['n_eig']} x {r['n_eig']} eigvalsh {r['host_eig'] * 1e3:.1f} ms on one thread, measured here; {routes['workers']} "
              f"threads of {host_cores} cores; copies at {PCIE_BYTES / 1e9:.0f} GB/s), the host's share "
              f"overlapping the GPU: --eigen-route host {routes['host']:.2f}; --eigen-route auto (the default: the "
              f"host takes what it absorbs while the GPU runs the rest and the forward passes) -> PROJECTED "
              f"{routes['auto']:.2f} ({routes['auto_share']:.0%} on the host); if the GPU's decompositions run 10x slower than assumed: auto {routes['auto_slow']:.2f} "
              f"({routes['auto_slow_share']:.0%} on the host)")


PCIE_BYTES = 25e9  # device -> pageable host memory: half of PCIe Gen5 x16's ~50 GB/s


def route_projection(r: dict, run_fwd: float, run_tok: float, run_pool: float, end_s: float, scale: float,
                     n: int, host_cores: int) -> dict:
    """The default run's ratio when prompt entropy's decompositions go to host threads (all, or the share that
    lets host and device finish together, as `--eigen-route auto` aims for), the host's share running while the
    device does everything else. Host per-matrix wall time: one thread's measured seconds / workers, plus its
    copy from the device."""
    matrices = r["census_tok"].get("eigh_matrices", 0.0) * scale
    eig_device = r["census_tok"].get("eigh_flops", 0.0) / RATES["factor_flops"] * scale
    other = run_fwd + run_tok - eig_device + run_pool  # device seconds of everything but the decompositions
    workers = max(1, host_cores - 2)  # less the thread that drives the GPU and a metric thread
    each_host = r["host_eig"] / workers + n * n * 8 / PCIE_BYTES
    out = {"matrices": matrices, "workers": workers,
           "host": (max(other, matrices * each_host) + end_s) / run_fwd}
    for name, slow in (("auto", 1.0), ("auto_slow", 10.0)):
        each_device = eig_device * slow / max(matrices, 1.0)
        on_device = min(matrices, max(0.0, (matrices * each_host - other) / (each_device + each_host)))
        wall = max(other + on_device * each_device, (matrices - on_device) * each_host)
        out[name] = (wall + end_s) / run_fwd
        out[name + "_share"] = 1 - on_device / max(matrices, 1.0)
    return out


def _factor_share(r, end, batch, n_tok, sides) -> float:
    tok = r["census_tok"].get("factor_flops", 0.0) / RATES["factor_flops"] * n_tok / batch * sides
    return tok + sum(c.get("factor_flops", 0.0) for c in end["census"].values()) / RATES["factor_flops"]


if __name__ == "__main__":
    main()
