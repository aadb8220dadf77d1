"""Fast bootstrap intervals for the Base-vs-variant alignment curves (every pair metric registered with a `ci`).

The generic `bootstrap_ci` recomputes a metric from the raw N x d matrices per replicate; for every layer of a
large model that is O(n_boot N^2 d). Here each metric's resampling form (`gram_form`, see sftscope.metrics.pair)
evaluates a block of replicates at once from the N x N Grams (or per-sample vectors) formed once per layer: a
resample is its vector of draw counts, and a block of R replicates costs a few N x N x R products. The
resamples are drawn exactly as `bootstrap_ci` draws them (same seed, same samples), and the estimate is the
same form at unit weights, so it equals `sftscope.metrics.<metric>` to rounding. CKA intervals use the
bias-corrected percentile method (its `ci`) because duplicated rows in a resample push biased CKA upward.
"""

from __future__ import annotations

import numpy as np
import torch

from sftscope.metrics.pair import PairContext
from sftscope.metrics.registry import ci_metrics
from sftscope.stats.uncertainty import interval_from_replicates

BLOCK = 64  # replicates per block: [N, BLOCK] weights keep memory at a few N x N matrices


def resample_counts(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """[n_boot, n] draw counts of n_boot resamples of n rows with replacement, drawn like `bootstrap_ci`."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n, size=n), minlength=n) for _ in range(n_boot)]) \
        if n_boot else np.zeros((0, n), dtype=np.int64)


def alignment_bootstrap(X, Y, n_boot: int = 200, level: float = 0.95, seed: int = 0, ctx: PairContext | None = None
                        ) -> dict[str, tuple[float, float, float]]:
    """{metric: (estimate, low, high)} for row-aligned X (Base), Y (variant) [N, d], resampling samples.

    X, Y: numpy arrays or tensors on any device (the math runs there, in float64); `ctx` reuses a PairContext of
    the same X, Y (its Grams). Replicates where a metric is undefined (e.g. a side without variance) are dropped.

    Raises:
        SftscopeError: fewer than 2 finite replicates of a metric (from `interval_from_replicates`).
        ValueError: X and Y hold different numbers of rows.
    """
    ctx = ctx or PairContext(X, Y)
    specs = ci_metrics()
    counts = torch.as_tensor(resample_counts(ctx.n, n_boot, seed), dtype=torch.float64)
    ones = torch.ones(1, ctx.n, dtype=torch.float64)
    boot = {spec.name: [] for spec in specs}
    for start in range(0, n_boot, BLOCK):
        block = counts[start:start + BLOCK].to(ctx.x.device)
        for spec in specs:
            boot[spec.name].append(spec.gram_form(ctx, block).cpu())
    out = {}
    for spec in specs:
        estimate = float(spec.gram_form(ctx, ones)[0])
        values = torch.cat(boot[spec.name]).numpy() if boot[spec.name] else np.zeros(0)
        values = values[np.isfinite(values)]
        out[spec.name] = (estimate, *interval_from_replicates(estimate, values, level, spec.ci))
    return out
