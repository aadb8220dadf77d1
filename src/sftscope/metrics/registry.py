"""Every representation metric by name: kind, presets, what it measures and how to read it (`sftscope ls metrics`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sftscope.errors import UnknownNameError
from sftscope.metrics import entropy, pair, pooled, token
from sftscope.metrics.core import PRESETS
from sftscope.results.schema import MODE_ALIGNMENT, MODE_DATASET_DIFF, MODE_SAMPLE_DIFF, MODE_VALUE

TOKEN, POOLED, PAIR = "token", "pooled", "pair"
_MODES = {TOKEN: (MODE_VALUE, MODE_SAMPLE_DIFF), POOLED: (MODE_VALUE, MODE_DATASET_DIFF), PAIR: (MODE_ALIGNMENT,)}


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str              # token: per sample Z [T, d]; pooled: P [N, d]; pair: X, Y [N, d]
    fn: Callable[..., Any]
    description: str
    reading: str           # what a higher value means
    presets: tuple[str, ...] = PRESETS
    preset_dependent: bool = True  # False: one formula, the same value reported under every preset

    @property
    def modes(self) -> tuple[str, ...]:
        return _MODES[self.kind]


_SPECS = [
    MetricSpec("prompt_entropy", TOKEN, entropy.prompt_entropy,
               "normalised matrix entropy of a sample's token Gram matrix", "higher = tokens spread over more directions"),
    MetricSpec("curvature", TOKEN, token.curvature,
               "mean angle between consecutive steps of the token trajectory, / pi", "higher = more winding trajectory"),
    MetricSpec("sparsity", TOKEN, token.sparsity,
               "fraction of activations below 1% of the sample's largest |activation|", "higher = sparser activations",
               preset_dependent=False),
    MetricSpec("dataset_entropy", POOLED, entropy.dataset_entropy,
               "normalised matrix entropy of the pooled samples' Gram matrix", "higher = samples spread over more directions"),
    MetricSpec("effective_rank", POOLED, pooled.effective_rank,
               "exp(entropy of the singular value distribution) / min(N, d)", "higher = more dimensions in use"),
    MetricSpec("effective_rank_raw", POOLED, lambda p: pooled.effective_rank(p, "canonical", normalized=False),
               "Roy & Vetterli effective rank of centred P, not normalised", "higher = more dimensions in use",
               presets=("canonical",)),
    MetricSpec("rank_deficiency", POOLED, pooled.rank_deficiency,
               "1 - rank / min(N, d)", "higher = more collapsed (fewer independent directions)"),
    MetricSpec("spectral_norm", POOLED, pooled.spectral_norm,
               "largest singular value of P", "higher = larger dominant direction", preset_dependent=False),
    MetricSpec("condition_number", POOLED, pooled.condition_number,
               "largest / smallest singular value of P", "higher = more anisotropic / ill-conditioned"),
    MetricSpec("l2_norm", POOLED, lambda p: pooled.l2_norm(p).mean,
               "mean L2 norm of the pooled sample vectors", "higher = larger activations", preset_dependent=False),
    MetricSpec("l2_norm_std", POOLED, lambda p: pooled.l2_norm(p).std,
               "standard deviation (ddof 1) of the pooled vectors' L2 norms", "higher = norms vary more across samples",
               preset_dependent=False),
    MetricSpec("cka", PAIR, pair.cka, "linear CKA, biased HSIC (Kornblith et al. 2019)",
               "higher = Base and variant geometry more alike (biased upward when N << d)", preset_dependent=False),
    MetricSpec("cka_debiased", PAIR, pair.cka_debiased, "linear CKA, unbiased HSIC (Song et al. 2012)",
               "higher = more alike; ~0 for unrelated representations", preset_dependent=False),
    MetricSpec("cosine_similarity", PAIR, pair.cosine_similarity, "mean cosine between a sample's Base and variant vectors",
               "higher = vectors point the same way", preset_dependent=False),
    MetricSpec("mean_shift", PAIR, pair.mean_shift, "||mean(variant) - mean(Base)||", "higher = larger drift",
               preset_dependent=False),
    MetricSpec("relative_mean_shift", PAIR, pair.relative_mean_shift, "mean shift / ||mean(Base)||",
               "higher = larger drift relative to Base scale", preset_dependent=False),
]
METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}


def get_metric(name: str) -> MetricSpec:
    """The spec of metric `name`; UnknownNameError lists the known ones."""
    if name not in METRICS:
        raise UnknownNameError("metric", name, list(METRICS))
    return METRICS[name]


def metrics_of_kind(kind: str) -> list[MetricSpec]:
    return [spec for spec in _SPECS if spec.kind == kind]


def list_metrics() -> list[dict[str, str]]:
    """One row per metric for `sftscope ls metrics`: name, kind, presets, modes, description, reading."""
    return [{"name": s.name, "kind": s.kind, "presets": ",".join(s.presets), "modes": ",".join(s.modes),
             "description": s.description, "reading": s.reading} for s in _SPECS]
