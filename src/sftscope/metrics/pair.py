"""Base-vs-variant metrics on paired pooled matrices X [N, dx] (Base) and Y [N, dy] (variant), rows aligned.

Linear CKA only needs traces of kernel products; with column-centred data tr(K L) = ||Y^T X||_F^2 = <X X^T, Y Y^T>,
so each trace is taken through the cheaper of the N x N Grams and the d x d cross-covariance. A `PairContext`
computes each Gram or cross-covariance once for every pair metric of a layer.

Resampling (bootstrap) form. A resample of the N samples is a weight vector w (w_i = how often sample i was
drawn, sum N). Each pair metric with a CI has a `*_resampled(ctx, weights [R, N]) -> [R]` that gives its value on
R resamples at once, from N x N Grams or per-sample vectors, without materialising the resampled matrices:
  * CKA: with K = Xc Xc^T, L = Yc Yc^T (centred on the full sample; CKA is translation invariant), the centred
    Grams of resample w satisfy <H K_w H, H L_w H> = w^T (K o L) w - (2/N) (K w)^T W (L w) + (w^T K w)(w^T L w) / N^2
    (W = diag(w), o = elementwise product; expand tr(K M L M) with M = W - w w^T / N);
  * cosine similarity: w . c / N with c_i = cos(x_i, y_i);
  * mean shift: ||w^T (Y - X)|| / N from the difference rows (the Gram form ||.||^2 = w^T (Kxx + Kyy - Kxy - Kyx) w
    / N^2 cancels catastrophically when Y is close to X).
"""

from __future__ import annotations

import math
from functools import cached_property

import torch

from sftscope.metrics.core import Array, MetricUndefined, as_float64


