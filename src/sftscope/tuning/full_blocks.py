"""Control: full-parameter updates on whole decoder blocks, as many as best match the LoRA reference budget.

Whole blocks are coarse (one 7B block is ~200M parameters against a ~8M rank-8 LoRA reference), so the count
is matched "as closely as whole layers allow": n = the block count whose parameter total is nearest the
reference (at least 1), placed early / middle / late / at random; the mismatch is recorded, never hidden.
scope="targets" unfreezes only the target modules (e.g. q,k,v,o) of those blocks: a finer-grained control.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from sftscope.errors import SftscopeError
from sftscope.tuning.blocks import POSITIONS, BlockSelection, format_layers, parse_block_spec
from sftscope.tuning.config import SCOPES
from sftscope.tuning.modules import ATTENTION_QKVO, count_trainable, decoder_layers, find_target_modules


@dataclass(frozen=True)
class FullBlockPlan:
    """Blocks to unfreeze, the parameter names that become trainable, and the count vs the reference."""

    layers: tuple[int, ...]
    scope: str
    param_names: tuple[str, ...]
    reference_count: int
    realised_count: int
    placement: str

    @property
    def rel_error(self) -> float:
        """(realised - reference) / reference."""
        return (self.realised_count - self.reference_count) / self.reference_count

    def summary(self) -> dict:
        """JSON-friendly record (without the parameter names)."""
        return {"layers": list(self.layers), "layers_compact": format_layers(self.layers), "scope": self.scope,
                "placement": self.placement, "reference_count": self.reference_count,
                "realised_count": self.realised_count, "rel_error": self.rel_error,
                "n_param_tensors": len(self.param_names)}


def _block_params(model: nn.Module, scope: str, target_modules) -> dict[int, dict[str, int]]:
    """{block index -> {parameter name -> numel}} of what `scope` would unfreeze in each block."""
    prefix, layers = decoder_layers(model)
    if scope == "block":
        return {i: {f"{prefix}.{i}.{n}": p.numel() for n, p in block.named_parameters()}
                for i, block in enumerate(layers)}
    per_block: dict[int, dict[str, int]] = {i: {} for i in range(len(layers))}
    modules = dict(model.named_modules())
    for m in find_target_modules(model, target_modules):
        for n, p in modules[m.name].named_parameters():
            per_block[m.layer][f"{m.name}.{n}"] = p.numel()
    return per_block


def _placement_spec(position: str, n: int, num_layers: int) -> str:
    start = {"early": 0, "late": num_layers - n, "middle": (num_layers - n) // 2}.get(position)
    if start is not None:
        return f"layers:{start}-{start + n - 1}"
    return f"{position}:{n}"


def plan_full_blocks(model: nn.Module, where: str | BlockSelection, reference_count: int, scope: str = "block",
                     target_modules=ATTENTION_QKVO, seed: int = 0) -> FullBlockPlan:
    """Blocks to fully train: `where` is a position (early/middle/late/random/random-layers) sized to the
    budget, or an explicit BlockSelection / block spec taken as given (its count mismatch is recorded)."""
    if scope not in SCOPES:
        raise SftscopeError(f"unknown full-update scope {scope!r}; use one of {', '.join(SCOPES)}")
    per_block = _block_params(model, scope, target_modules)
    num_layers = len(per_block)
    if isinstance(where, str) and where in POSITIONS:
        sizes = [sum(per_block[i].values()) for i in range(num_layers)]
        mean_block = sum(sizes) / num_layers
        n = min(num_layers, max(1, round(reference_count / mean_block)))
        selection = parse_block_spec(_placement_spec(where, n, num_layers), num_layers, seed)
        placement = where
    else:
        selection = where if isinstance(where, BlockSelection) else parse_block_spec(where, num_layers, seed)
        placement = selection.spec
    names = tuple(name for i in selection.layers for name in per_block[i])
    realised = sum(per_block[i][name] for i in selection.layers for name in per_block[i])
    return FullBlockPlan(layers=selection.layers, scope=scope, param_names=names,
                         reference_count=int(reference_count), realised_count=realised, placement=placement)


def unfreeze_blocks(model: nn.Module, plan: FullBlockPlan) -> int:
    """Freeze everything, then unfreeze exactly plan.param_names; returns the verified trainable count."""
    params = dict(model.named_parameters())
    unknown = [n for n in plan.param_names if n not in params]
    if unknown:
        raise SftscopeError(f"planned parameter {unknown[0]} is not in the model; plan on the same model")
    for p in model.parameters():
        p.requires_grad_(False)
    for n in plan.param_names:
        params[n].requires_grad_(True)
    trainable = count_trainable(model)
    if trainable != plan.realised_count:  # tied weights inside a block would double count
        raise SftscopeError(f"unfroze {trainable:,} parameters but planned {plan.realised_count:,}")
    return trainable
