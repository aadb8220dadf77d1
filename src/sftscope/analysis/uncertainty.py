"""Per-layer uncertainty of the Base-vs-variant alignment: bootstrap CIs and the split-half robustness test.

CIs (over samples; the interval method each metric's registry entry gives: bias-corrected percentile for CKA,
percentile for cosine similarity and mean shift) are attached to the alignment rows of every pair metric
registered with a `ci`, as columns ci_low / ci_high, so the alignment figures draw them as bands.
The robustness test asks, per layer, whether the Base-vs-variant mean shift on the same samples exceeds the
Base-vs-Base and variant-vs-variant mean shift between disjoint random halves (the sampling-noise floor),
over n_splits seeded splits (sftscope.stats.split_robustness; corrected resampled t-test, one-sided).
"""

from __future__ import annotations

import torch

from sftscope.metrics.accumulators import SideAccumulator
from sftscope.metrics.registry import get_metric
from sftscope.results.schema import MODE_ALIGNMENT, Row
from sftscope.stats.alignment_bootstrap import alignment_bootstrap
from sftscope.stats.uncertainty import split_robustness

MIN_SAMPLES = 8  # below this a bootstrap or a split-half test says nothing
ROBUSTNESS_METRIC = "mean_shift"  # the split-half test's metric: its noise floor is the sampling noise


def _aligned(base: SideAccumulator, variant: SideAccumulator, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids_b, pb = base.pooled_matrix(layer)
    ids_v, pv = variant.pooled_matrix(layer)
    common = sorted(set(ids_b) & set(ids_v))
    pos_b, pos_v = {s: i for i, s in enumerate(ids_b)}, {s: i for i, s in enumerate(ids_v)}
    return pb[[pos_b[s] for s in common]].double(), pv[[pos_v[s] for s in common]].double()


def add_uncertainty(rows: list[Row], base: SideAccumulator, variant: SideAccumulator, variant_name: str,
                    dataset: str, n_boot: int, n_splits: int, seed: int) -> list[Row]:
    """Attach ci_low/ci_high to the variant's alignment rows; return the robustness rows (one per layer)."""
    robustness = []
    for layer in range(base.num_layers):
        x, y = _aligned(base, variant, layer)
        if len(x) < MIN_SAMPLES:
            continue
        if n_boot:
            cis = alignment_bootstrap(x, y, n_boot=n_boot, seed=seed)
            for row in rows:
                if row.side == variant_name and row.layer == layer and row.mode == MODE_ALIGNMENT \
                        and row.metric in cis:
                    row.extra.update(ci_low=cis[row.metric][1], ci_high=cis[row.metric][2], ci_level=0.95,
                                     ci_boot=n_boot)
        if n_splits:
            spec = get_metric(ROBUSTNESS_METRIC)
            test = split_robustness(x, y, spec.fn, n_splits=n_splits, seed=seed, kind=spec.direction)
            robustness.append(Row(side=variant_name, dataset=dataset, layer=layer, metric=f"robustness:{spec.name}",
                                  value=test["excess_mean"], n=test["n"], mode="robustness",
                                  extra={"t": test["t"], "p_value": test["p_value"], "cross_mean": test["cross_mean"],
                                         "null_mean": test["null_mean"], "n_splits": n_splits}))
    return robustness
