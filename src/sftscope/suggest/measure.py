"""Training-free layer profiles of a Base (and optionally one variant), one forward pass per model per batch.

Base: pooled states of every layer (-> CKA between consecutive layers, effective rank) and logit-lens
next-token accuracy per layer, both fed by the same forward pass. Variant: its pooled states (-> Base-vs-variant
CKA per layer) and the streamed per-block weight change. Lens accuracy and Base-vs-variant CKA get 95% bootstrap
intervals over the samples (`n_boot` resamples), which the late-region claims read. Several data sets: the
profiles are averaged, and so are the interval bounds (wider than the mean's own interval: conservative).
"""

from __future__ import annotations

import numpy as np
import torch

from sftscope.capture.batches import encode_texts, make_batches
from sftscope.capture.hooks import capture
from sftscope.data.prepare import PreparedData
from sftscope.metrics.accumulators import SideAccumulator
from sftscope.metrics.core import MetricUndefined
from sftscope.metrics.registry import get_metric
from sftscope.models.loading import LoadedModel, ModelRef
from sftscope.stats.uncertainty import cluster_ratio_interval
from sftscope.suggest.decide import LayerProfiles

RANK_METRIC, RANK_PRESET = "effective_rank", "canonical"  # Roy & Vetterli effective rank of centred pooled states
SIMILARITY_METRIC = "cka"  # compares consecutive layers and Base-vs-variant layers


