"""Streaming accumulator for one model on one data set, fed batch by batch and layer by layer by the capture.

Token-level metrics are computed per sample while its batch passes (vectorised over the batch in float64 on
the host; token matrices are never kept). Pooled rows (masked mean of valid tokens) are kept per layer and
the dataset-level metrics run once, in `finalize`. Memory: num_layers x N_pooled x d floats, no token axis.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import torch

from sftscope.metrics.core import PRESETS, MetricUndefined, check_preset
from sftscope.metrics.pooled import pooled_metrics
from sftscope.metrics.registry import METRICS, token_keys, token_values
from sftscope.metrics.token import TokenBatch

NONFINITE_REASON = "non-finite activations"
POOLED_KEY = ("pooled", "")  # skip counter for samples left out of every pooled metric of a layer
_FORMAT_VERSION = 1


def token_metric_keys(presets: Iterable[str]) -> list[tuple[str, str]]:
    """(metric, preset) keys of the registered token metrics; a preset-free one is stored under preset ''."""
    keys = token_keys(list(presets))
    return [k for k in keys if k[1]] + [k for k in keys if not k[1]]


def _compact(hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each sample's valid tokens to the front in order (left, right or holey padding alike) and cut the
    padded length to the longest sample: [B, T, d], [B, T] -> [B, T', d] zero-padded, lengths [B]."""
    lengths = mask.sum(1)
    t_max = int(lengths.max()) if lengths.numel() else 0
    front = torch.arange(mask.shape[1])[None, :] < lengths[:, None]
    if not torch.equal(front, mask):
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
        hidden = torch.gather(hidden, 1, order[:, :, None].expand(-1, -1, hidden.shape[2]))
    return hidden[:, :t_max], lengths


