"""Find a causal LM's decoder blocks and the linear modules inside them that adapters may target.

Targets resolve through the architecture table (sftscope.models.architectures), in this order:
  * `all-linear`: every linear module (nn.Linear, GPT-2 Conv1D) inside the blocks;
  * `default`: the table entry's default LoRA targets (`ArchSpec.lora_targets`; q,k,v,o for every built-in
    type and for types outside the table);
  * a group, `attention` (q_proj, k_proj, v_proj, o_proj) or `mlp` (gate_proj, up_proj, down_proj; the
    roles the architecture has): the modules holding those roles;
  * a role name (q_proj ... down_proj): the module holding that role; roles fused into one module map to
    it once (q_proj,k_proj,v_proj on GPT-2 -> attn.c_attn). A LoRA adapts a whole module, so asking for only
    some of the roles of a fused module (q_proj alone on GPT-2 or Phi-3) is an error: ask for all of them, or
    name the fused module to adapt it whole;
  * a module path below the block (`attn.c_proj`, `self_attn.q_proj`) or a unique last part of one
    (`c_attn`); a name that fits several modules (`c_proj` on GPT-2: attention output and MLP down
    projection) is an error naming the qualified alternatives, never a silent extra module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from sftscope.errors import SftscopeError
from sftscope.models.architectures import (ATTENTION_ROLES, ROLE_GROUPS, ROLES, ArchSpec, Projection, generic_find,
                                           resolve_path, spec_for_config)

ATTENTION_QKVO = ATTENTION_ROLES
ALL_LINEAR = "all-linear"
DEFAULT_TARGETS = "default"
_LAYER_LIST_NAMES = ("layers", "h", "blocks", "block", "decoder_layers")


@dataclass(frozen=True)
class TargetModule:
    """One linear map in block `layer`: full dotted `name`, its last part `kind` (q_proj, c_attn), its shape,
    its `path` below the block and the `roles` of the matrices it holds (from the architecture table; empty
    for a module the table does not list)."""

    name: str
    layer: int
    kind: str
    in_features: int
    out_features: int
    path: str = ""
    roles: tuple[str, ...] = ()

    def lora_params(self, rank: int) -> int:
        """Parameters of a rank-r LoRA on this module: A is [r, in], B is [out, r]."""
        return rank * (self.in_features + self.out_features)


def num_layers_of(model: nn.Module) -> int:
    """Decoder block count from the model config (num_hidden_layers or GPT-2's n_layer)."""
    cfg = getattr(model, "config", None)
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        if cfg is not None and isinstance(getattr(cfg, attr, None), int):
            return getattr(cfg, attr)
    return len(decoder_layers(model)[1])


def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """(dotted name, ModuleList) of the decoder blocks: the table's block path for a known model_type, else
    the shortest-named block list of the model.

    Raises: SftscopeError if no ModuleList named layers / h / blocks / block / decoder_layers exists."""
    spec = spec_for_config(getattr(model, "config", None))
    if spec is not None:
        try:
            name, layers = resolve_path(model, spec.layers)
            if isinstance(layers, nn.ModuleList) and len(layers) > 0:
                return name, layers
        except SftscopeError:  # e.g. a bare LlamaModel: the search below finds its blocks
            pass
    candidates = [(name, mod) for name, mod in model.named_modules()
                  if isinstance(mod, nn.ModuleList) and len(mod) > 0
                  and name.rsplit(".", 1)[-1] in _LAYER_LIST_NAMES]
    if not candidates:
        raise SftscopeError(f"cannot find the decoder blocks of {type(model).__name__}: no ModuleList named "
                            f"{' / '.join(_LAYER_LIST_NAMES)}")
    return min(candidates, key=lambda c: (c[0].count("."), len(c[0])))


def linear_shape(module: nn.Module) -> tuple[int, int] | None:
    """(in_features, out_features) of an nn.Linear or GPT-2 Conv1D (weight stored [in, out]); else None."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf"):
        return module.weight.shape[0], module.nf
    return None


def block_projections(spec: ArchSpec | None, paths: Iterable[str]) -> dict[str, Projection]:
    """{path -> Projection} for the module `paths` of one block: the table entry's projections, or for a
    model_type outside the table, whatever `generic_find` recognises unambiguously among `paths`."""
    if spec is not None:
        return {p.path: p for p in spec.projections}
    found = {path: generic_find(path) for path in paths}
    # re-keyed to this model's own path: a generic match may come from another entry's name ('q_proj' alone)
    return {path: replace(hit[0], path=path, roles=hit[1], checkpoint=()) for path, hit in found.items()
            if hit is not None and hit[2] is None}


def resolve_targets(targets: str | Sequence[str], linear: Sequence[str], projections: Mapping[str, Projection],
                    arch: str, other_modules: Sequence[str] = (),
                    default: Sequence[str] = ATTENTION_ROLES) -> list[str]:
    """Paths (below a block, in `linear`'s order) of the linear modules that `targets` name.

    `linear`: the paths of the block's linear modules; `projections`: the table's projections of the block by
    path; `arch`: the model_type, for messages; `other_modules`: the block's other module paths, to say when a
    name is a module but not a linear one; `default`: what `default` stands for (the entry's lora_targets).
    See the module docstring for the rules.
    Raises: SftscopeError for an empty list, an unknown name, an ambiguous name, a role the architecture lacks
    or keeps outside linear modules (Mixtral's stacked experts), and part of a fused module's roles.
    """
    wanted = [targets] if isinstance(targets, str) else list(targets)
    wanted = [t for w in wanted for t in (default if w.strip() == DEFAULT_TARGETS else (w,))]
    if not wanted:
        raise SftscopeError("target_modules is empty; name modules like q_proj,v_proj or use all-linear")
    by_role: dict[str, set[str]] = {}   # path -> roles asked for
    by_name: set[str] = set()
    for target in (t.strip() for t in wanted):
        if target == ALL_LINEAR:
            by_name.update(linear)
            continue
        roles = ROLE_GROUPS.get(target) or ((target,) if target in ROLES else None)
        if roles is None:
            by_name.add(_module_named(target, linear, projections, arch, other_modules))
            continue
        holders = {role: [p for p in projections.values() if role in p.roles] for role in roles}
        if not any(holders.values()) or (target not in ROLE_GROUPS and not holders[target]):
            raise SftscopeError(f"{arch} blocks have no {target}; {_vocabulary(linear, projections)}")
        for role, found in holders.items():  # a group takes the roles the architecture has (GPT-2: no gate)
            for projection in found:
                if projection.path not in linear and not projection.lora:
                    raise SftscopeError(
                        f"{role} of {arch} is held by {projection.path} ({projection.layout}), which is not a linear "
                        f"module LoRA can adapt through target_modules; choose other targets "
                        f"({_vocabulary(linear, projections)})")
                if projection.path not in linear:
                    raise SftscopeError(
                        f"the architecture table puts {role} of {arch} in {projection.path}, but the blocks have no "
                        f"linear module there (another transformers version?); {_vocabulary(linear, projections)}")
                by_role.setdefault(projection.path, set()).add(role)
    for path, asked in by_role.items():
        rest = [r for r in projections[path].roles if r not in asked]
        if rest and path not in by_name:
            raise SftscopeError(
                f"{', '.join(sorted(asked))} of {arch} live in the fused module {path} together with "
                f"{', '.join(rest)}; a LoRA on {path} adapts all of them. Ask for all of "
                f"{', '.join(projections[path].roles)} (or a group), or name {path} to adapt it whole")
    chosen = set(by_role) | by_name
    return [path for path in linear if path in chosen]


def _module_named(name: str, linear: Sequence[str], projections: Mapping[str, Projection], arch: str,
                  other_modules: Sequence[str]) -> str:
    """The one linear module whose path is `name` or ends with '.' + `name`."""
    if name in linear:
        return name
    hits = [path for path in linear if path.endswith("." + name)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        roles = [f"{path} ({'+'.join(projections[path].roles)})" if path in projections else path for path in hits]
        raise SftscopeError(f"target {name!r} is ambiguous in {arch} blocks: it names {', '.join(roles)}; "
                            f"give the qualified path (or the role) of the one you mean")
    others = [path for path in other_modules if path == name or path.endswith("." + name)]
    what = f"{name} is not a linear module ({', '.join(others)})" if others else f"no linear module named {name}"
    raise SftscopeError(f"{arch} blocks have {what}; {_vocabulary(linear, projections)}")


def _vocabulary(linear: Sequence[str], projections: Mapping[str, Projection]) -> str:
    roles = [r for r in ROLES if any(r in p.roles for p in projections.values())]
    return (f"linear modules there: {', '.join(linear)}; roles: {', '.join(roles) or 'none known'}; groups: "
            f"{', '.join(ROLE_GROUPS)}, {ALL_LINEAR}, {DEFAULT_TARGETS}")


def find_target_modules(model: nn.Module, target_modules=ATTENTION_QKVO) -> list[TargetModule]:
    """Every targeted linear module of every block, ordered by (layer, position in the block).

    `target_modules`: role names, groups, module paths or all-linear (module docstring), resolved through
    the architecture table entry of model.config.model_type (generic matching for other types).
    Raises: SftscopeError if a target cannot be resolved in some block (see resolve_targets).
    """
    prefix, layers = decoder_layers(model)
    config = getattr(model, "config", None)
    spec = spec_for_config(config)
    arch = getattr(config, "model_type", None) or type(model).__name__
    found: list[TargetModule] = []
    for index, block in enumerate(layers):
        modules = dict(block.named_modules())
        linear = [path for path, module in modules.items() if path and linear_shape(module) is not None]
        projections = block_projections(spec, linear)
        others = [path for path in modules if path and path not in linear]
        default = spec.lora_targets if spec is not None else ATTENTION_ROLES
        for path in resolve_targets(target_modules, linear, projections, arch, others, default):
            roles = projections[path].roles if path in projections else ()
            found.append(TargetModule(f"{prefix}.{index}.{path}", index, path.rsplit(".", 1)[-1],
                                      *linear_shape(modules[path]), path=path, roles=roles))
    return found


def meta_model_from_config(config) -> nn.Module:
    """A weightless (meta-device) model of `config`: shapes for budget planning of a 32B model in no memory."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def count_trainable(model: nn.Module) -> int:
    """Number of parameters with requires_grad (each shared tensor once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
