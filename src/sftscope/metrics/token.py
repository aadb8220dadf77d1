"""Token-level metrics of one sample's token matrix Z [T, d]: trajectory curvature and activation sparsity.

The *_batch kernels take a zero-padded batch with each sample's valid tokens first ([B, T, d] float64, lengths
[B]) and return (values [B], reasons) where reasons[i] is None or why sample i has no value; the public
functions run the same kernel on one sample so the accumulator and the API share the math.
"""

from __future__ import annotations

import math

import torch

from sftscope.metrics.core import Array, MetricUndefined, as_float64, check_preset


def curvature_batch(z: torch.Tensor, lengths: torch.Tensor, preset: str = "paper"):
    """Mean turning angle / pi of each token trajectory (z: [B, T, d]) -> (values [B], reasons)."""
    b, t, _ = z.shape
    reasons = [None if int(n) >= 3 else "needs at least 3 tokens" for n in lengths]
    if t < 3:
        return torch.full((b,), float("nan"), dtype=torch.float64), reasons
    steps = z[:, 1:] - z[:, :-1]                                   # v_k, [B, T-1, d]
    norms = torch.linalg.vector_norm(steps, dim=-1)                # [B, T-1]
    dots = (steps[:, :-1] * steps[:, 1:]).sum(-1)                  # v_k . v_{k+1}, [B, T-2]
    if preset == "paper":
        cos = dots / (norms[:, :-1].clamp_min(1e-8) * norms[:, 1:].clamp_min(1e-8))
        cos = cos.clamp(-0.999, 0.999)
    else:
        denom = norms[:, :-1] * norms[:, 1:]
        # a zero-length step has no direction: its angle with anything is taken as pi/2 (cos = 0)
        cos = torch.where(denom > 0, dots / torch.where(denom > 0, denom, torch.ones_like(denom)),
                          torch.zeros_like(dots)).clamp(-1.0, 1.0)
    angles = torch.arccos(cos)
    valid = torch.arange(t - 2)[None, :] < (lengths - 2)[:, None]  # angle k uses tokens k..k+2
    count = (lengths - 2).clamp_min(1).to(torch.float64)
    values = torch.where(valid, angles, torch.zeros_like(angles)).sum(-1) / count / math.pi
    return values, reasons


def sparsity_batch(z: torch.Tensor, lengths: torch.Tensor, threshold: float = 0.01):
    """Fraction of entries with |z| < threshold * max|Z| per sample (z: [B, T, d]) -> (values [B], reasons)."""
    b, t, d = z.shape
    magnitude = z.abs()
    peak = magnitude.flatten(1).amax(1) if t > 0 else torch.zeros(b, dtype=z.dtype)  # padding is 0
    token_mask = torch.arange(t)[None, :] < lengths[:, None]
    small = (magnitude < (threshold * peak)[:, None, None]) & token_mask[:, :, None]
    values = small.flatten(1).sum(1).to(torch.float64) / (lengths.clamp_min(1) * d).to(torch.float64)
    reasons = [None if int(n) >= 1 else "no valid tokens" for n in lengths]
    return values, reasons


def _one(kernel, z: Array, *args) -> float:
    z = as_float64(z, 2, "Z")
    values, reasons = kernel(z[None], torch.tensor([z.shape[0]]), *args)
    if reasons[0]:
        raise MetricUndefined(reasons[0])
    return float(values[0])


def curvature(z: Array, preset: str = "paper") -> float:
    """Mean angle between consecutive steps of the token trajectory Z [T, d], in units of pi; needs T >= 3."""
    return _one(curvature_batch, z, check_preset(preset))


def sparsity(z: Array, threshold: float = 0.01) -> float:
    """Fraction of entries of Z [T, d] with |z| < threshold * max|Z| (max over this sample's valid tokens)."""
    return _one(sparsity_batch, z, threshold)
