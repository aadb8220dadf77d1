"""Reversible model surgery: copy whole blocks (and optionally the final norm + head) from a donor model.

Only the swapped modules are copied (their original tensors are kept aside and written back on exit, also
when the body raises), so a swap costs a few blocks' worth of copies instead of a model reload. Values are
copied into the target's existing tensors: tied weights stay tied (with a tied head, transferring the head
also transfers the input embedding, which is the same tensor).
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
                if tensor.shape != theirs_t[name].shape:
                    raise SftscopeError(f"cannot swap tensor {name}: shape {tuple(tensor.shape)} vs "
                                        f"{tuple(theirs_t[name].shape)}")
                saved.append((tensor, tensor.detach().clone()))
                tensor.copy_(theirs_t[name])
        yield
    finally:
        for tensor, original in saved:
            tensor.copy_(original)
