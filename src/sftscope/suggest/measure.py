"""Training-free layer profiles of a Base (and optionally one variant), one forward pass per model per batch.

Base: pooled states of every layer (-> CKA between consecutive layers, effective rank) and logit-lens
next-token accuracy per layer, both fed by the same forward pass. Variant: its pooled states (-> Base-vs-variant
CKA per layer) and the streamed per-block weight change. Several data sets: the profiles are averaged.
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
from sftscope.suggest.decide import LayerProfiles

RANK_METRIC, RANK_PRESET = "effective_rank", "canonical"  # Roy & Vetterli effective rank of centred pooled states
SIMILARITY_METRIC = "cka"  # compares consecutive layers and Base-vs-variant layers


class LensAccuracy:
    """Running logit-lens next-token accuracy per layer [L+1] of one model, fed layer by layer by `capture`."""

    def __init__(self, loaded: LoadedModel, chunk: int = 256):
        self.loaded, self.chunk = loaded, chunk
        self.correct = np.zeros(loaded.parts.num_layers + 1)
        self.tokens = 0
        self._labels: torch.Tensor | None = None
        self._valid: torch.Tensor | None = None

    def start_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Positions t whose next token is real ([B, T-1] mask) and their labels, for the coming batch."""
        mask = attention_mask.bool()
        self._valid = mask[:, :-1] & mask[:, 1:]
        self._labels = input_ids[:, 1:][self._valid]
        self.tokens += int(self._labels.numel())

    @torch.no_grad()
    def update(self, layer: int, hidden: torch.Tensor) -> None:
        """Count correct top-1 predictions of layer `layer` (hidden [B, T, d]) through the final norm + head."""
        states = hidden[:, :-1][self._valid.to(hidden.device)]
        head_device = self.loaded.parts.lm_head.weight.device
        for start in range(0, states.shape[0], self.chunk):
            logits = self.loaded.parts.logits_from_residual(states[start:start + self.chunk])
            target = self._labels[start:start + self.chunk].to(head_device)
            self.correct[layer] += float((logits.argmax(-1) == target).sum())

    def accuracy(self) -> np.ndarray:
        return self.correct / max(self.tokens, 1)


def _stream(loaded: LoadedModel, prepared: PreparedData, max_length: int, batch_size: int,
            lens: bool) -> tuple[SideAccumulator, np.ndarray | None]:
    """Pooled states of every layer (and lens accuracy [L+1] if asked) of one model on one data set."""
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
    return acc, (lens_acc.accuracy() if lens_acc is not None else None)


def _similarity(x: torch.Tensor, y: torch.Tensor) -> float:
    """SIMILARITY_METRIC of pooled states X, Y [N, d]; where it is undefined (no variance on a side), the value
    for an unchanged representation: no measurable change of geometry."""
    spec = get_metric(SIMILARITY_METRIC)
    try:
        return spec.fn(x, y)
    except MetricUndefined:
        return spec.unchanged


def dataset_profiles(base: LoadedModel, prepared: PreparedData, max_length: int, batch_size: int,
                     variant: LoadedModel | None = None) -> dict[str, np.ndarray]:
    """Per-layer profile arrays of one data set: layer_cka [L], effective_rank [L+1], lens_accuracy [L+1] and,
    with a variant, variant_cka [L+1]."""
    acc, lens = _stream(base, prepared, max_length, batch_size, lens=True)
    layers = range(acc.num_layers)
    pooled = [acc.pooled_matrix(layer)[1] for layer in layers]
    ranks = [acc.pooled_values(layer).get((RANK_METRIC, RANK_PRESET)) for layer in layers]
    out = {"layer_cka": np.array([_similarity(pooled[i], pooled[i + 1]) for i in range(len(pooled) - 1)]),
           "effective_rank": np.array([r if isinstance(r, float) else 0.0 for r in ranks]),
           "lens_accuracy": lens}
    if variant is not None:
        var_acc, _ = _stream(variant, prepared, max_length, batch_size, lens=False)
        out["variant_cka"] = np.array([_similarity(pooled[i], var_acc.pooled_matrix(i)[1]) for i in layers])
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
    """Mean of each profile over data sets, as LayerProfiles."""
    keys = per_dataset[0].keys()
    mean = {k: np.mean([d[k] for d in per_dataset], axis=0) for k in keys}
    return LayerProfiles(weight_change=weight_change, **mean)
