"""One forward pass per batch yields the residual stream at every layer 0..L through hooks.

Layer 0 is the input of block 0 (the embedding output, scaled/position-added as the model does it); layer l
is the output of block l; layer L is taken before the final norm. Hooks accept blocks that return a tensor
(transformers >= 5) or a tuple (older versions and custom code), and layers spread over several devices.
Each layer is handed to the consumer as soon as its block has run, so at most one layer's states are alive
beyond what the model itself holds.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from sftscope.capture.batches import TokenBatch
from sftscope.models.loading import LoadedModel

# consumer(layer, hidden [B, T, d], mask [B, T] bool on hidden's device, sample_ids)
LayerConsumer = Callable[[int, torch.Tensor, torch.Tensor, list[str]], None]


def _first_tensor(value) -> torch.Tensor:
    return value[0] if isinstance(value, (tuple, list)) else value


@contextmanager
def layer_hooks(loaded: LoadedModel, on_layer: Callable[[int, torch.Tensor], None]) -> Iterator[None]:
    """Register hooks calling on_layer(l, hidden) for l = 0..L during forward passes; always removed."""
    blocks = loaded.parts.blocks
    handles = []

    def pre_hook(_module, args, kwargs):
        on_layer(0, args[0] if args else kwargs["hidden_states"])

    handles.append(blocks[0].register_forward_pre_hook(pre_hook, with_kwargs=True))
    for index, block in enumerate(blocks):
        def post_hook(_module, _args, output, layer=index + 1):
            on_layer(layer, _first_tensor(output))
        handles.append(block.register_forward_hook(post_hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()  # not inference_mode: consumers may reuse the states in later computations
def capture(loaded: LoadedModel, batch: TokenBatch, consumer: LayerConsumer, with_logits: bool = False):
    """Run ONE forward pass of `batch`; stream every layer to `consumer`. Returns logits [B, T, V] if asked."""
    device = loaded.input_device
    ids = batch.input_ids.to(device)
    attn = batch.attention_mask.to(device)
    masks: dict[torch.device, torch.Tensor] = {}

    def on_layer(layer: int, hidden: torch.Tensor) -> None:
        if hidden.device not in masks:
            masks[hidden.device] = attn.to(hidden.device, non_blocking=True).bool()
        consumer(layer, hidden, masks[hidden.device], batch.sample_ids)

    # Positions from the mask, so left padding gives the same per-token states as no padding.
    position_ids = (attn.cumsum(-1) - 1).clamp(min=0)
    # Without logits the head is skipped: the base transformer is enough to produce every layer.
    module = loaded.model if with_logits else loaded.model.base_model
    with layer_hooks(loaded, on_layer):
        out = module(input_ids=ids, attention_mask=attn, position_ids=position_ids, use_cache=False)
    return out.logits if with_logits else None


def capture_all_layers(loaded: LoadedModel, batch: TokenBatch) -> list[torch.Tensor]:
    """Convenience for tests and notebooks: [L+1] tensors [B, T, d] of one batch (holds them all)."""
    layers: dict[int, torch.Tensor] = {}
    capture(loaded, batch, lambda l, h, m, ids: layers.__setitem__(l, h.detach().clone()))
    return [layers[i] for i in range(len(layers))]
