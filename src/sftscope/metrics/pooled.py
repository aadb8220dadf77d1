"""Dataset-level metrics of a pooled matrix P [N, d] (one row per sample): rank, conditioning, norms.

Rank, condition number and effective rank come from an SVD of P itself (a Gram matrix would square the
condition number); `pooled_metrics` shares one SVD of raw P and one of centred P across all of them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from sftscope.metrics.core import EPS64, PRESETS, Array, MetricUndefined, as_float64, check_preset
from sftscope.metrics.entropy import dataset_entropy


class L2Norm(NamedTuple):
    mean: float
    std: float


def _canonical_tol(s: torch.Tensor, shape: tuple[int, int]) -> float:
    """Numerical-rank tolerance (numpy.linalg.matrix_rank's): s_max * max(N, d) * eps64."""
    return float(s.max()) * max(shape) * EPS64 if s.numel() else 0.0


def _erank_from_sv(s: torch.Tensor, preset: str, shape: tuple[int, int], normalized: bool) -> float:
    if preset == "paper":
        p = s ** 2 / (s ** 2 + 1e-9).sum()
        erank = math.exp(float(-(p * torch.log(p + 1e-9)).sum()))
    else:
        s = s[s > _canonical_tol(s, shape)]
        if s.numel() == 0:
            raise MetricUndefined("zero matrix after centring (all samples identical)")
        p = s / s.sum()
        erank = math.exp(float(-(p * torch.log(p)).sum()))
    return erank / min(shape) if normalized else erank


def effective_rank(p: Array, preset: str = "paper", normalized: bool = True) -> float:
    """Effective rank of P [N, d] (paper: raw P, s^2 weights; canonical: Roy & Vetterli on centred P), / min(N, d)."""
    check_preset(preset)
    p = as_float64(p, 2, "P")
    if preset == "canonical":
        p = p - p.mean(0, keepdim=True)
    return _erank_from_sv(torch.linalg.svdvals(p), preset, tuple(p.shape), normalized)


def _rank_deficiency_from_sv(s: torch.Tensor, preset: str, shape: tuple[int, int]) -> float:
    tol = 0.01 * float(s.max()) if preset == "paper" else _canonical_tol(s, shape)
    return 1.0 - int((s > tol).sum()) / min(shape)


def rank_deficiency(p: Array, preset: str = "paper") -> float:
    """1 - rank(P) / min(N, d) for P [N, d] (paper: s > 0.01 s_max; canonical: numerical rank)."""
    check_preset(preset)
    p = as_float64(p, 2, "P")
    return _rank_deficiency_from_sv(torch.linalg.svdvals(p), preset, tuple(p.shape))


def spectral_norm(p: Array) -> float:
    """Largest singular value of P [N, d]."""
    return float(torch.linalg.svdvals(as_float64(p, 2, "P")).max())


def _condition_from_sv(s: torch.Tensor, preset: str, shape: tuple[int, int]) -> float:
    s_max, s_min = float(s.max()), float(s.min())
    if preset == "paper":
        return s_max / (s_min + 1e-9)
    # s_min at rounding level is a zero singular value: the matrix is singular, not merely ill-conditioned
    return math.inf if s_min <= _canonical_tol(s, shape) else s_max / s_min


def condition_number(p: Array, preset: str = "paper") -> float:
    """s_max / s_min of P [N, d] over its min(N, d) singular values (canonical: inf when singular)."""
    check_preset(preset)
    p = as_float64(p, 2, "P")
    return _condition_from_sv(torch.linalg.svdvals(p), preset, tuple(p.shape))


def l2_norm(p: Array) -> L2Norm:
    """Mean and standard deviation (ddof 1) of the row norms of P [N, d]; needs N >= 2 for the std."""
    norms = torch.linalg.vector_norm(as_float64(p, 2, "P"), dim=1)
    if norms.numel() < 2:
        raise MetricUndefined("needs at least 2 samples for the standard deviation")
    return L2Norm(float(norms.mean()), float(norms.std(correction=1)))


def pooled_metrics(p: Array, presets=PRESETS, alpha: float = 1.0) -> dict[tuple[str, str], float | MetricUndefined]:
    """Every pooled metric of P [N, d] per (metric, preset), sharing SVDs; an undefined one maps to its reason."""
    p = as_float64(p, 2, "P")
    shape = tuple(p.shape)
    out: dict[tuple[str, str], float | MetricUndefined] = {}

    def put(key, fn):
        try:
            out[key] = fn()
        except MetricUndefined as undefined:
            out[key] = undefined

    if min(shape) == 0:
        for metric in ("dataset_entropy", "effective_rank", "rank_deficiency", "spectral_norm",
                       "condition_number", "l2_norm", "l2_norm_std"):
            for preset in presets:
                out[(metric, preset)] = MetricUndefined("no samples")
        return out
    s_raw = torch.linalg.svdvals(p)
    s_centred = torch.linalg.svdvals(p - p.mean(0, keepdim=True)) if "canonical" in presets else None
    row_norms = torch.linalg.vector_norm(p, dim=1)
    for preset in presets:
        check_preset(preset)
        put(("dataset_entropy", preset), lambda: dataset_entropy(p, alpha, preset))
        s = s_raw if preset == "paper" else s_centred
        put(("effective_rank", preset), lambda: _erank_from_sv(s, preset, shape, True))
        if preset == "canonical":
            put(("effective_rank_raw", preset), lambda: _erank_from_sv(s, preset, shape, False))
        put(("rank_deficiency", preset), lambda: _rank_deficiency_from_sv(s_raw, preset, shape))
        put(("condition_number", preset), lambda: _condition_from_sv(s_raw, preset, shape))
        out[("spectral_norm", preset)] = float(s_raw.max())
        out[("l2_norm", preset)] = float(row_norms.mean())
        put(("l2_norm_std", preset), lambda: l2_norm(p).std)
    return out
