"""Matrix entropy of Gram spectra: prompt entropy (one sample's tokens) and dataset entropy (pooled samples).

The spectrum of Z Z^T (T x T) equals that of Z^T Z (d x d) plus zeros, so the smaller matrix is decomposed and
the zeros are put back; a ridge on the identity shifts every eigenvalue, so it is added after that. Prompt
entropy runs batched on the hidden states' device: one Gram per sample for both presets, then per preset one
eigvalsh call for every sample of a layer on an accelerator (samples padded to the batch's length with
eigenvalue -1), or each sample's own T_i x T_i block on the CPU (`dense.eigvalsh_blocks`).
"""

from __future__ import annotations

import math

import torch

from sftscope.metrics.core import EPS64, PRESETS, Array, MetricUndefined, as_float64, check_preset, row_normalize
from sftscope.metrics.dense import batched_gram, eigvalsh, eigvalsh_blocks, host_route
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


def _normalizer(count: torch.Tensor, d: int) -> torch.Tensor:
    return torch.log(torch.clamp(count, max=d).to(torch.float64))


def _token_spectra(batch: TokenBatch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Gram spectra of every sample of a batch for each preset in `batch.presets`: preset -> (lam [B, W],
    valid [B, W]), sample i's T_i eigenvalues in the last T_i columns. One Gram per sample serves both presets
    and one `eigvalsh_blocks` call per preset serves every sample of the layer (cached in the batch)."""
    if "spectra" in batch.cache:
        return batch.cache["spectra"]
    z, lengths, mask = batch.z, batch.lengths, batch.token_mask()
    b, t, d = z.shape
    presets = [p for p in PRESETS if p in batch.presets]
    count = lengths.clamp_min(1).to(z.dtype)
    sums = batch.cache["sums"] if "sums" in batch.cache else z.sum(1)   # [B, d], padding rows are zero
    mean = sums / count[:, None]
    norms = torch.linalg.vector_norm(z, dim=-1)                          # ||z_i|| [B, T]
    width = t
    valid = torch.arange(width, device=z.device)[None, :] >= (width - lengths)[:, None]
    if t <= d:
        # Z Z^T of the raw tokens, then the centred Gram from it: (z_i - m).(z_j - m) = G_ij - q_i - q_j + m.m with
        # q_i = z_i . m = (row sum of G) / T_i. Deriving it this way keeps exactly-zero token rows exact in the
        # paper Gram; the cancellation it adds to the centred entries is relative eps * ||z||^2 / ||z - m||^2
        # (rows at that level count as zero). The matrices are built in place: on the CPU the passes over
        # B x T x T, not their arithmetic, were a third of this function's time.
        gram = batched_gram(z, batch.workers)                                    # [B, T, T]
        mats = []
        if "canonical" in presets:
            q = gram.sum(-1) / count[:, None]                                   # [B, T]
            c = (mean * mean).sum(-1)                                           # [B]
            raw = torch.diagonal(gram, dim1=1, dim2=2).clone()
        if "paper" in presets:
            inv = 1.0 / (norms + 1e-10)
            paper = gram if "canonical" not in presets else gram.clone()
            mats.append(paper.mul_(inv[:, :, None]).mul_(inv[:, None, :]))     # Zn Zn^T, unit diagonal
        if "canonical" in presets:
            centred = gram.sub_(q[:, :, None]).sub_(q[:, None, :]).add_(c[:, None, None])
            diag = torch.diagonal(centred, dim1=1, dim2=2)
            zero = diag <= 16 * EPS64 * (raw + c[:, None])  # centred norm at rounding level of the raw one
            # padding rows and columns get a zero scale: the matrix is zero outside each sample's block
            zero = zero | ~mask
            inv = torch.where(zero, torch.zeros_like(diag), torch.rsqrt(torch.where(zero, torch.ones_like(diag), diag)))
            mats.append(centred.mul_(inv[:, :, None]).mul_(inv[:, None, :]))
        # eigenvalue -1 for the padding, below every eigenvalue of the (PSD) valid block: sample i's eigenvalues
        # are exactly the last T_i of its ascending row
        if len(mats) > 1 and not host_route(mats[0]):
            # off the CPU both presets go in one call: one launch, and a router splits every decomposition at once
            both = eigvalsh_blocks(torch.cat(mats), lengths.repeat(len(mats)), fill=-1.0, router=batch.router,
                                   pressure=batch.pressure)
            lams = list(both.split(b))
        else:  # per preset, [B, T]
            lams = [eigvalsh_blocks(mat, lengths, fill=-1.0, workers=batch.workers, router=batch.router,
                                    pressure=batch.pressure) for mat in mats]
    else:  # more tokens than dimensions: the d x d covariances have the same nonzero spectrum
        zn = z / (norms + 1e-10)[..., None]
        mats = []
        if "paper" in presets:
            mats.append(torch.bmm(zn.transpose(1, 2), zn))
        if "canonical" in presets:
            zc = torch.where(mask[..., None], z - mean[:, None, :], torch.zeros_like(z))
            nc = torch.linalg.vector_norm(zc, dim=-1, keepdim=True)
            zcn = torch.where(nc > 0, zc / torch.where(nc > 0, nc, torch.ones_like(nc)), torch.zeros_like(zc))
            mats.append(torch.bmm(zcn.transpose(1, 2), zcn))
        # sample i's Gram spectrum: its top min(T_i, d) covariance eigenvalues and T_i - d exact zeros
        zeros = torch.zeros(b, t - d, dtype=z.dtype, device=z.device)
        lams = [torch.cat([zeros, eigvalsh(mat, batch.workers, batch.router, batch.pressure)], dim=-1) for mat in mats]  # [B, T]
    out = {}
    for preset, lam in zip(presets, lams):
        if preset == "paper":  # scale after the decomposition: the unit-diagonal matrix decomposes fastest
            lam = torch.where(valid, lam * (1.0 / d) + 1e-6, lam)
        out[preset] = (lam, valid)
    batch.cache["spectra"] = out
    return out


def prompt_entropy_kernel(batch: TokenBatch, preset: str = "paper") -> torch.Tensor:
    """Prompt entropy of each sample of a TokenBatch -> [B] (NaN where the spectrum is zero; see the reason)."""
    b, t, d = batch.z.shape
    if t == 0:  # no tokens at all: no spectrum (the reason says why)
        return torch.full((b,), float("nan"), dtype=torch.float64, device=batch.z.device)
    if preset not in batch.presets:  # a preset the batch was not prepared for: add it to the shared work
        batch.presets = (*batch.presets, preset)
        batch.cache.pop("spectra", None)
    lam, valid = _token_spectra(batch)[preset]
    return spectrum_entropy(lam, valid, batch.alpha, preset) / _normalizer(batch.lengths, d)


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
    return one_sample(prompt_entropy_kernel, prompt_entropy_reason, z, check_preset(preset), alpha=alpha,
                      presets=(preset,))


def dataset_spectrum_entropy(p: torch.Tensor, alpha: float, preset: str, shared: dict | None = None) -> float:
    """Normalised matrix entropy of a float64 pooled matrix P [N, d] with N, d >= 2 (see `dataset_entropy`).

    For N <= d both presets are prompt entropy's formulas with the N samples as the tokens, so they share its
    batched path (one Gram for both presets); `shared` (a dict kept by the caller) carries that work between the
    two presets' calls. For N > d the paper preset is the authors' large-N branch: squared singular values of the
    row-normalised P, no ridge and no 1/d.

    Raises:
        MetricUndefined: (canonical) every sample equal after centring.
    """
    n, d = p.shape
    if preset == "paper" and n > d:
        pn = row_normalize(p, 1e-10)
        lam = torch.linalg.svdvals(pn)[None] ** 2
        h = spectrum_entropy(lam, torch.ones_like(lam, dtype=torch.bool), alpha, preset)[0]
        return float(h) / math.log(min(n, d))
    shared = {} if shared is None else shared
    if "batch" not in shared:
        presets = PRESETS if n <= d else ("canonical",)
        shared["batch"] = TokenBatch(p[None], torch.tensor([n], device=p.device), alpha, presets=presets)
    value = float(prompt_entropy_kernel(shared["batch"], preset)[0])
    if math.isnan(value):
        raise MetricUndefined("zero spectrum (all samples identical after centring)")
    return value


def dataset_entropy(p: Array, alpha: float = 1.0, preset: str = "paper") -> float:
    """Normalised matrix entropy of the pooled matrix P [N, d] (METRICS.md); higher = samples more spread.

    Raises:
        MetricUndefined: N < 2 or d < 2, or (canonical) every sample equal after centring.
        ValueError: P is not 2-D or the preset is unknown.
    """
    check_preset(preset)
    p = as_float64(p, 2, "P")
    n, d = p.shape
    if n < 2 or d < 2:
        raise MetricUndefined("needs at least 2 samples and 2 dimensions (log(min(N, d)) = 0)")
    return dataset_spectrum_entropy(p, alpha, preset)
