"""Budget matching: integer LoRA ranks on the selected blocks whose parameter count equals a reference.

Reference (default): LoRA of rank r on the target modules of EVERY block, count = sum_m r * (in_m + out_m).
On the selected modules S with C = sum_{m in S} (in_m + out_m), every module gets r_lo = floor(R / C) and a
subset of them r_lo + 1, chosen so that the bumped modules' cost sum is as close as possible to the
remainder D = R - r_lo * C. Modules of equal cost are interchangeable, so the search is exact over how many
modules of each cost class are bumped (a handful of classes: q/o, k/v under GQA, MLP), and the bumped ones
are spread evenly over depth. The result differs from R by less than one module's cost (typically < 0.1%).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

from torch import nn

from sftscope.errors import SftscopeError
from sftscope.tuning.blocks import BlockSelection, format_layers
from sftscope.tuning.modules import ATTENTION_QKVO, TargetModule, find_target_modules

DEFAULT_TOLERANCE = 0.005
_MAX_ENUMERATION = 2_000_000


@dataclass(frozen=True)
class RankPlan:
    """Per-module LoRA ranks {full module name -> rank} and how their count compares to the reference."""

    ranks: dict[str, int]
    layers: tuple[int, ...]
    target_modules: tuple[str, ...] | str
    reference_rank: int
    reference_count: int
    realised_count: int
    module_shapes: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    @property
    def rel_error(self) -> float:
        """(realised - reference) / reference."""
        return (self.realised_count - self.reference_count) / self.reference_count

    def rank_histogram(self) -> dict[int, int]:
        """{rank: number of modules with that rank}."""
        hist: dict[int, int] = {}
        for r in self.ranks.values():
            hist[r] = hist.get(r, 0) + 1
        return dict(sorted(hist.items()))

    def summary(self) -> dict:
        """JSON-friendly record of the plan (ranks included) for config/result files."""
        d = asdict(self)
        d.pop("module_shapes")
        d["layers_compact"] = format_layers(self.layers)
        d["rel_error"] = self.rel_error
        d["rank_histogram"] = {str(k): v for k, v in self.rank_histogram().items()}
        return d


def lora_reference_count(modules: list[TargetModule], rank: int) -> int:
    """sum over modules of rank * (in + out): trainable parameters of a uniform rank-r LoRA on `modules`."""
    return sum(m.lora_params(rank) for m in modules)


def _spread(count: int, total: int) -> list[int]:
    """`count` distinct indices of range(total), evenly spaced (midpoints of count equal bins)."""
    return [(2 * i + 1) * total // (2 * count) for i in range(count)]


def _best_bump_counts(costs: list[int], sizes: list[int], remainder: int) -> list[int]:
    """Counts n_g in [0, size_g] minimising |remainder - sum n_g * cost_g| (exact; greedy past a size cap)."""
    if not costs:
        return []
    head_space = math.prod(s + 1 for s in sizes[:-1])
    best, best_gap = None, None
    if head_space <= _MAX_ENUMERATION:
        heads = itertools.product(*[range(s + 1) for s in sizes[:-1]])
    else:  # greedy by largest cost, then exact on the last class
        left, greedy = remainder, []
        for c, s in zip(costs[:-1], sizes[:-1]):
            n = min(s, max(0, left // c))
            greedy.append(n)
            left -= n * c
        heads = [tuple(greedy)]
    for head in heads:
        left = remainder - sum(n * c for n, c in zip(head, costs))
        last = min(sizes[-1], max(0, round(left / costs[-1])))
        gap = abs(left - last * costs[-1])
        if best_gap is None or gap < best_gap:
            best, best_gap = list(head) + [last], gap
            if gap == 0:
                break
    return best


def match_budget(model: nn.Module, selection: BlockSelection, target_modules=ATTENTION_QKVO, rank: int = 8,
                 reference_count: int | None = None, tolerance: float = DEFAULT_TOLERANCE) -> RankPlan:
    """Integer ranks on `selection`'s target modules with trainable count within `tolerance` of the reference."""
    if rank < 1:
        raise SftscopeError(f"LoRA rank must be >= 1, got {rank}")
    modules = find_target_modules(model, target_modules)
    n_layers = 1 + max(m.layer for m in modules)
    if selection.num_layers != n_layers:
        raise SftscopeError(f"block selection {selection.spec!r} was made for {selection.num_layers} layers but "
                            f"the model has {n_layers}; parse the spec with the model's layer count")
    reference = lora_reference_count(modules, rank) if reference_count is None else int(reference_count)
    chosen = [m for m in modules if m.layer in selection.layers]
    unit_cost = sum(m.in_features + m.out_features for m in chosen)
    base_rank, remainder = divmod(reference, unit_cost)
    if base_rank < 1:
        raise SftscopeError(f"reference budget {reference:,} is below rank 1 on every selected module "
                            f"({unit_cost:,} parameters); select fewer blocks or raise the reference rank")
    by_cost: dict[int, list[TargetModule]] = {}
    for m in chosen:
        by_cost.setdefault(m.in_features + m.out_features, []).append(m)
    costs = sorted(by_cost, reverse=True)
    counts = _best_bump_counts(costs, [len(by_cost[c]) for c in costs], remainder)
    ranks = {m.name: base_rank for m in chosen}
    for cost, n in zip(costs, counts):
        group = by_cost[cost]
        for i in _spread(n, len(group)) if n else []:
            ranks[group[i].name] += 1
    realised = sum(m.lora_params(ranks[m.name]) for m in chosen)
    plan = RankPlan(ranks=ranks, layers=selection.layers,
                    target_modules=target_modules if isinstance(target_modules, str) else tuple(target_modules),
                    reference_rank=rank, reference_count=reference, realised_count=realised,
                    module_shapes={m.name: (m.in_features, m.out_features) for m in chosen})
    if abs(plan.rel_error) > tolerance:
        raise SftscopeError(f"could not match the budget within {tolerance:.2%} on {selection.describe()}: "
                            f"{realised:,} vs reference {reference:,} ({plan.rel_error:+.3%}); select more "
                            "blocks or raise the tolerance")
    return plan
