"""Every representation metric by name: one function plus one entry here (kind, presets, modes, direction,
batch/context form, optional resampling form). The accumulators, `pooled_metrics`, `pair_metrics`, the
bootstrap and `sftscope ls metrics` iterate this registry; none of them lists metric names of its own.

Kinds and their forms (`compute`):
  token  : kernel(TokenBatch, preset) -> values [B] (NaN where undefined) + reason(length, d, value) -> why not;
  pooled : (PooledContext, preset) -> float, raising MetricUndefined;
  pair   : (PairContext) -> float, raising MetricUndefined; optional gram_form(PairContext, weights [R, N]) -> [R]
           (the metric on R resamples at once, see sftscope.metrics.pair), used by the bootstrap when `ci` is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from sftscope.errors import UnknownNameError
from sftscope.metrics import entropy, pair, pooled, token
from sftscope.metrics.core import PRESETS, MetricUndefined
from sftscope.results.schema import MODE_ALIGNMENT, MODE_DATASET_DIFF, MODE_SAMPLE_DIFF, MODE_VALUE

TOKEN, POOLED, PAIR = "token", "pooled", "pair"
_MODES = {TOKEN: (MODE_VALUE, MODE_SAMPLE_DIFF), POOLED: (MODE_VALUE, MODE_DATASET_DIFF), PAIR: (MODE_ALIGNMENT,)}
# Which way a value means "more change from the Base" (the keys of sftscope.stats.uncertainty's change maps):
SIMILARITY = "similarity"  # pair metric, higher = variant closer to the Base
DISTANCE = "distance"      # pair metric, higher = variant further from the Base
DIFFERENCE = "difference"  # one model's quantity: its change is |variant - Base|, either sign


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str                  # token: per sample Z [T, d]; pooled: P [N, d]; pair: X, Y [N, d]
    fn: Callable[..., float]   # one-shot value: token fn(Z, preset), pooled fn(P, preset), pair fn(X, Y)
    compute: Callable[..., Any]  # the batch/context form (module docstring)
    description: str
    reading: str               # what a higher value means
    presets: tuple[str, ...] = PRESETS
    preset_dependent: bool = True  # False: one formula, the same value reported under every preset
    direction: str = DIFFERENCE
    min_size: int = 1          # fewest tokens (token) or samples (pooled, pair) that give a value on generic input
    reason: Callable[[int, int, float], str | None] | None = None  # token: why a sample has no value
    gram_form: Callable[..., torch.Tensor] | None = None  # pair: values on resamples, weights [R, N] -> [R]
    ci: str | None = None      # bootstrap interval of the alignment rows: "bc", "percentile" or None (none)
    unchanged: float | None = None  # pair: the value when the variant equals the Base

    @property
    def modes(self) -> tuple[str, ...]:
        return _MODES[self.kind]

    def preset_keys(self, presets) -> list[str]:
        """The preset labels a value is stored under: each wanted preset, or '' for a preset-free token metric."""
        if self.kind == TOKEN and not self.preset_dependent:
            return [""]
        return [p for p in presets if p in self.presets]


def _token_fn(kernel, reason, **fixed):
    def fn(z, preset: str = "paper") -> float:
        return token.one_sample(kernel, reason, z, preset, **fixed)
    return fn


def _pooled_fn(of):
    def fn(p, preset: str = "paper") -> float:
        ctx = pooled.PooledContext(p)
        if min(ctx.shape) == 0:
            raise MetricUndefined("no samples")
        return of(ctx, preset)
    return fn


def _pair_fn(of):
    return lambda x, y: of(pair.PairContext(x, y))


_SPECS = [
    MetricSpec("prompt_entropy", TOKEN, _token_fn(entropy.prompt_entropy_kernel, entropy.prompt_entropy_reason),
               entropy.prompt_entropy_kernel, "normalised matrix entropy of a sample's token Gram matrix",
               "higher = tokens spread over more directions", min_size=2, reason=entropy.prompt_entropy_reason),
    MetricSpec("curvature", TOKEN, _token_fn(token.curvature_kernel, token.curvature_reason), token.curvature_kernel,
               "mean angle between consecutive steps of the token trajectory, / pi", "higher = more winding trajectory",
               min_size=3, reason=token.curvature_reason),
    MetricSpec("sparsity", TOKEN, _token_fn(token.sparsity_kernel, token.sparsity_reason), token.sparsity_kernel,
               "fraction of activations below 1% of the sample's largest |activation|", "higher = sparser activations",
               preset_dependent=False, reason=token.sparsity_reason),
    MetricSpec("dataset_entropy", POOLED, _pooled_fn(pooled.dataset_entropy_of), pooled.dataset_entropy_of,
               "normalised matrix entropy of the pooled samples' Gram matrix",
               "higher = samples spread over more directions", min_size=2),
    MetricSpec("effective_rank", POOLED, _pooled_fn(pooled.effective_rank_of), pooled.effective_rank_of,
               "exp(entropy of the singular value distribution) / min(N, d)", "higher = more dimensions in use",
               min_size=2),
    MetricSpec("effective_rank_raw", POOLED, _pooled_fn(pooled.effective_rank_raw_of), pooled.effective_rank_raw_of,
               "Roy & Vetterli effective rank of centred P, not normalised", "higher = more dimensions in use",
               presets=("canonical",), min_size=2),
    MetricSpec("rank_deficiency", POOLED, _pooled_fn(pooled.rank_deficiency_of), pooled.rank_deficiency_of,
               "1 - rank / min(N, d)", "higher = more collapsed (fewer independent directions)"),
    MetricSpec("condition_number", POOLED, _pooled_fn(pooled.condition_number_of), pooled.condition_number_of,
               "largest / smallest singular value of P", "higher = more anisotropic / ill-conditioned"),
    MetricSpec("spectral_norm", POOLED, _pooled_fn(pooled.spectral_norm_of), pooled.spectral_norm_of,
               "largest singular value of P", "higher = larger dominant direction", preset_dependent=False),
    MetricSpec("l2_norm", POOLED, _pooled_fn(pooled.l2_norm_of), pooled.l2_norm_of,
               "mean L2 norm of the pooled sample vectors", "higher = larger activations", preset_dependent=False),
    MetricSpec("l2_norm_std", POOLED, _pooled_fn(pooled.l2_norm_std_of), pooled.l2_norm_std_of,
               "standard deviation (ddof 1) of the pooled vectors' L2 norms", "higher = norms vary more across samples",
               preset_dependent=False, min_size=2),
    MetricSpec("cka", PAIR, _pair_fn(pair.cka_of), pair.cka_of, "linear CKA, biased HSIC (Kornblith et al. 2019)",
               "higher = Base and variant geometry more alike (biased upward when N << d)", preset_dependent=False,
               direction=SIMILARITY, min_size=2, gram_form=pair.cka_resampled, ci="bc", unchanged=1.0),
    MetricSpec("cka_debiased", PAIR, _pair_fn(pair.cka_debiased_of), pair.cka_debiased_of,
               "linear CKA, unbiased HSIC (Song et al. 2012)", "higher = more alike; ~0 for unrelated representations",
               preset_dependent=False, direction=SIMILARITY, min_size=4, unchanged=1.0),
    MetricSpec("cosine_similarity", PAIR, _pair_fn(pair.cosine_similarity_of), pair.cosine_similarity_of,
               "mean cosine between a sample's Base and variant vectors", "higher = vectors point the same way",
               preset_dependent=False, direction=SIMILARITY, gram_form=pair.cosine_similarity_resampled,
               ci="percentile", unchanged=1.0),
    MetricSpec("mean_shift", PAIR, _pair_fn(pair.mean_shift_of), pair.mean_shift_of, "||mean(variant) - mean(Base)||",
               "higher = larger drift", preset_dependent=False, direction=DISTANCE,
               gram_form=pair.mean_shift_resampled, ci="percentile", unchanged=0.0),
    MetricSpec("relative_mean_shift", PAIR, _pair_fn(pair.relative_mean_shift_of), pair.relative_mean_shift_of,
               "mean shift / ||mean(Base)||", "higher = larger drift relative to Base scale", preset_dependent=False,
               direction=DISTANCE, unchanged=0.0),
]
METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}


def get_metric(name: str) -> MetricSpec:
    """The spec of metric `name`.

    Raises:
        UnknownNameError: no metric of that name (the message lists the known ones).
    """
    if name not in METRICS:
        raise UnknownNameError("metric", name, list(METRICS))
    return METRICS[name]


def metrics_of_kind(kind: str) -> list[MetricSpec]:
    """The specs of one kind (token, pooled or pair), in registry order."""
    return [spec for spec in _SPECS if spec.kind == kind]


def ci_metrics() -> list[MetricSpec]:
    """The pair metrics whose alignment rows carry bootstrap intervals."""
    return [spec for spec in metrics_of_kind(PAIR) if spec.ci]


def token_keys(presets) -> list[tuple[str, str]]:
    """(metric, preset) keys of the token metrics, in the order the accumulator stores them: the preset-free
    metrics (preset '') first, then each preset's metrics."""
    specs = metrics_of_kind(TOKEN)
    keys = [(s.name, "") for s in specs if not s.preset_dependent]
    return keys + [(s.name, p) for p in presets for s in specs if s.preset_dependent and p in s.presets]


