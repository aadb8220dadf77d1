"""Streaming accumulator for one model on one data set, fed batch by batch and layer by layer by the capture.

Per layer of a batch, two stages:
  * stage (on the caller's thread, on the device that holds the hidden states, no host synchronisation): mask
    the padding, masked float64 sums for the pooled rows, non-finite counts, and the token-level samples' rows
    moved valid-first and upcast to float64;
  * finish: the registered token kernels (one Gram per sample and one batched eigvalsh for every sample and
    preset, curvature, sparsity; all on that device), then ONE device-to-host copy of the small per-sample
    results, and the bookkeeping. With `asynchronous=True` (the default when the states are on a CUDA device)
    a background thread finishes the layers in order, so the forward pass of the next layers and batches is
    never held up by the metric work or by its synchronisations (eigvalsh synchronises on CUDA); on the CPU
    the layer is finished at once. The results are the same either way.
Pooled rows (masked mean of valid tokens) stay on that device and the dataset-level metrics run there once, in
`finalize`. Memory: num_layers x N_pooled x d floats, no token axis; token matrices are never kept.

`state_dict()` / `merge()` / `from_state_dict()` export and combine the state of accumulators that saw
disjoint samples (e.g. data-parallel ranks): the merged accumulator gives the same tables as one that saw them
all (pooled rows are ordered by sample id; token means use exact sums).
"""

from __future__ import annotations

import queue
import threading
from collections import Counter, defaultdict
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch

from sftscope.metrics.core import PRESETS, MetricUndefined, check_preset
from sftscope.metrics import dense
from sftscope.metrics.dense import cpu_threads
from sftscope.metrics.pooled import pooled_metrics
from sftscope.metrics.registry import METRICS, token_keys, token_values
from sftscope.metrics.token import TokenBatch

NONFINITE_REASON = "non-finite activations"
POOLED_KEY = ("pooled", "")  # skip counter for samples left out of every pooled metric of a layer
_FORMAT_VERSION = 1
_KEY_SEP = "|"


def token_metric_keys(presets: Iterable[str]) -> list[tuple[str, str]]:
    """(metric, preset) keys of the registered token metrics; a preset-free one is stored under preset ''."""
    keys = token_keys(list(presets))
    return [k for k in keys if k[1]] + [k for k in keys if not k[1]]


def _index(positions: list[int], device: torch.device) -> torch.Tensor:
    """A device index tensor from host positions, copied without waiting for the device's queue."""
    return torch.tensor(positions, dtype=torch.int64).to(device, non_blocking=True)


