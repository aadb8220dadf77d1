"""LoRA through PEFT with the planned ranks, verified after attaching; the check fails loudly on any drift.

Alpha policies (scaling = the factor multiplying B @ A):
    constant-scale  alpha_m = (alpha / reference_rank) * r_m, so alpha_m / r_m is the reference's alpha / r for
                    every module and every mask: the rank changes, the LoRA scale does not (default).
    rslora          use_rslora: alpha fixed, scaling alpha / sqrt(r_m) (rank-stabilised LoRA).
    fixed           alpha fixed, scaling alpha / r_m: the paper's setting, where the scale varies with the rank.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn

from sftscope.errors import SftscopeError
from sftscope.tuning.budget import RankPlan
from sftscope.tuning.config import ALPHA_POLICIES
from sftscope.tuning.modules import count_trainable

ADAPTER = "default"


def module_alpha(plan: RankPlan, name: str, alpha: float, policy: str) -> float:
    """The lora_alpha PEFT should use for module `name` under `policy`."""
    if policy == "constant-scale":
        return alpha / plan.reference_rank * plan.ranks[name]
    return float(alpha)


def expected_scaling(plan: RankPlan, alpha: float, policy: str) -> dict[str, float]:
    """{module name -> scaling PEFT must end up with}: alpha_m / r_m, or alpha / sqrt(r_m) under rslora."""
    _check_policy(policy)
    root = math.sqrt if policy == "rslora" else (lambda r: r)
    return {n: module_alpha(plan, n, alpha, policy) / root(r) for n, r in plan.ranks.items()}


def _check_policy(policy: str) -> None:
    if policy not in ALPHA_POLICIES:
        raise SftscopeError(f"unknown alpha policy {policy!r}; use one of {', '.join(ALPHA_POLICIES)}")


def build_lora_config(plan: RankPlan, alpha: float = 16.0, policy: str = "constant-scale", dropout: float = 0.0):
    """peft.LoraConfig targeting exactly the planned modules, every rank and alpha keyed by full module name."""
    from peft import LoraConfig

    _check_policy(policy)
    names = sorted(plan.ranks)
    default_rank = Counter(plan.ranks.values()).most_common(1)[0][0]
    # PEFT treats pattern keys as regexes matched against the END of a module's name after a dot; a full dotted
    # name matches only itself ('model.layers.1.' cannot end 'model.layers.11.'). Keys for every module make the
    # plan explicit instead of relying on the default r.
    return LoraConfig(
        r=default_rank,
        lora_alpha=alpha / plan.reference_rank * default_rank if policy == "constant-scale" else alpha,
        target_modules=names,
        rank_pattern={n: plan.ranks[n] for n in names},
        alpha_pattern={n: module_alpha(plan, n, alpha, policy) for n in names},
        use_rslora=policy == "rslora",
        lora_dropout=dropout,
        bias="none",
        task_type="CAUSAL_LM",
    )


@dataclass(frozen=True)
class AdapterCheck:
    """What PEFT really built: {module name -> rank} and the model's trainable-parameter count."""

    ranks: dict[str, int]
    scaling: dict[str, float]
    trainable_count: int


def _strip_wrapper(name: str) -> str:
    for prefix in ("base_model.model.", "base_model."):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def inspect_lora(model: nn.Module) -> AdapterCheck:
    """Read every LoRA layer of a PEFT model: rank from lora_A's weight [r, in], its scaling, trainable count."""
    ranks, scaling = {}, {}
    for name, module in model.named_modules():
        lora_a = getattr(module, "lora_A", None)
        if isinstance(lora_a, nn.ModuleDict) and ADAPTER in lora_a:
            key = _strip_wrapper(name)
            ranks[key] = int(lora_a[ADAPTER].weight.shape[0])
            scaling[key] = float(module.scaling[ADAPTER])
    return AdapterCheck(ranks=ranks, scaling=scaling, trainable_count=count_trainable(model))


def verify_lora(model: nn.Module, plan: RankPlan, scaling: dict[str, float] | None = None) -> AdapterCheck:
    """Raise SftscopeError unless the attached LoRA has exactly the planned modules, ranks (and scalings)."""
    seen = inspect_lora(model)
    problems = []
    missing = sorted(set(plan.ranks) - set(seen.ranks))
    extra = sorted(set(seen.ranks) - set(plan.ranks))
    wrong = sorted(n for n in set(plan.ranks) & set(seen.ranks) if plan.ranks[n] != seen.ranks[n])
    if missing:
        problems.append(f"{len(missing)} planned modules got no LoRA (e.g. {missing[0]})")
    if extra:
        problems.append(f"{len(extra)} unplanned modules got a LoRA (e.g. {extra[0]})")
    if wrong:
        n = wrong[0]
        problems.append(f"{len(wrong)} modules got the wrong rank (e.g. {n}: planned {plan.ranks[n]}, "
                        f"got {seen.ranks[n]})")
    if scaling is not None:
        off = sorted(n for n in set(scaling) & set(seen.scaling) if not math.isclose(scaling[n], seen.scaling[n]))
        if off:
            problems.append(f"{len(off)} modules got the wrong LoRA scaling (e.g. {off[0]}: expected "
                            f"{scaling[off[0]]:.4g}, got {seen.scaling[off[0]]:.4g})")
    if not problems and seen.trainable_count != plan.realised_count:
        problems.append(f"the model has {seen.trainable_count:,} trainable parameters, the plan "
                        f"{plan.realised_count:,} (something besides the LoRA matrices is trainable)")
    if problems:
        raise SftscopeError("the attached LoRA does not match the plan: " + "; ".join(problems)
                            + ". Check target_modules / rank_pattern keys against the model's module names")
    return seen


def attach_lora(model: nn.Module, plan: RankPlan, alpha: float = 16.0, policy: str = "constant-scale",
                dropout: float = 0.0, seed: int | None = None):
    """Wrap `model` with the planned LoRA (seeded init), verify it, return (peft_model, AdapterCheck)."""
    from peft import get_peft_model

    config = build_lora_config(plan, alpha, policy, dropout)
    if seed is not None:  # LoRA A is drawn from torch's global generator at construction
        torch.manual_seed(seed)
    with warnings.catch_warnings():
        # PEFT reads transformers 5's deprecated `is_gradient_checkpointing` while wrapping: a FutureWarning on
        # every attach with nothing for the caller to act on. Silenced here only, not for the whole process.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, config)
    return peft_model, verify_lora(peft_model, plan, expected_scaling(plan, alpha, policy))
