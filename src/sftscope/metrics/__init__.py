"""Representation metrics (METRICS.md): pure functions per family, a registry, and streaming accumulators."""

from sftscope.metrics.core import PRESETS, MetricUndefined
from sftscope.metrics.entropy import dataset_entropy, prompt_entropy
from sftscope.metrics.pair import cka, cka_debiased, cosine_similarity, mean_shift, relative_mean_shift
from sftscope.metrics.pooled import condition_number, effective_rank, l2_norm, rank_deficiency, spectral_norm
from sftscope.metrics.token import curvature, sparsity

__all__ = [
    "PRESETS", "MetricUndefined",
    "prompt_entropy", "curvature", "sparsity",
    "dataset_entropy", "effective_rank", "rank_deficiency", "spectral_norm", "condition_number", "l2_norm",
    "cka", "cka_debiased", "cosine_similarity", "mean_shift", "relative_mean_shift",
]