@contextmanager
def _threads(count: int):
    """Limit torch's intra-op threads while ingesting: the per-sample decompositions (a few hundred rows) and
    the memory-bound passes ran up to 10x slower with a thread pool than on one thread, worse on shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SideAccumulator:
    """Per-layer metric state of one model (a 'side') on one data set; layers 0..num_layers-1 (= 0..L)."""

    def __init__(self, num_layers: int, presets: Iterable[str] = PRESETS, token_ids: set[str] | None = None,
                 pooled_ids: set[str] | None = None, alpha: float = 1.0, sparsity_threshold: float = 0.01,
                 pooled_dtype: torch.dtype = torch.float32, threads: int | None = 1):
        self.num_layers = int(num_layers)
        self.presets = [check_preset(p) for p in presets]
        self.token_ids = None if token_ids is None else set(token_ids)    # None = every sample
        self.pooled_ids = None if pooled_ids is None else set(pooled_ids)
        self.alpha, self.sparsity_threshold, self.pooled_dtype = float(alpha), float(sparsity_threshold), pooled_dtype
        self.threads = threads  # intra-op threads while ingesting a batch; None = leave torch's setting
        layers = range(self.num_layers)
        self.token_values: list[dict[tuple[str, str], dict[str, float]]] = [defaultdict(dict) for _ in layers]
        self.skips: list[dict[tuple[str, str], Counter]] = [defaultdict(Counter) for _ in layers]
        self.nonfinite_values = [0] * self.num_layers   # bad entries among valid tokens
        self.nonfinite_samples = [0] * self.num_layers  # samples excluded for them
        self._chunks: list[list[tuple[list[str], torch.Tensor]]] = [[] for _ in layers]
        self._seen: list[set[str]] = [set() for _ in layers]
        self._pooled: list[tuple[list[str], torch.Tensor]] | None = None
        self._pooled_values: list[dict[tuple[str, str], float | str]] | None = None  # str = undefined reason

    def samples_seen(self, layer: int) -> int:
        """Samples (token-level or pooled) fed to `layer` so far."""
        return len(self._seen[layer])

    # -- streaming ------------------------------------------------------------------------------
    def update(self, layer: int, hidden: torch.Tensor, mask: torch.Tensor, sample_ids: list[str]) -> None:
        """Feed one batch of layer `layer`: hidden [B, T, d] any dtype/device, mask [B, T] bool (True = valid)."""
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
        if self.threads is None:
            self._ingest(layer, hidden, mask, sample_ids, keep, want_token, want_pooled)
        else:
            with _threads(self.threads):
                self._ingest(layer, hidden, mask, sample_ids, keep, want_token, want_pooled)

    def _ingest(self, layer, hidden, mask, sample_ids, keep, want_token, want_pooled) -> None:
        if len(keep) < len(sample_ids):
            index = torch.tensor(keep, device=hidden.device)
            hidden, mask = hidden.index_select(0, index), mask.index_select(0, index.to(mask.device))
        # upcast before any reduction; the masking and pooling stay on the model's device (only [b, d] sums and
        # the token samples' rows travel), the token metrics run on the host
        h = hidden.detach().to(torch.float64)
        m = mask.detach().to(h.device).bool()
        ids = [sample_ids[i] for i in keep]
        want_token = torch.tensor([want_token[i] for i in keep])
        want_pooled = torch.tensor([want_pooled[i] for i in keep])
        if not bool(m.all()):  # padding may hold anything, even NaN: zero it so sums and Grams ignore it
            h = torch.where(m[:, :, None], h, torch.zeros((), dtype=h.dtype, device=h.device))
        lengths = m.sum(1).cpu()
        sums = h.sum(1).cpu()  # [b, d]; non-finite exactly when some valid entry is (float64 cannot overflow here)
        finite = torch.isfinite(sums).all(1)
        if not bool(finite.all()):
            self._count_nonfinite(layer, h, ~finite, want_token, want_pooled)

        pooled_sel = want_pooled & finite
        for _ in range(int((pooled_sel & (lengths == 0)).sum())):
            self.skips[layer][POOLED_KEY]["no valid tokens"] += 1
        pooled_sel &= lengths > 0
        if bool(pooled_sel.any()):
            rows = sums[pooled_sel] / lengths[pooled_sel, None].to(torch.float64)
            self._chunks[layer].append(([ids[i] for i in torch.nonzero(pooled_sel).flatten().tolist()],
                                        rows.to(self.pooled_dtype)))

        token_sel = want_token & finite
        if bool(token_sel.any()):
            every = bool(token_sel.all())
            z, tok_lengths = _compact(*(t.cpu() if every else t[token_sel.to(t.device)].cpu() for t in (h, m)))
            tok_ids = [ids[i] for i in torch.nonzero(token_sel).flatten().tolist()]
            self._token_batch(layer, z, tok_lengths, tok_ids)

    def _count_nonfinite(self, layer, h, bad_rows, want_token, want_pooled) -> None:
        """Count the bad values of the affected samples and record every metric they are left out of."""
        self.nonfinite_values[layer] += int((~torch.isfinite(h[bad_rows.to(h.device)])).sum())
        self.nonfinite_samples[layer] += int(bad_rows.sum())
        for i in torch.nonzero(bad_rows).flatten().tolist():
            keys = token_metric_keys(self.presets) if want_token[i] else []
            for key in keys + ([POOLED_KEY] if want_pooled[i] else []):
                self.skips[layer][key][NONFINITE_REASON] += 1

    def _token_batch(self, layer: int, z: torch.Tensor, lengths: torch.Tensor, ids: list[str]) -> None:
        batch = TokenBatch(z, lengths, self.alpha, self.sparsity_threshold)
        sizes = lengths.tolist()
        for key, values in token_values(batch, self.presets).items():
            reason_of = METRICS[key[0]].reason
            store, skipped = self.token_values[layer][key], self.skips[layer][key]
            for sid, value, length in zip(ids, values.tolist(), sizes):
                reason = reason_of(length, batch.d, value)
                if reason:
                    skipped[reason] += 1
                else:
                    store[sid] = value

    # -- dataset level ------------------------------------------------------------------------
    def finalize(self) -> None:
        """Assemble each layer's pooled matrix (rows sorted by sample id) and compute the pooled metrics once."""
        if self._pooled is not None:
            return
        pooled, values = [], []
        for layer in range(self.num_layers):
            chunks = self._chunks[layer]
            ids = [sid for chunk_ids, _ in chunks for sid in chunk_ids]
            rows = torch.cat([r for _, r in chunks]) if chunks else torch.zeros(0, 0, dtype=self.pooled_dtype)
            order = sorted(range(len(ids)), key=ids.__getitem__)
            ids, rows = [ids[i] for i in order], rows[order] if order else rows
            self._chunks[layer] = [(ids, rows)] if ids else []
            pooled.append((ids, rows))
            metrics = pooled_metrics(rows, self.presets, self.alpha) if ids else {}
            values.append({k: (v.reason if isinstance(v, MetricUndefined) else v) for k, v in metrics.items()})
        self._pooled, self._pooled_values = pooled, values

    def pooled_matrix(self, layer: int) -> tuple[list[str], torch.Tensor]:
        """(sample ids sorted, P [N, d] in pooled_dtype) of one layer."""
        self.finalize()
        return self._pooled[layer]

    def pooled_values(self, layer: int) -> dict[tuple[str, str], float | str]:
        """(metric, preset) -> value, or the reason string where the metric is undefined."""
        self.finalize()
        return self._pooled_values[layer]

    # -- spill to disk ------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the whole state (pooled rows, token values, counters, pooled metric values) to one file."""
        self.finalize()
        key = "|".join
        state = {
            "version": _FORMAT_VERSION, "num_layers": self.num_layers, "presets": self.presets,
            "token_ids": None if self.token_ids is None else sorted(self.token_ids),
            "pooled_ids": None if self.pooled_ids is None else sorted(self.pooled_ids),
            "alpha": self.alpha, "sparsity_threshold": self.sparsity_threshold,
            "pooled_dtype": str(self.pooled_dtype).removeprefix("torch."),
            "pooled": [{"ids": ids, "rows": rows} for ids, rows in self._pooled],
            "pooled_values": [{key(k): v for k, v in layer.items()} for layer in self._pooled_values],
            "token_values": [{key(k): v for k, v in layer.items()} for layer in self.token_values],
            "skips": [{key(k): dict(c) for k, c in layer.items()} for layer in self.skips],
            "nonfinite_values": self.nonfinite_values, "nonfinite_samples": self.nonfinite_samples,
            "seen": [sorted(s) for s in self._seen],
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)

    @classmethod
    def load(cls, path: str | Path) -> "SideAccumulator":
        """Read a state written by `save`."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("version") != _FORMAT_VERSION:
            raise ValueError(f"{path}: accumulator format {state.get('version')}, expected {_FORMAT_VERSION}")
        acc = cls(state["num_layers"], state["presets"], state["token_ids"], state["pooled_ids"], state["alpha"],
                  state["sparsity_threshold"], getattr(torch, state["pooled_dtype"]))
        unkey = lambda s: tuple(s.split("|", 1))  # noqa: E731
        for layer in range(acc.num_layers):
            acc.token_values[layer].update({unkey(k): v for k, v in state["token_values"][layer].items()})
            for k, counts in state["skips"][layer].items():
                acc.skips[layer][unkey(k)].update(counts)
            ids, rows = state["pooled"][layer]["ids"], state["pooled"][layer]["rows"]
            acc._chunks[layer] = [(ids, rows)] if ids else []
            acc._seen[layer] = set(state["seen"][layer])
        acc.nonfinite_values, acc.nonfinite_samples = state["nonfinite_values"], state["nonfinite_samples"]
        acc._pooled = [(p["ids"], p["rows"]) for p in state["pooled"]]
        acc._pooled_values = [{unkey(k): v for k, v in layer.items()} for layer in state["pooled_values"]]
        return acc


from sftscope.metrics.rows import pair_rows, side_rows  # noqa: E402  (re-exported: rows read accumulators)

__all__ = ["SideAccumulator", "side_rows", "pair_rows", "token_metric_keys", "NONFINITE_REASON"]
