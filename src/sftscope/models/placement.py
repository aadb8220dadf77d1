"""Where a module's tensors really are when accelerate spreads a model over GPUs, CPU and disk (`device_map`).

With offloading, accelerate leaves a module's parameters on the `meta` device and attaches an AlignDevicesHook
(`module._hf_hook`) that loads them from its `weights_map` (CPU memory or memory-mapped files on disk) onto its
`execution_device` just before the module runs. Code that moves tensors next to a module, reads a module's
weights, or lends weights to another model must ask the hook, not the parameter.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn


def _hooks(module: nn.Module) -> list:
    hook = getattr(module, "_hf_hook", None)
    if hook is None:
        return []
    return list(getattr(hook, "hooks", [hook]))  # a SequentialHook holds several


def offload_hook(module: nn.Module):
    """The hook that loads `module`'s own parameters from a weights map (None if they live in the module)."""
    return next((h for h in _hooks(module) if getattr(h, "offload", False)
                 and getattr(h, "weights_map", None) is not None), None)


def module_device(module: nn.Module) -> torch.device:
    """The device `module` computes on: its hook's execution device, else its first real tensor's device."""
    for hook in _hooks(module):
        device = getattr(hook, "execution_device", None)
        if device is not None:
            return torch.device(device) if not isinstance(device, torch.device) else device
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.device.type != "meta":
            return tensor.device
    return torch.device("cpu")


def real_tensors(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(qualified name, value) of every parameter and buffer of `module`, read from the weights map where the
    module is offloaded (a disk-offloaded tensor is memory-mapped, not loaded whole)."""
    for prefix, sub in module.named_modules():
        hook = offload_hook(sub)
        for name, tensor in (*sub._parameters.items(), *sub._buffers.items()):
            if tensor is None:
                continue
            qualified = f"{prefix}.{name}" if prefix else name
            if hook is not None and tensor.device.type == "meta" and name in hook.weights_map:
                yield qualified, hook.weights_map[name]
            else:
                yield qualified, tensor
