"""Matrix entropy of Gram spectra: prompt entropy (one sample's tokens) and dataset entropy (pooled samples).

The spectrum of Z Z^T (T x T) equals that of Z^T Z (d x d) plus zeros, so the smaller matrix is decomposed and
the zeros are put back; a ridge on the identity shifts every eigenvalue, so it is added after that.
"""

from __future__ import annotations

import math

import torch

from sftscope.metrics.core import EPS64, Array, MetricUndefined, as_float64, check_preset, row_normalize
from sftscope.metrics.token import TokenBatch, one_sample


def spectrum_entropy(lam: torch.Tensor, valid: torch.Tensor, alpha: float, preset: str) -> torch.Tensor:
    """Entropy of each row's valid eigenvalues (lam, valid: [B, m]) -> [B]; NaN where canonical has no spectrum."""
    lam = torch.where(valid, lam, torch.zeros_like(lam))
    if preset == "paper":
        lam = torch.where(valid, lam.clamp_min(1e-10), lam)
        total = lam.sum(-1, keepdim=True)
        p = lam / (total + 1e-10)
        if alpha == 1.0:
            h = -(torch.where(valid, p * torch.log(p + 1e-10), torch.zeros_like(p))).sum(-1)
        else:
            h = torch.log((torch.where(valid, p ** alpha, torch.zeros_like(p))).sum(-1) + 1e-10) / (1.0 - alpha)
        return torch.where(total.squeeze(-1) < 1e-10, torch.zeros_like(h), h)
    # canonical: drop eigenvalues that are zero to working precision (an exact zero is rarely exactly 0.0)
    size = valid.sum(-1, keepdim=True).clamp_min(1)
    tol = lam.amax(-1, keepdim=True).clamp_min(0) * size * EPS64
    keep = valid & (lam > tol)
    lam = torch.where(keep, lam, torch.zeros_like(lam))
    total = lam.sum(-1, keepdim=True)
    p = lam / torch.where(total > 0, total, torch.ones_like(total))
    if alpha == 1.0:
        h = -(torch.where(keep, p * torch.log(torch.where(keep, p, torch.ones_like(p))), torch.zeros_like(p))).sum(-1)
    else:
        h = torch.log((torch.where(keep, p ** alpha, torch.zeros_like(p))).sum(-1)) / (1.0 - alpha)
    return torch.where(total.squeeze(-1) > 0, h, torch.full_like(h, float("nan")))


def gram_spectrum(zn: torch.Tensor, lengths: torch.Tensor, scale: float, ridge: float):
    """Eigenvalues of scale * Zn_i Zn_i^T + ridge * I_{T_i} per sample (zn: [B, T, d], rows >= T_i ignored).

    Returns (lam [B, max T_i], valid [B, max T_i]); row i holds T_i valid eigenvalues. Each sample is decomposed
    at its own size, min(T_i, d): padding to the batch's longest sample would cost (T / T_i)^3 more.
    """
    b, _, d = zn.shape
    width = int(lengths.max()) if b else 0
    lam = torch.zeros(b, width, dtype=zn.dtype, device=zn.device)
    valid = torch.arange(width, device=zn.device)[None, :] < lengths[:, None]
    for i in range(b):
        n = int(lengths[i])
        if n == 0:
            continue
        x = zn[i, :n]
        if n <= d:
            lam[i, :n] = torch.linalg.eigvalsh(torch.matmul(x, x.T))
        else:  # d eigenvalues of the covariance, the other n - d eigenvalues of the Gram are exactly zero
            lam[i, n - d:n] = torch.linalg.eigvalsh(torch.matmul(x.T, x))
    # scale after the decomposition: LAPACK's eigvalsh ran ~50x slower on the 1/d-scaled matrix (unit diagonal is fast)
    return torch.where(valid, lam * scale + ridge, lam), valid


def _normalizer(count: torch.Tensor, d: int) -> torch.Tensor:
    return torch.log(torch.clamp(count, max=d).to(torch.float64))


def prompt_entropy_kernel(batch: TokenBatch, preset: str = "paper") -> torch.Tensor:
    """Prompt entropy of each sample of a TokenBatch -> [B] (NaN where the spectrum is zero; see the reason)."""
    z, lengths, alpha = batch.z, batch.lengths, batch.alpha
    b, t, d = z.shape
    if t == 0:  # no tokens at all: no spectrum (the reason says why)
        return torch.full((b,), float("nan"), dtype=torch.float64, device=z.device)
    if preset == "paper":
        lam, valid = gram_spectrum(row_normalize(z, 1e-10), lengths, 1.0 / d, 1e-6)
    else:
        token_mask = batch.token_mask().unsqueeze(-1)
        mean = z.sum(1, keepdim=True) / lengths.clamp_min(1).to(z.dtype)[:, None, None]
        centred = torch.where(token_mask, z - mean, torch.zeros_like(z))
        lam, valid = gram_spectrum(row_normalize(centred, None), lengths, 1.0, 0.0)
    return spectrum_entropy(lam, valid, alpha, preset) / _normalizer(lengths, d)


def prompt_entropy_reason(length: int, d: int, value: float) -> str | None:
    if length < 2 or d < 2:
        return "needs at least 2 tokens and 2 dimensions (log(min(T, d)) = 0)"
    if math.isnan(value):
        return "zero spectrum (all tokens identical after centring)"
    return None


def prompt_entropy(z: Array, alpha: float = 1.0, preset: str = "paper") -> float:
    """Normalised matrix entropy of one sample's token matrix Z [T, d] (METRICS.md); higher = more spread.

    Raises:
        MetricUndefined: T < 2 or d < 2, or (canonical) every token equal after centring.
        ValueError: Z is not 2-D or the preset is unknown.
    """
    return one_sample(prompt_entropy_kernel, prompt_entropy_reason, z, check_preset(preset), alpha=alpha)


def dataset_entropy(p: Array, alpha: float = 1.0, preset: str = "paper") -> float:
    """Normalised matrix entropy of the pooled matrix P [N, d] (METRICS.md); higher = samples more spread."""
    check_preset(preset)
    p = as_float64(p, 2, "P")
    n, d = p.shape
    if n < 2 or d < 2:
        raise MetricUndefined("needs at least 2 samples and 2 dimensions (log(min(N, d)) = 0)")
    lengths = torch.tensor([n])
    if preset == "paper":
        pn = row_normalize(p, 1e-10)
        if n <= d:
            lam, valid = gram_spectrum(pn[None], lengths, 1.0 / d, 1e-6)
        else:  # the authors' large-N branch: squared singular values, no ridge, no 1/d
            lam = torch.linalg.svdvals(pn)[None] ** 2
            valid = torch.ones_like(lam, dtype=torch.bool)
    else:
        pn = row_normalize(p - p.mean(0, keepdim=True), None)
        lam, valid = gram_spectrum(pn[None], lengths, 1.0, 0.0)
    h = spectrum_entropy(lam, valid, alpha, preset)[0]
    if torch.isnan(h):
        raise MetricUndefined("zero spectrum (all samples identical after centring)")
    return float(h) / math.log(min(n, d))
