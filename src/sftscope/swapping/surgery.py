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
from sftscope.models.placement import offload_hook, real_tensors
from sftscope.tuning.blocks import segment_bounds


def segment_layers(num_layers: int, k: int) -> list[list[int]]:
    """Block indices (0-based) of k equal segments, as the tuning masks define them (segment_bounds)."""
    return [list(range(start, stop)) for start, stop in segment_bounds(num_layers, k)]


def _modules(model: LoadedModel, layers: Sequence[int], head: bool) -> list[nn.Module]:
    blocks = model.parts.blocks
    bad = [i for i in layers if not 0 <= i < len(blocks)]
    if bad:
        raise SftscopeError(f"block indices {bad} out of range 0..{len(blocks) - 1}")
    return [blocks[i] for i in layers] + ([model.parts.final_norm, model.parts.lm_head] if head else [])


@contextmanager
@torch.no_grad()
def transplant(target: LoadedModel, donor: LoadedModel, layers: Sequence[int], head: bool = False) -> Iterator[None]:
    """Inside the block, `target` runs with `donor`'s blocks `layers` (and final norm + head if `head`).

    Models spread by accelerate (`--device-map`, blocks offloaded to CPU or disk) work too: an offloaded block of
    the target has its hook's weights map lent the donor's values; a donor block's values are read from its
    weights map where it is offloaded (memory-mapped, not copied whole).

    Raises:
        SftscopeError: block indices out of range, or blocks whose tensors differ in names or shapes.
    """
    pairs = list(zip(_modules(target, layers, head), _modules(donor, layers, head)))
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    lent_maps: list[tuple[object, object]] = []
    try:
        for mine, theirs in pairs:
            given = dict(real_tensors(theirs))
            names = [name for name, _ in real_tensors(mine)]
            if sorted(names) != sorted(given):
                raise SftscopeError(f"cannot swap {type(mine).__name__}: tensor names differ between models")
            for prefix, sub in mine.named_modules():
                own = {n: t for n, t in (*sub._parameters.items(), *sub._buffers.items()) if t is not None}
                qualified = {n: f"{prefix}.{n}" if prefix else n for n in own}
                for n, tensor in own.items():
                    if tuple(tensor.shape) != tuple(given[qualified[n]].shape):
                        raise SftscopeError(f"cannot swap tensor {qualified[n]}: shape {tuple(tensor.shape)} vs "
                                            f"{tuple(given[qualified[n]].shape)}")
                hook = offload_hook(sub)
                if hook is not None and any(t.device.type == "meta" for t in own.values()):
                    # its hook loads these tensors from the weights map before every forward: lend it the donor's
                    lent_maps.append((hook, hook.weights_map))
                    hook.weights_map = {n: given[qualified[n]] for n in own}
                    continue
                for n, tensor in own.items():
                    saved.append((tensor, tensor.data))
                    tensor.data = given[qualified[n]].data.to(device=tensor.device, dtype=tensor.dtype)
        yield
    finally:
        for tensor, original in reversed(saved):  # reversed: a tied tensor ends on its first saved storage
            tensor.data = original
        for hook, weights_map in reversed(lent_maps):
            hook.weights_map = weights_map
