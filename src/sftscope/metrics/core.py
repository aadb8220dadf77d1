"""Shared pieces of the metric families: presets, the 'undefined' signal, float64 conversion on any device."""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

PRESETS = ("paper", "canonical")
Array = Union[torch.Tensor, np.ndarray]
EPS64 = float(np.finfo(np.float64).eps)


class MetricUndefined(ValueError):
    """A metric has no value for this input (too few tokens/samples, a zero spectrum); `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def check_preset(preset: str) -> str:
    if preset not in PRESETS:
        raise ValueError(f"unknown metric preset {preset!r}; use one of {', '.join(PRESETS)}")
    return preset


def as_float64(x: Array, ndim: int = 2, name: str = "input") -> torch.Tensor:
    """Any tensor/array -> detached float64 tensor on the tensor's own device (numpy: CPU); upcast before any
    reduction: bf16 sums lose digits.

    Raises:
        ValueError: x does not have `ndim` dimensions.
    """
    t = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x.detach()
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    return t.to(torch.float64)


def row_normalize(x: torch.Tensor, eps: float | None) -> torch.Tensor:
    """Rows divided by their L2 norm: (norm + eps) when eps is given (paper), else exact with zero rows kept zero."""
    norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    if eps is not None:
        return x / (norms + eps)
    return torch.where(norms > 0, x / norms.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(x))
