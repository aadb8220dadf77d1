"""Reversible model surgery: run a model with whole blocks (and optionally the final norm + head) of a donor.

Zero-copy: each swapped parameter/buffer of the receiver borrows the donor's storage (`tensor.data = ...`)
and gets its own storage back on exit, also when the body raises, so a swap costs microseconds instead of
a model reload and restoration is exact by construction. Storage is copied only where the donor sits on
another device or in another dtype. Inside the block the receiver SHARES the donor's tensors: evaluate, do
not train. Tied weights stay tied (with a tied head, transferring the head also transfers the input
embedding, which is the same tensor).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

from sftscope.errors import SftscopeError
from sftscope.models.loading import LoadedModel
from sftscope.tuning.blocks import segment_bounds


def segment_layers(num_layers: int, k: int) -> list[list[int]]:
    """Block indices (0-based) of k equal segments, as the tuning masks define them (segment_bounds)."""
    return [list(range(start, stop)) for start, stop in segment_bounds(num_layers, k)]


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


def _modules(model: LoadedModel, layers: Sequence[int], head: bool) -> list[nn.Module]:
    blocks = model.parts.blocks
    bad = [i for i in layers if not 0 <= i < len(blocks)]
    if bad:
        raise SftscopeError(f"block indices {bad} out of range 0..{len(blocks) - 1}")
    return [blocks[i] for i in layers] + ([model.parts.final_norm, model.parts.lm_head] if head else [])


@contextmanager
@torch.no_grad()
def transplant(target: LoadedModel, donor: LoadedModel, layers: Sequence[int], head: bool = False) -> Iterator[None]:
    """Inside the block, `target` runs with `donor`'s blocks `layers` (and final norm + head if `head`)."""
    pairs = list(zip(_modules(target, layers, head), _modules(donor, layers, head)))
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        for mine, theirs in pairs:
            mine_t, theirs_t = _tensors(mine), _tensors(theirs)
            if mine_t.keys() != theirs_t.keys():
                raise SftscopeError(f"cannot swap {type(mine).__name__}: tensor names differ between models")
            for name, tensor in mine_t.items():
                given = theirs_t[name]
                if tensor.shape != given.shape:
                    raise SftscopeError(f"cannot swap tensor {name}: shape {tuple(tensor.shape)} vs "
                                        f"{tuple(given.shape)}")
                saved.append((tensor, tensor.data))
                tensor.data = given.data.to(device=tensor.device, dtype=tensor.dtype)
        yield
    finally:
        for tensor, original in reversed(saved):  # reversed: a tied tensor ends on its first saved storage
            tensor.data = original
