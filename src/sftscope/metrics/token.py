"""Token-level metrics of one sample's token matrix Z [T, d]: trajectory curvature and activation sparsity.

Every token metric has a batch kernel `kernel(batch, preset) -> values [B]` over a `TokenBatch` (a zero-padded
batch with each sample's valid tokens first) and a `reason(length, d, value)` that says why a sample has no
value (None when it has one); the public one-sample functions run the same kernel on a batch of one, so the
accumulator and the API share the math. Kernels return NaN for samples without a value.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from sftscope.metrics.core import PRESETS, Array, MetricUndefined, as_float64, check_preset


class TokenBatch:
    """Token matrices of a batch: z [B, T, d] float64, sample i's valid tokens in rows 0..lengths[i]-1 and zeros
    after; lengths [B] int64 on z's device. `cache` holds intermediates that several kernels share (a Gram,
    trajectory steps), so a batch is best used for one layer's kernels and then dropped. `workers`: CPU threads
    for the per-sample eigenvalue decompositions (None: torch's intra-op thread count); `router`: where those
    of a batch on an accelerator run (`dense.EigenRouter`; None: on the device); `pressure`: the metric queue's
    recent back-pressure, which the router weighs (1: the fastest split)."""

    def __init__(self, z: torch.Tensor, lengths: torch.Tensor, alpha: float = 1.0, sparsity_threshold: float = 0.01,
                 presets=PRESETS, workers: int | None = None, router=None):
        if z.dim() != 3 or lengths.shape != z.shape[:1]:
            raise ValueError(f"need z [B, T, d] and lengths [B], got {tuple(z.shape)} and {tuple(lengths.shape)}")
        self.z, self.lengths = z, lengths.to(device=z.device, dtype=torch.int64)
        self.alpha, self.sparsity_threshold = float(alpha), float(sparsity_threshold)
        self.presets = tuple(presets)  # the presets kernels will be asked for (shared work is done for these)
        self.workers = workers
        self.router = router
        self.pressure = 1.0
        self.cache: dict = {}

    @property
    def d(self) -> int:
        return self.z.shape[2]

    @classmethod
    def one(cls, z: Array, alpha: float = 1.0, sparsity_threshold: float = 0.01, presets=PRESETS) -> "TokenBatch":
        """A batch of one sample Z [T, d] (any dtype, numpy or torch, on any device)."""
        z = as_float64(z, 2, "Z")
        return cls(z[None], torch.tensor([z.shape[0]], device=z.device), alpha, sparsity_threshold, presets)

    def token_mask(self) -> torch.Tensor:
        """[B, T] bool, True on valid tokens."""
        if "token_mask" not in self.cache:
            t = self.z.shape[1]
            self.cache["token_mask"] = torch.arange(t, device=self.z.device)[None, :] < self.lengths[:, None]
        return self.cache["token_mask"]


def _steps(batch: TokenBatch):
    """Trajectory steps shared by both curvature presets: norms [B, T-1] and consecutive dot products [B, T-2]."""
    if "steps" not in batch.cache:
        z = batch.z
        steps = z[:, 1:] - z[:, :-1]                                   # v_k, [B, T-1, d]
        norms = torch.linalg.vector_norm(steps, dim=-1)                # [B, T-1]
        dots = (steps[:, :-1] * steps[:, 1:]).sum(-1)  # v_k . v_{k+1}, [B, T-2]; 2x vecdot's speed on the CPU
        batch.cache["steps"] = (norms, dots)
    return batch.cache["steps"]


def curvature_kernel(batch: TokenBatch, preset: str = "paper") -> torch.Tensor:
    """Mean turning angle / pi of each token trajectory -> [B] (NaN for samples with fewer than 3 tokens)."""
    b, t, _ = batch.z.shape
    lengths = batch.lengths
    if t < 3:
        return torch.full((b,), float("nan"), dtype=torch.float64, device=batch.z.device)
    norms, dots = _steps(batch)
    if preset == "paper":
        cos = dots / (norms[:, :-1].clamp_min(1e-8) * norms[:, 1:].clamp_min(1e-8))
        cos = cos.clamp(-0.999, 0.999)
    else:
        denom = norms[:, :-1] * norms[:, 1:]
        # a zero-length step has no direction: its angle with anything is taken as pi/2 (cos = 0)
        cos = torch.where(denom > 0, dots / torch.where(denom > 0, denom, torch.ones_like(denom)),
                          torch.zeros_like(dots)).clamp(-1.0, 1.0)
    angles = torch.arccos(cos)
    valid = torch.arange(t - 2, device=lengths.device)[None, :] < (lengths - 2)[:, None]  # angle k: tokens k..k+2
    count = (lengths - 2).clamp_min(1).to(torch.float64)
    values = torch.where(valid, angles, torch.zeros_like(angles)).sum(-1) / count / math.pi
    return torch.where(lengths >= 3, values, torch.full_like(values, float("nan")))


def curvature_reason(length: int, d: int, value: float) -> str | None:
    return None if length >= 3 else "needs at least 3 tokens"


def sparsity_kernel(batch: TokenBatch, preset: str = "paper") -> torch.Tensor:
    """Fraction of entries with |z| < threshold * max|Z| per sample -> [B] (NaN for a sample without tokens).
    One formula for both presets. Reads the batch's float32 copy (cache "narrow", the same values) when there is
    one, comparing against the float32 ceiling of the float64 threshold: for float32 values |z| < ceil32(t) holds
    exactly when |z| < t."""
    z, lengths = batch.z, batch.lengths
    x = batch.cache.get("narrow", z)
    b, t, d = x.shape
    magnitude = x.abs()  # one pass; the peak and the count both read it (cheaper than aminmax on the CPU)
    if t > 0:
        peak = magnitude.flatten(1).amax(1).to(torch.float64)  # max |z| of the sample (padding is 0)
    else:
        peak = torch.zeros(b, dtype=torch.float64, device=z.device)
    threshold = batch.sparsity_threshold * peak
    bound = threshold
    if x.dtype != torch.float64:
        bound = threshold.to(x.dtype)
        bound = torch.where(bound.to(torch.float64) < threshold, torch.nextafter(bound, torch.full_like(bound, math.inf)),
                            bound)
    # a boolean sum into int64 ran 4x slower on the CPU than into int32, which holds any count below 2^31
    count_dtype = torch.int32 if t * d < 2 ** 31 else torch.int64
    small = (magnitude < bound[:, None, None]).flatten(1).sum(1, dtype=count_dtype).to(torch.int64)
    # padding entries are 0: they count as small exactly when the threshold is positive
    small = small - torch.where(threshold > 0, (t - lengths) * d, torch.zeros_like(lengths))
    values = small.to(torch.float64) / (lengths.clamp_min(1) * d).to(torch.float64)
    return torch.where(lengths >= 1, values, torch.full_like(values, float("nan")))


def sparsity_reason(length: int, d: int, value: float) -> str | None:
    return None if length >= 1 else "no valid tokens"


def one_sample(kernel: Callable, reason: Callable, z: Array, preset: str, **batch_options) -> float:
    """Run a token kernel on one sample Z [T, d]; MetricUndefined with `reason`'s text when it has no value."""
    batch = TokenBatch.one(z, **batch_options)
    value = float(kernel(batch, preset)[0])
    why = reason(int(batch.lengths[0]), batch.d, value)
    if why:
        raise MetricUndefined(why)
    return value


def curvature(z: Array, preset: str = "paper") -> float:
    """Mean angle between consecutive steps of the token trajectory Z [T, d], in units of pi (METRICS.md).

    Raises:
        MetricUndefined: T < 3 (no pair of consecutive steps).
        ValueError: Z is not 2-D or the preset is unknown.
    """
    return one_sample(curvature_kernel, curvature_reason, z, check_preset(preset))


def sparsity(z: Array, threshold: float = 0.01) -> float:
    """Fraction of entries of Z [T, d] with |z| < threshold * max|Z| (max over this sample's valid tokens).

    Raises:
        MetricUndefined: T = 0.
        ValueError: Z is not 2-D.
    """
    return one_sample(sparsity_kernel, sparsity_reason, z, "paper", sparsity_threshold=threshold)