class LensAccuracy:
    """Running logit-lens next-token accuracy per layer [L+1] of one model, fed layer by layer by `capture`;
    correct predictions are also kept per sample, for the interval (`accuracy_interval`)."""

    def __init__(self, loaded: LoadedModel, chunk: int = 256):
        self.loaded, self.chunk = loaded, chunk
        self.correct = np.zeros(loaded.parts.num_layers + 1)
        self.tokens = 0
        self._labels: torch.Tensor | None = None
        self._valid: torch.Tensor | None = None
        self._sample_of: torch.Tensor | None = None
        self.per_sample: list[torch.Tensor] = []     # per batch: correct predictions [L+1, B]
        self.sample_tokens: list[torch.Tensor] = []  # per batch: predicted tokens [B]

    def start_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Positions t whose next token is real ([B, T-1] mask) and their labels, for the coming batch."""
        mask = attention_mask.bool()
        self._valid = mask[:, :-1] & mask[:, 1:]
        self._labels = input_ids[:, 1:][self._valid]
        self._sample_of = self._valid.nonzero(as_tuple=True)[0].cpu()
        self.tokens += int(self._labels.numel())
        self.per_sample.append(torch.zeros(len(self.correct), mask.shape[0], dtype=torch.float64))
        self.sample_tokens.append(self._valid.sum(1).double().cpu())

    @torch.no_grad()
    def update(self, layer: int, hidden: torch.Tensor) -> None:
        """Count correct top-1 predictions of layer `layer` (hidden [B, T, d]) through the final norm + head."""
        states = hidden[:, :-1][self._valid.to(hidden.device)]
        head_device = self.loaded.parts.head_device
        for start in range(0, states.shape[0], self.chunk):
            logits = self.loaded.parts.logits_from_residual(states[start:start + self.chunk])
            target = self._labels[start:start + self.chunk].to(head_device)
            hits = (logits.argmax(-1) == target).double().cpu()
            self.correct[layer] += float(hits.sum())
            self.per_sample[-1][layer].index_add_(0, self._sample_of[start:start + self.chunk], hits)

    def accuracy(self) -> np.ndarray:
        return self.correct / max(self.tokens, 1)

    def accuracy_interval(self, n_boot: int, seed: int = 0) -> np.ndarray | None:
        """[2, L+1] 95% interval of `accuracy()`, resampling samples (cluster bootstrap); None when n_boot is 0
        or fewer than 2 samples have a predicted token."""
        tokens = torch.cat(self.sample_tokens).numpy() if self.sample_tokens else np.zeros(0)
        if not n_boot or (tokens > 0).sum() < 2:
            return None
        return np.stack(cluster_ratio_interval(torch.cat(self.per_sample, 1).numpy(), tokens, n_boot, seed=seed))


def _stream(loaded: LoadedModel, prepared: PreparedData, max_length: int, batch_size: int,
            lens: bool) -> tuple[SideAccumulator, LensAccuracy | None]:
    """Pooled states of every layer (and the lens accuracy counter if asked) of one model on one data set."""
    texts = [prepared.spec.render(r) for r in prepared.records]
    encoded = [e for e in encode_texts(prepared.ids, texts, loaded.tokenizer, max_length) if len(e.input_ids) >= 2]
    acc = SideAccumulator(loaded.parts.num_layers + 1, [RANK_PRESET], token_ids=set(), pooled_ids=None)
    lens_acc = LensAccuracy(loaded) if lens else None
    for batch in make_batches(encoded, batch_size, loaded.tokenizer.pad_token_id):
        if lens_acc is not None:
            lens_acc.start_batch(batch.input_ids, batch.attention_mask)

        def consume(layer, hidden, mask, ids):
            acc.update(layer, hidden, mask, ids)
            if lens_acc is not None:
                lens_acc.update(layer, hidden)
        capture(loaded, batch, consume)
    return acc, lens_acc


def _similarity(x: torch.Tensor, y: torch.Tensor) -> float:
    """SIMILARITY_METRIC of pooled states X, Y [N, d]; where it is undefined (no variance on a side), the value
    for an unchanged representation: no measurable change of geometry."""
    spec = get_metric(SIMILARITY_METRIC)
    try:
        return spec.fn(x, y)
    except MetricUndefined:
        return spec.unchanged


def _cka_interval(x: torch.Tensor, y: torch.Tensor, n_boot: int, seed: int) -> tuple[float, float]:
    """95% bias-corrected bootstrap interval of CKA(x, y) over the samples; NaNs when undefined."""
    from sftscope.stats.alignment_bootstrap import alignment_bootstrap
    try:
        _, low, high = alignment_bootstrap(x, y, n_boot=n_boot, seed=seed)["cka"]
    except Exception:  # noqa: BLE001  a constant layer (no variance) has no interval: the curve goes without one
        return float("nan"), float("nan")
    return low, high


def dataset_profiles(base: LoadedModel, prepared: PreparedData, max_length: int, batch_size: int,
                     variant: LoadedModel | None = None, n_boot: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-layer profile arrays of one data set: layer_cka [L], effective_rank [L+1], lens_accuracy [L+1] and,
    with a variant, variant_cka [L+1]; with n_boot > 0 also lens_accuracy_ci and variant_cka_ci [2, L+1] (95%,
    resampling samples; the CKA interval is left out when some layer has none)."""
    acc, lens = _stream(base, prepared, max_length, batch_size, lens=True)
    layers = range(acc.num_layers)
    pooled = [acc.pooled_matrix(layer)[1] for layer in layers]
    ranks = [acc.pooled_values(layer).get((RANK_METRIC, RANK_PRESET)) for layer in layers]
    out = {"layer_cka": np.array([_similarity(pooled[i], pooled[i + 1]) for i in range(len(pooled) - 1)]),
           "effective_rank": np.array([r if isinstance(r, float) else 0.0 for r in ranks]),
           "lens_accuracy": lens.accuracy()}
    lens_ci = lens.accuracy_interval(n_boot, seed)
    if lens_ci is not None:
        out["lens_accuracy_ci"] = lens_ci
    if variant is not None:
        var_acc, _ = _stream(variant, prepared, max_length, batch_size, lens=False)
        var_pooled = [var_acc.pooled_matrix(i)[1] for i in layers]
        out["variant_cka"] = np.array([_similarity(pooled[i], var_pooled[i]) for i in layers])
        if n_boot:
            ci = np.array([_cka_interval(pooled[i], var_pooled[i], n_boot, seed) for i in layers]).T
            if np.all(np.isfinite(ci)):
                out["variant_cka_ci"] = ci
    return out


def block_weight_change(base: ModelRef, variant: ModelRef, num_blocks: int) -> np.ndarray:
    """Frobenius norm of the whole-block weight change per block [L] (0-based), streamed from checkpoints."""
    from sftscope.weights.change import weight_change

    change = np.zeros(num_blocks)
    for row in weight_change(base.id, variant.id, (base.revision, variant.revision), progress=False):
        if row.metric == "block_delta_fro" and 1 <= row.layer <= num_blocks:
            change[row.layer - 1] = row.value
    return change


def average_profiles(per_dataset: list[dict[str, np.ndarray]], weight_change: np.ndarray | None) -> LayerProfiles:
    """Mean of each profile (and of each interval bound) over data sets, as LayerProfiles; an interval only
    when every data set has it."""
    keys = [k for k in per_dataset[0] if all(k in d for d in per_dataset)]
    mean = {k: np.mean([d[k] for d in per_dataset], axis=0) for k in keys}
    return LayerProfiles(weight_change=weight_change, **mean)