def _valid_first(hidden: torch.Tensor, mask: torch.Tensor, eager: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample's valid tokens moved to the front in order (left, right or holey padding alike), zeros after:
    [B, T, d], [B, T] -> [B, T', d], lengths [B]. `eager` (CPU, finished at once): the padded length is cut to
    the longest sample and aligned batches are not gathered; otherwise the shape is kept, as finding the
    longest sample would wait for the device."""
    lengths = mask.sum(1)
    if eager:
        t_max = int(lengths.max()) if lengths.numel() else 0
        front = torch.arange(mask.shape[1])[None, :] < lengths[:, None]
        if not torch.equal(front, mask):
            order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
            hidden = torch.gather(hidden, 1, order[:, :, None].expand(-1, -1, hidden.shape[2]))
        return hidden[:, :t_max], lengths
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    return torch.gather(hidden, 1, order[:, :, None].expand(-1, -1, hidden.shape[2])), lengths


@dataclass
class _Staged:
    """One layer of one batch after the device stage, waiting to be finished."""
    layer: int
    ids: list[str]                 # the kept samples
    want_token: list[bool]
    want_pooled: list[bool]
    rows: torch.Tensor             # [b, d] float64 masked means (device)
    lengths: torch.Tensor          # [b] valid tokens (device)
    finite: torch.Tensor           # [b] bool: no non-finite valid entry (device)
    bad: torch.Tensor | None       # [b] non-finite valid entries (device), None when known to be all zero
    tokens: TokenBatch | None      # the token-level samples, valid first, non-finite ones zeroed
    token_rows: list[int]          # their positions among the kept samples


class _Finisher:
    """Runs fn(job) for submitted jobs in submission order on one background thread, started on demand and
    ended when idle; at most `depth` jobs wait (bounding the device memory they hold). After an exception in fn
    the later jobs are dropped and every submit() or join() raises it (as the cause of a RuntimeError).
    `pressure`: moving average of how often a submission found the queue full (the caller had to wait)."""

    def __init__(self, fn, depth: int):
        self._fn = fn
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._lock = threading.Lock()
        self._running = False
        self._error: BaseException | None = None
        self.pressure = 0.0

    def submit(self, job) -> None:
        self._raise()
        self.pressure = 0.8 * self.pressure + 0.2 * float(self._queue.full())
        self._queue.put(job)
        with self._lock:
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="sftscope-metrics", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    self._running = False
                    return
            try:
                if self._error is None:
                    self._fn(job)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                self._error = exc
            finally:
                self._queue.task_done()

    def join(self) -> None:
        self._queue.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:  # sticky: the state after a failed layer is incomplete
            raise RuntimeError(f"metric computation failed: {self._error}") from self._error


class SideAccumulator:
    """Per-layer metric state of one model (a 'side') on one data set; layers 0..num_layers-1 (= 0..L).

    Args:
        num_layers: layers fed (L + 1 for L blocks).
        presets: metric presets to compute ("paper", "canonical").
        token_ids / pooled_ids: the samples of the token-level / pooled metrics (None = every sample).
        alpha: matrix-entropy order; sparsity_threshold: sparsity's fraction of the sample's max |z|.
        pooled_dtype: dtype of the kept pooled rows (float32 halves memory; float64 keeps every digit).
        threads: torch and NumPy/SciPy BLAS threads while ingesting on the CPU (None = leave them); 1 by default,
            as the per-layer decompositions and memory-bound passes ran up to 10x slower with thread pools on
            shared cores.
        asynchronous: finish layers on a background thread (None = when the hidden states are on CUDA).
        queue_depth: staged layers allowed to wait for the background thread before update() blocks.
        eigen_route: where prompt entropy's eigenvalue decompositions run when the hidden states are on an
            accelerator: "auto" (split between the device and host threads by measured speed), "device" or
            "host" (`dense.EigenRouter`; the process's router for that mode is shared). On the CPU: the host.

    Raises:
        ValueError: an unknown preset or eigen route.
    """

    def __init__(self, num_layers: int, presets: Iterable[str] = PRESETS, token_ids: set[str] | None = None,
                 pooled_ids: set[str] | None = None, alpha: float = 1.0, sparsity_threshold: float = 0.01,
                 pooled_dtype: torch.dtype = torch.float32, threads: int | None = 1, asynchronous: bool | None = None,
                 queue_depth: int = 4, eigen_route: str = "auto"):
        self.num_layers = int(num_layers)
        self.presets = [check_preset(p) for p in presets]
        self.token_ids = None if token_ids is None else set(token_ids)    # None = every sample
        self.pooled_ids = None if pooled_ids is None else set(pooled_ids)
        self.alpha, self.sparsity_threshold, self.pooled_dtype = float(alpha), float(sparsity_threshold), pooled_dtype
        self.threads = threads
        self.asynchronous = asynchronous
        self.router = dense.router(eigen_route)
        self._scratch: torch.Tensor | None = None  # float64 copy of the token rows, reused batch after batch (CPU)
        self.device: torch.device | None = None  # where pooled rows live and the end-of-run math runs
        layers = range(self.num_layers)
        self._token_values: list[dict[tuple[str, str], dict[str, float]]] = [defaultdict(dict) for _ in layers]
        self._skips: list[dict[tuple[str, str], Counter]] = [defaultdict(Counter) for _ in layers]
        self._nonfinite_values = [0] * self.num_layers   # bad entries among valid tokens
        self._nonfinite_samples = [0] * self.num_layers  # samples excluded for them
        self._chunks: list[list[tuple[list[str], torch.Tensor]]] = [[] for _ in layers]
        self._seen: list[set[str]] = [set() for _ in layers]
        self._pooled: list[tuple[list[str], torch.Tensor]] | None = None
        self._pooled_values: list[dict[tuple[str, str], float | str]] | None = None  # str = undefined reason
        self._finisher = _Finisher(self._finish, max(1, int(queue_depth)))

    # -- results (each waits for the layers still being finished) -------------------------------------
    @property
    def token_values(self) -> list[dict[tuple[str, str], dict[str, float]]]:
        """Per layer: (metric, preset) -> {sample id: value} of the token metrics."""
        self.flush()
        return self._token_values

    @property
    def skips(self) -> list[dict[tuple[str, str], Counter]]:
        """Per layer: (metric, preset) -> Counter of reasons for samples without a value."""
        self.flush()
        return self._skips

    @property
    def nonfinite_values(self) -> list[int]:
        """Per layer: non-finite entries among valid tokens."""
        self.flush()
        return self._nonfinite_values

    @property
    def nonfinite_samples(self) -> list[int]:
        """Per layer: samples left out for holding non-finite entries."""
        self.flush()
        return self._nonfinite_samples

    def samples_seen(self, layer: int) -> int:
        """Samples (token-level or pooled) fed to `layer` so far."""
        return len(self._seen[layer])

    def flush(self) -> None:
        """Wait until every layer fed so far is finished.

        Raises:
            RuntimeError: the background computation of a layer failed (its error is the cause).
        """
        self._finisher.join()

    # -- streaming ------------------------------------------------------------------------------
    def update(self, layer: int, hidden: torch.Tensor, mask: torch.Tensor, sample_ids: list[str]) -> None:
        """Feed one batch of layer `layer`: hidden [B, T, d] any dtype/device, mask [B, T] bool (True = valid,
        any padding side), sample_ids [B]. Usable as a capture consumer; returns without waiting for the device.

        Raises:
            ValueError: a layer outside 0..num_layers-1, mismatched shapes, or a sample fed twice to a layer.
        """
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"layer {layer} outside 0..{self.num_layers - 1}")
        if hidden.dim() != 3 or tuple(mask.shape) != tuple(hidden.shape[:2]) or len(sample_ids) != hidden.shape[0]:
            raise ValueError(f"need hidden [B, T, d], mask [B, T], B ids; got {tuple(hidden.shape)}, "
                             f"{tuple(mask.shape)}, {len(sample_ids)} ids")
        want_token = [self.token_ids is None or s in self.token_ids for s in sample_ids]
        want_pooled = [self.pooled_ids is None or s in self.pooled_ids for s in sample_ids]
        keep = [i for i in range(len(sample_ids)) if want_token[i] or want_pooled[i]]
        for i in keep:
            if sample_ids[i] in self._seen[layer]:
                raise ValueError(f"sample {sample_ids[i]!r} fed twice to layer {layer}")
            self._seen[layer].add(sample_ids[i])
        if not keep:
            return
        self._pooled = self._pooled_values = None  # new data invalidates finalized state
        if self.device is None:
            self.device = hidden.device
        on_cpu = hidden.device.type == "cpu"
        asynchronous = (not on_cpu) if self.asynchronous is None else self.asynchronous
        # the eigenvalue decompositions run one per thread with one BLAS thread each (no pool that spin-waits), so
        # they may use every thread the process was given even where `threads` keeps the other work on one
        workers = torch.get_num_threads()
        limit = cpu_threads(self.threads) if on_cpu and not asynchronous else nullcontext()
        with limit:
            staged = self._stage(layer, hidden, mask, [sample_ids[i] for i in keep], keep,
                                 [want_token[i] for i in keep], [want_pooled[i] for i in keep], asynchronous,
                                 workers)
            if asynchronous:
                self._finisher.submit(staged)
            else:
                self.flush()  # keep the order of layers finished before
                self._finish(staged)

    @torch.no_grad()
    def _stage(self, layer, hidden, mask, ids, keep, want_token, want_pooled, asynchronous, workers=None) -> _Staged:
        device = hidden.device
        # eager: on the CPU and finished at once, where reading a value costs nothing; otherwise nothing here may
        # wait for the device (no .item(), no bool() of a tensor): decisions that need values wait for _finish
        eager = device.type == "cpu" and not asynchronous
        m = mask.detach().to(device, non_blocking=True).bool()
        h = hidden.detach()
        if len(keep) < h.shape[0]:
            index = _index(keep, device)
            h, m = h.index_select(0, index), m.index_select(0, index)
        if not (eager and bool(m.all())):
            # padding may hold anything, even NaN: zero it (in the model's dtype, exactly) so sums and Grams ignore
            # it; this copy also keeps what is finished later independent of the model reusing its buffers
            h = torch.where(m[:, :, None], h, torch.zeros((), dtype=h.dtype, device=device))
        lengths = m.sum(1)
        token_rows = [j for j, want in enumerate(want_token) if want]
        every = len(token_rows) == len(ids)
        z = narrow = index = None
        if token_rows:
            index = None if every else _index(token_rows, device)
            narrow, tok_lengths = _valid_first(h if every else h.index_select(0, index),
                                               m if every else m.index_select(0, index), eager)
            z = self._upcast(narrow) if eager else narrow.to(torch.float64)
        # upcast before any reduction; non-finite exactly when some valid entry is (float64 cannot overflow here).
        # On the CPU an explicit upcast then a sum ran 3x faster than a sum with dtype (and gives the same bits; the
        # token rows' zeros moved to the end change no partial sum); an accelerator sums without the float64 copy.
        if device.type != "cpu":
            sums = h.sum(1, dtype=torch.float64)
        else:
            if every:
                sums = z.sum(1)
            else:  # the reused buffer only where it does not hold this batch's token rows
                sums = (self._upcast(h) if eager and not token_rows else h.to(torch.float64)).sum(1)
        finite = torch.isfinite(sums).all(1)
        bad = None
        if not (eager and bool(finite.all())):
            bad = (~torch.isfinite(h)).sum((1, 2))
        rows = sums / lengths.clamp_min(1)[:, None].to(torch.float64)
        tokens = None
        if token_rows:
            tok_finite = finite if every else finite.index_select(0, index)
            tok_sums = sums if every else sums.index_select(0, index)
            if bad is not None:  # non-finite samples are left out; zeros keep the batched kernels finite
                keep_rows = tok_finite[:, None, None]
                z = torch.where(keep_rows, z, torch.zeros((), dtype=z.dtype, device=device))
                narrow = torch.where(keep_rows, narrow, torch.zeros((), dtype=narrow.dtype, device=device))
                tok_sums = torch.where(tok_finite[:, None], tok_sums, 0.0)
            tokens = TokenBatch(z, tok_lengths, self.alpha, self.sparsity_threshold, self.presets, workers,
                                None if device.type == "cpu" and dense.CPU_LIBRARIES else self.router)
            tokens.cache["sums"] = tok_sums  # the float64 sums of the valid rows: kernels reuse them
            if narrow.dtype == torch.float32:  # exact copy at half the bytes: sparsity's comparisons read it
                tokens.cache["narrow"] = narrow
        return _Staged(layer, ids, want_token, want_pooled, rows, lengths, finite, bad, tokens, token_rows)

    def _upcast(self, x: torch.Tensor) -> torch.Tensor:
        """x as float64 in a buffer this accumulator reuses (CPU, finished at once, so the previous batch is done
        with it). A fresh B x T x d float64 tensor is often large enough for the allocator to map new pages from
        the OS each time; at the OLMo-2-1B shape the page faults cost 9x the copy itself."""
        if x.dtype == torch.float64 or not dense.CPU_LIBRARIES:  # the accelerator route (benchmarks count it) copies
            return x.to(torch.float64)
        if self._scratch is None or self._scratch.numel() < x.numel():
            self._scratch = torch.empty(x.numel(), dtype=torch.float64)
        return self._scratch[:x.numel()].view(x.shape).copy_(x)

    @torch.no_grad()
    def _finish(self, s: _Staged) -> None:
        """Token kernels on the device, one copy of the small results to the host, then the bookkeeping."""
        layer = s.layer
        if s.tokens is not None and self.asynchronous is not False:
            s.tokens.pressure = self._finisher.pressure  # how far the forward passes wait for this thread
        values = token_values(s.tokens, self.presets) if s.tokens is not None else {}
        parts = [s.finite.to(torch.float64), s.lengths.to(torch.float64)]
        parts += [s.bad.to(torch.float64)] if s.bad is not None else []
        parts += [v.to(torch.float64) for v in values.values()]
        host = torch.cat(parts).cpu().tolist()
        b = len(s.ids)
        finite, lengths = [bool(x) for x in host[:b]], [int(x) for x in host[b:2 * b]]
        offset = 2 * b
        if s.bad is not None:
            bad = [int(x) for x in host[offset:offset + b]]
            offset += b
            self._count_nonfinite(layer, bad, finite, s.want_token, s.want_pooled)

        pooled = [j for j in range(b) if s.want_pooled[j] and finite[j]]
        for _ in range(sum(1 for j in pooled if lengths[j] == 0)):
            self._skips[layer][POOLED_KEY]["no valid tokens"] += 1
        pooled = [j for j in pooled if lengths[j] > 0]
        if pooled:
            rows = s.rows if len(pooled) == b else s.rows.index_select(0, _index(pooled, s.rows.device))
            self._chunks[layer].append(([s.ids[j] for j in pooled], rows.to(self.pooled_dtype)))

        n_tok = len(s.token_rows)
        d = s.tokens.d if s.tokens is not None else 0
        for number, key in enumerate(values):
            start = offset + number * n_tok
            reason_of = METRICS[key[0]].reason
            store, skipped = self._token_values[layer][key], self._skips[layer][key]
            for j, value in zip(s.token_rows, host[start:start + n_tok]):
                if not finite[j]:
                    continue
                reason = reason_of(lengths[j], d, value)
                if reason:
                    skipped[reason] += 1
                else:
                    store[s.ids[j]] = value

    def _count_nonfinite(self, layer, bad, finite, want_token, want_pooled) -> None:
        """Count the bad values of the affected samples and record every metric they are left out of."""
        for i, ok in enumerate(finite):
            if ok:
                continue
            self._nonfinite_values[layer] += bad[i]
            self._nonfinite_samples[layer] += 1
            keys = token_metric_keys(self.presets) if want_token[i] else []
            for key in keys + ([POOLED_KEY] if want_pooled[i] else []):
                self._skips[layer][key][NONFINITE_REASON] += 1

    # -- dataset level ------------------------------------------------------------------------
    def finalize(self) -> None:
        """Assemble each layer's pooled matrix (rows sorted by sample id) and compute the pooled metrics once,
        on the device that holds the rows."""
        self.flush()
        if self._pooled is not None:
            return
        pooled, values = [], []
        for layer in range(self.num_layers):
            chunks = self._chunks[layer]
            ids = [sid for chunk_ids, _ in chunks for sid in chunk_ids]
            rows = torch.cat([r.to(self.device or r.device) for _, r in chunks]) if chunks \
                else torch.zeros(0, 0, dtype=self.pooled_dtype)
            order = sorted(range(len(ids)), key=ids.__getitem__)
            if order != list(range(len(ids))):
                ids, rows = [ids[i] for i in order], rows.index_select(0, _index(order, rows.device))
            self._chunks[layer] = [(ids, rows)] if ids else []
            pooled.append((ids, rows))
            # NumPy/SciPy's BLAS follows torch's thread setting (its own default is every core)
            with cpu_threads(torch.get_num_threads()) if rows.device.type == "cpu" else nullcontext():
                metrics = pooled_metrics(rows, self.presets, self.alpha) if ids else {}
            values.append({k: (v.reason if isinstance(v, MetricUndefined) else v) for k, v in metrics.items()})
        self._pooled, self._pooled_values = pooled, values

    def pooled_matrix(self, layer: int) -> tuple[list[str], torch.Tensor]:
        """(sample ids sorted, P [N, d] in pooled_dtype on the accumulator's device) of one layer."""
        self.finalize()
        return self._pooled[layer]

    def pooled_values(self, layer: int) -> dict[tuple[str, str], float | str]:
        """(metric, preset) -> value, or the reason string where the metric is undefined."""
        self.finalize()
        return self._pooled_values[layer]

    # -- state: export, merge, spill ------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, "presets": list(self.presets),
                "token_ids": None if self.token_ids is None else sorted(self.token_ids),
                "pooled_ids": None if self.pooled_ids is None else sorted(self.pooled_ids),
                "alpha": self.alpha, "sparsity_threshold": self.sparsity_threshold,
                "pooled_dtype": str(self.pooled_dtype).removeprefix("torch.")}

    def state_dict(self) -> dict[str, Any]:
        """Everything fed so far as plain Python and CPU tensors (no device, no torch.distributed): the config,
        and per layer the token values, skip counts, non-finite counts, the samples seen and the pooled rows.
        `merge` combines such states; `from_state_dict` rebuilds an accumulator."""
        self.flush()
        key = _KEY_SEP.join
        pooled = []
        for chunks in self._chunks:
            ids = [sid for chunk_ids, _ in chunks for sid in chunk_ids]
            rows = torch.cat([r.cpu() for _, r in chunks]) if chunks else torch.zeros(0, 0, dtype=self.pooled_dtype)
            pooled.append({"ids": ids, "rows": rows})
        return {
            "version": _FORMAT_VERSION, **self._config(), "pooled": pooled,
            "token_values": [{key(k): dict(v) for k, v in layer.items()} for layer in self._token_values],
            "skips": [{key(k): dict(c) for k, c in layer.items()} for layer in self._skips],
            "nonfinite_values": list(self._nonfinite_values), "nonfinite_samples": list(self._nonfinite_samples),
            "seen": [sorted(s) for s in self._seen],
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: str | torch.device | None = None) -> "SideAccumulator":
        """An accumulator holding `state` (from `state_dict` or `save`), its pooled rows on `device` (default:
        CPU).

        Raises:
            ValueError: a state of another format version.
        """
        if state.get("version") != _FORMAT_VERSION:
            raise ValueError(f"accumulator state format {state.get('version')}, expected {_FORMAT_VERSION}")
        acc = cls(state["num_layers"], state["presets"], state["token_ids"], state["pooled_ids"], state["alpha"],
                  state["sparsity_threshold"], getattr(torch, state["pooled_dtype"]))
        acc.device = torch.device(device) if device is not None else torch.device("cpu")
        acc._absorb(state)
        if "pooled_values" in state:  # written by save(): finalized, rows sorted by id
            unkey = lambda s: tuple(s.split(_KEY_SEP, 1))  # noqa: E731
            acc._pooled = [(list(ids), rows) for ids, rows in (c[0] if c else ([], torch.zeros(0, 0))
                                                                for c in acc._chunks)]
            acc._pooled_values = [{unkey(k): v for k, v in layer.items()} for layer in state["pooled_values"]]
        return acc

    def merge(self, other: "SideAccumulator | dict[str, Any]") -> None:
        """Add the state of an accumulator (or a `state_dict`) that saw other samples with the same settings.

        Raises:
            ValueError: different settings (layers, presets, sample sets, alpha, threshold, dtype), another state
                format, or a sample fed to the same layer of both.
        """
        state = other.state_dict() if isinstance(other, SideAccumulator) else other
        if state.get("version") != _FORMAT_VERSION:
            raise ValueError(f"accumulator state format {state.get('version')}, expected {_FORMAT_VERSION}")
        mine = self._config()
        theirs = {k: state[k] for k in mine}
        if theirs != mine:
            diff = sorted(k for k in mine if mine[k] != theirs[k])
            raise ValueError(f"cannot merge accumulators with different settings: {', '.join(diff)}")
        self.flush()
        for layer, seen in enumerate(state["seen"]):
            both = self._seen[layer] & set(seen)
            if both:
                raise ValueError(f"sample {sorted(both)[0]!r} fed to layer {layer} of both accumulators")
        self._absorb(state)
        self._pooled = self._pooled_values = None

    def _absorb(self, state: dict[str, Any]) -> None:
        unkey = lambda s: tuple(s.split(_KEY_SEP, 1))  # noqa: E731
        device = self.device
        for layer in range(self.num_layers):
            for k, values in state["token_values"][layer].items():
                self._token_values[layer][unkey(k)].update(values)
            for k, counts in state["skips"][layer].items():
                self._skips[layer][unkey(k)].update(counts)
            ids, rows = state["pooled"][layer]["ids"], state["pooled"][layer]["rows"]
            if ids:
                self._chunks[layer].append((list(ids), rows.to(device) if device is not None else rows))
            self._seen[layer] |= set(state["seen"][layer])
            self._nonfinite_values[layer] += int(state["nonfinite_values"][layer])
            self._nonfinite_samples[layer] += int(state["nonfinite_samples"][layer])

    def save(self, path: str | Path) -> None:
        """Write the whole state (pooled rows sorted by id, token values, counters, pooled metric values) to one
        file (torch.save of `state_dict` plus the pooled metric values)."""
        self.finalize()
        state = self.state_dict()
        state["pooled_values"] = [{_KEY_SEP.join(k): v for k, v in layer.items()} for layer in self._pooled_values]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = None) -> "SideAccumulator":
        """Read a state written by `save`, its pooled rows on `device` (default: CPU).

        Raises:
            ValueError: a file of another format version.
        """
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            return cls.from_state_dict(state, device)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


from sftscope.metrics.rows import pair_rows, side_rows  # noqa: E402  (re-exported: rows read accumulators)

__all__ = ["SideAccumulator", "side_rows", "pair_rows", "token_metric_keys", "NONFINITE_REASON"]