def token_values(batch: token.TokenBatch, presets) -> dict[tuple[str, str], torch.Tensor]:
    """Every token metric of a batch: (metric, preset) -> values [B] (NaN where undefined), in `token_keys` order."""
    return {(name, key): METRICS[name].compute(batch, key or "paper") for name, key in token_keys(presets)}


def pooled_values(ctx: pooled.PooledContext, presets) -> dict[tuple[str, str], float | MetricUndefined]:
    """Every pooled metric of a context per (metric, preset), preset-major; undefined ones map to their reason."""
    out: dict[tuple[str, str], float | MetricUndefined] = {}
    for preset in presets:
        for spec in metrics_of_kind(POOLED):
            if preset not in spec.presets:
                continue
            if min(ctx.shape) == 0:
                out[(spec.name, preset)] = MetricUndefined("no samples")
                continue
            try:
                out[(spec.name, preset)] = spec.compute(ctx, preset)
            except MetricUndefined as undefined:
                out[(spec.name, preset)] = undefined
    return out


def pair_values(ctx: pair.PairContext) -> dict[str, float | MetricUndefined]:
    """Every pair metric of a context; undefined ones map to their MetricUndefined."""
    out: dict[str, float | MetricUndefined] = {}
    for spec in metrics_of_kind(PAIR):
        try:
            out[spec.name] = spec.compute(ctx)
        except MetricUndefined as undefined:
            out[spec.name] = undefined
    return out


def list_metrics() -> list[dict[str, str]]:
    """One row per metric for `sftscope ls metrics`: name, kind, presets, modes, change direction, CI method,
    description, reading."""
    return [{"name": s.name, "kind": s.kind, "presets": ",".join(s.presets), "modes": ",".join(s.modes),
             "change": s.direction, "ci": s.ci or "-", "description": s.description, "reading": s.reading}
            for s in _SPECS]
