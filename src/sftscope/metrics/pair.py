"""Base-vs-variant metrics on paired pooled matrices X [N, dx] (Base) and Y [N, dy] (variant), rows aligned.

Linear CKA only needs traces of kernel products; with column-centred data tr(K L) = ||Y^T X||_F^2 = <X X^T, Y Y^T>,
so each trace is taken through the cheaper of the N x N Grams and the d x d cross-covariance.
"""

from __future__ import annotations

import math

import torch

from sftscope.metrics.core import Array, MetricUndefined, as_float64


def _paired(x: Array, y: Array) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = as_float64(x, 2, "X"), as_float64(y, 2, "Y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"X and Y must hold the same samples: {x.shape[0]} vs {y.shape[0]} rows")
    return x, y


def _trace_product(x: torch.Tensor, y: torch.Tensor) -> float:
    """tr(X X^T Y Y^T) for X [N, dx], Y [N, dy], via whichever of N^2 (dx + dy) and N dx dy is cheaper."""
    n, dx = x.shape
    dy = y.shape[1]
    if n * n * (dx + dy) < n * dx * dy:
        return float((torch.matmul(x, x.T) * torch.matmul(y, y.T)).sum())
    return float(torch.linalg.matrix_norm(torch.matmul(y.T, x)) ** 2)


def cka(x: Array, y: Array) -> float:
    """Linear CKA with the biased HSIC (Kornblith et al. 2019) between X [N, dx] and Y [N, dy]; 1 = same geometry."""
    x, y = _paired(x, y)
    xc, yc = x - x.mean(0), y - y.mean(0)
    denom = math.sqrt(_trace_product(xc, xc) * _trace_product(yc, yc))
    if denom == 0:
        raise MetricUndefined("a side has zero variance across samples")
    return _trace_product(xc, yc) / denom


def _hsic_unbiased(xc: torch.Tensor, yc: torch.Tensor) -> float:
    """Song et al. (2012) unbiased HSIC of linear kernels on column-centred X, Y [N, d] (the estimator is
    translation invariant, and centring makes 1^T K 1 = 0, which removes most of its terms)."""
    n = xc.shape[0]
    kx = (xc * xc).sum(1)  # diagonal of K
    ky = (yc * yc).sum(1)
    trace_tilde = _trace_product(xc, yc) - float((kx * ky).sum())  # tr(K~ L~), diagonals zeroed
    ones_k, ones_l = -float(kx.sum()), -float(ky.sum())            # 1^T K~ 1 = 1^T K 1 - tr K
    ones_kl = float((kx * ky).sum())                                # 1^T K~ L~ 1 with K~ 1 = -diag K
    return (trace_tilde + ones_k * ones_l / ((n - 1) * (n - 2)) - 2.0 * ones_kl / (n - 2)) / (n * (n - 3))


def cka_debiased(x: Array, y: Array) -> float:
    """Linear CKA with the unbiased HSIC estimator between X [N, dx] and Y [N, dy]; ~0 for unrelated data."""
    x, y = _paired(x, y)
    n = x.shape[0]
    if n < 4:
        raise MetricUndefined("needs at least 4 samples (unbiased HSIC divides by N - 3)")
    xc, yc = x - x.mean(0), y - y.mean(0)
    hxx, hyy = _hsic_unbiased(xc, xc), _hsic_unbiased(yc, yc)
    if hxx <= 0 or hyy <= 0:
        raise MetricUndefined("non-positive unbiased self-HSIC (too few or degenerate samples)")
    return _hsic_unbiased(xc, yc) / math.sqrt(hxx * hyy)


def cosine_similarity(x: Array, y: Array, eps: float = 1e-8) -> float:
    """Mean over samples of cos(x_i, y_i) for X, Y [N, d] (each norm floored at eps)."""
    x, y = _paired(x, y)
    if x.shape[0] == 0:
        raise MetricUndefined("no samples")
    nx = torch.linalg.vector_norm(x, dim=1).clamp_min(eps)
    ny = torch.linalg.vector_norm(y, dim=1).clamp_min(eps)
    return float(((x * y).sum(1) / (nx * ny)).mean())


def mean_shift(x: Array, y: Array) -> float:
    """||mean(Y) - mean(X)||_2 for X, Y [N, d]."""
    x, y = _paired(x, y)
    if x.shape[0] == 0:
        raise MetricUndefined("no samples")
    return float(torch.linalg.vector_norm(y.mean(0) - x.mean(0)))


def relative_mean_shift(x: Array, y: Array) -> float:
    """||mean(Y) - mean(X)|| / ||mean(X)|| for X, Y [N, d]."""
    x, y = _paired(x, y)
    base = float(torch.linalg.vector_norm(x.mean(0))) if x.shape[0] else 0.0
    if base == 0:
        raise MetricUndefined("Base mean is zero (or no samples)")
    return mean_shift(x, y) / base


PAIR_FUNCTIONS = {"cka": cka, "cka_debiased": cka_debiased, "cosine_similarity": cosine_similarity,
                  "mean_shift": mean_shift, "relative_mean_shift": relative_mean_shift}


def pair_metrics(x: Array, y: Array) -> dict[str, float | MetricUndefined]:
    """Every pair metric of aligned X, Y [N, d]; an undefined one maps to its MetricUndefined."""
    x, y = _paired(x, y)
    out: dict[str, float | MetricUndefined] = {}
    for name, fn in PAIR_FUNCTIONS.items():
        try:
            out[name] = fn(x, y)
        except MetricUndefined as undefined:
            out[name] = undefined
    return out
