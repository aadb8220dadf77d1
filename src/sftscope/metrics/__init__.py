"""Representation metrics (METRICS.md): pure functions per family, a registry, and streaming accumulators.

Names are re-exported lazily (importing the package loads no torch).
"""

from sftscope._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "core": ("PRESETS", "MetricUndefined"),
    "entropy": ("dataset_entropy", "prompt_entropy"),
    "pair": ("cka", "cka_debiased", "cosine_similarity", "mean_shift", "relative_mean_shift"),
    "pooled": ("condition_number", "effective_rank", "l2_norm", "rank_deficiency", "spectral_norm"),
    "token": ("curvature", "sparsity"),
})