def _paired(x: Array, y: Array) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = as_float64(x, 2, "X"), as_float64(y, 2, "Y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"X and Y must hold the same samples: {x.shape[0]} vs {y.shape[0]} rows")
    return x, y


class PairContext:
    """Aligned X [N, dx], Y [N, dy] (float64) and the products the pair metrics share, each computed once."""

    def __init__(self, x: Array, y: Array):
        self.x, self.y = _paired(x, y)
        self.n = self.x.shape[0]
        self._traces: dict[tuple[str, str], float] = {}
        self._cosines: dict[float, torch.Tensor] = {}

    @cached_property
    def xc(self) -> torch.Tensor:
        return self.x - self.x.mean(0)

    @cached_property
    def yc(self) -> torch.Tensor:
        return self.y - self.y.mean(0)

    @cached_property
    def gram_x(self) -> torch.Tensor:
        """Xc Xc^T [N, N] (centred on the full sample)."""
        return torch.matmul(self.xc, self.xc.T)

    @cached_property
    def gram_y(self) -> torch.Tensor:
        """Yc Yc^T [N, N]."""
        return torch.matmul(self.yc, self.yc.T)

    def _centred(self, name: str) -> torch.Tensor:
        return self.xc if name == "x" else self.yc

    def trace_product(self, a: str, b: str) -> float:
        """tr(A A^T B B^T) of the centred sides a, b in {"x", "y"}, via whichever of N^2 (da + db) and N da db is
        cheaper (the N x N Grams are shared with the resampling forms)."""
        key = (a, b)
        if key not in self._traces:
            ma, mb = self._centred(a), self._centred(b)
            n, da, db = ma.shape[0], ma.shape[1], mb.shape[1]
            if n * n * (da + db) < n * da * db:
                ga = self.gram_x if a == "x" else self.gram_y
                gb = self.gram_x if b == "x" else self.gram_y
                self._traces[key] = float((ga * gb).sum())
            else:
                self._traces[key] = float(torch.linalg.matrix_norm(torch.matmul(mb.T, ma)) ** 2)
        return self._traces[key]

    def cosines(self, eps: float = 1e-8) -> torch.Tensor:
        """cos(x_i, y_i) per sample [N], each norm floored at eps."""
        if eps not in self._cosines:
            nx = torch.linalg.vector_norm(self.x, dim=1).clamp_min(eps)
            ny = torch.linalg.vector_norm(self.y, dim=1).clamp_min(eps)
            self._cosines[eps] = (self.x * self.y).sum(1) / (nx * ny)
        return self._cosines[eps]

    @cached_property
    def difference(self) -> torch.Tensor:
        """Y - X [N, d]."""
        return self.y - self.x


# -- metrics of a context -------------------------------------------------------------------------
def cka_of(ctx: PairContext) -> float:
    denom = math.sqrt(ctx.trace_product("x", "x") * ctx.trace_product("y", "y"))
    if denom == 0:
        raise MetricUndefined("a side has zero variance across samples")
    return ctx.trace_product("x", "y") / denom


def _hsic_unbiased(ctx: PairContext, a: str, b: str) -> float:
    """Song et al. (2012) unbiased HSIC of linear kernels on the column-centred sides a, b (the estimator is
    translation invariant, and centring makes 1^T K 1 = 0, which removes most of its terms)."""
    n = ctx.n
    ma, mb = ctx._centred(a), ctx._centred(b)
    ka = (ma * ma).sum(1)  # diagonal of K
    kb = (mb * mb).sum(1)
    trace_tilde = ctx.trace_product(a, b) - float((ka * kb).sum())  # tr(K~ L~), diagonals zeroed
    ones_k, ones_l = -float(ka.sum()), -float(kb.sum())              # 1^T K~ 1 = 1^T K 1 - tr K
    ones_kl = float((ka * kb).sum())                                  # 1^T K~ L~ 1 with K~ 1 = -diag K
    return (trace_tilde + ones_k * ones_l / ((n - 1) * (n - 2)) - 2.0 * ones_kl / (n - 2)) / (n * (n - 3))


def cka_debiased_of(ctx: PairContext) -> float:
    if ctx.n < 4:
        raise MetricUndefined("needs at least 4 samples (unbiased HSIC divides by N - 3)")
    hxx, hyy = _hsic_unbiased(ctx, "x", "x"), _hsic_unbiased(ctx, "y", "y")
    if hxx <= 0 or hyy <= 0:
        raise MetricUndefined("non-positive unbiased self-HSIC (too few or degenerate samples)")
    return _hsic_unbiased(ctx, "x", "y") / math.sqrt(hxx * hyy)


def cosine_similarity_of(ctx: PairContext, eps: float = 1e-8) -> float:
    if ctx.n == 0:
        raise MetricUndefined("no samples")
    return float(ctx.cosines(eps).mean())


def mean_shift_of(ctx: PairContext) -> float:
    if ctx.n == 0:
        raise MetricUndefined("no samples")
    return float(torch.linalg.vector_norm(ctx.y.mean(0) - ctx.x.mean(0)))


def relative_mean_shift_of(ctx: PairContext) -> float:
    base = float(torch.linalg.vector_norm(ctx.x.mean(0))) if ctx.n else 0.0
    if base == 0:
        raise MetricUndefined("Base mean is zero (or no samples)")
    return mean_shift_of(ctx) / base


# -- resampled forms: weights [R, N] (counts summing to N) -> values [R] -------------------------------
def _hsic_resampled(k: torch.Tensor, l: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    n = w.shape[1]
    wt = w.T                                                     # [N, R]
    kw, lw = torch.matmul(k, wt), torch.matmul(l, wt)            # K w, L w
    quadratic = (wt * torch.matmul(k * l, wt)).sum(0)            # w^T (K o L) w
    middle = (wt * kw * lw).sum(0)                               # (K w)^T W (L w)
    return quadratic - 2.0 * middle / n + (wt * kw).sum(0) * (wt * lw).sum(0) / (n * n)


def cka_resampled(ctx: PairContext, weights: torch.Tensor) -> torch.Tensor:
    """Biased linear CKA on each resample (weights [R, N]) -> [R] (NaN where a side has no variance)."""
    w = weights.to(device=ctx.x.device, dtype=torch.float64)
    kl = _hsic_resampled(ctx.gram_x, ctx.gram_y, w)
    kk = _hsic_resampled(ctx.gram_x, ctx.gram_x, w)
    ll = _hsic_resampled(ctx.gram_y, ctx.gram_y, w)
    denom = torch.sqrt(kk * ll)
    return torch.where(denom > 0, kl / torch.where(denom > 0, denom, torch.ones_like(denom)),
                       torch.full_like(kl, float("nan")))


def cosine_similarity_resampled(ctx: PairContext, weights: torch.Tensor) -> torch.Tensor:
    """Mean per-sample cosine on each resample -> [R]."""
    w = weights.to(device=ctx.x.device, dtype=torch.float64)
    return torch.matmul(w, ctx.cosines()) / ctx.n


def mean_shift_resampled(ctx: PairContext, weights: torch.Tensor) -> torch.Tensor:
    """||mean(Y) - mean(X)|| on each resample -> [R]."""
    w = weights.to(device=ctx.x.device, dtype=torch.float64)
    return torch.linalg.vector_norm(torch.matmul(w, ctx.difference) / ctx.n, dim=1)


# -- public one-shot functions ----------------------------------------------------------------------
def cka(x: Array, y: Array) -> float:
    """Linear CKA with the biased HSIC (Kornblith et al. 2019) between X [N, dx] and Y [N, dy]; 1 = same geometry.

    Raises:
        MetricUndefined: a side has zero variance across samples.
        ValueError: X and Y are not 2-D or hold different numbers of rows.
    """
    return cka_of(PairContext(x, y))


def cka_debiased(x: Array, y: Array) -> float:
    """Linear CKA with the unbiased HSIC estimator (Song et al. 2012) between X [N, dx] and Y [N, dy]; ~0 for
    unrelated data.

    Raises:
        MetricUndefined: N < 4, or a non-positive unbiased self-HSIC.
        ValueError: X and Y are not 2-D or hold different numbers of rows.
    """
    return cka_debiased_of(PairContext(x, y))


def cosine_similarity(x: Array, y: Array, eps: float = 1e-8) -> float:
    """Mean over samples of cos(x_i, y_i) for X, Y [N, d] (each norm floored at eps).

    Raises:
        MetricUndefined: no samples.
        ValueError: X and Y are not 2-D or hold different numbers of rows.
    """
    return cosine_similarity_of(PairContext(x, y), eps)


def mean_shift(x: Array, y: Array) -> float:
    """||mean(Y) - mean(X)||_2 for X, Y [N, d].

    Raises:
        MetricUndefined: no samples.
        ValueError: X and Y are not 2-D or hold different numbers of rows.
    """
    return mean_shift_of(PairContext(x, y))


def relative_mean_shift(x: Array, y: Array) -> float:
    """||mean(Y) - mean(X)|| / ||mean(X)|| for X, Y [N, d].

    Raises:
        MetricUndefined: the Base mean is zero or there are no samples.
        ValueError: X and Y are not 2-D or hold different numbers of rows.
    """
    return relative_mean_shift_of(PairContext(x, y))


def pair_metrics(x: Array, y: Array) -> dict[str, float | MetricUndefined]:
    """Every registered pair metric of aligned X, Y [N, d], sharing Grams; an undefined one maps to its
    MetricUndefined.

    Raises:
        ValueError: X and Y are not 2-D or hold different numbers of rows.
    """
    from sftscope.metrics.registry import pair_values  # the registry imports this module's functions

    return pair_values(PairContext(x, y))
