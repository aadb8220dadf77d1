"""One table per model_type: where the embedding, blocks, final norm and head live, and what is inside a block.

Each `ArchSpec` states, for the loaded transformers model, the dotted paths of the top-level parts and, per
decoder block, every projection (its module or parameter path below the block, the role of each matrix it
holds, how fused matrices are laid out, and the names checkpoint files use when they differ), every norm, and
the default LoRA targets. The weight-change stage (`sftscope.weights.naming`) maps checkpoint tensor names to
roles through it, and tuning (`sftscope.tuning.modules`) resolves LoRA targets through it, so both agree on
what "q_proj" or "the MLP" is in every architecture.

Roles are the names shared by every architecture: q_proj, k_proj, v_proj, o_proj (attention), gate_proj,
up_proj, down_proj (MLP; an architecture without a gate has no gate_proj), router (a mixture-of-experts
gate, in neither group).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sftscope.errors import UnknownNameError

ATTENTION_ROLES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_ROLES = ("gate_proj", "up_proj", "down_proj")
ROUTER = "router"
ROLES = ATTENTION_ROLES + MLP_ROLES + (ROUTER,)
ROLE_GROUPS = {"attention": ATTENTION_ROLES, "mlp": MLP_ROLES}
LAYOUTS = ("linear", "conv1d", "experts")
FUSES = ("blocks", "gqa", "per_head")
_EXPERT = "{expert}"


@dataclass(frozen=True)
class Projection:
    """One weight matrix of a decoder block, or one fused tensor holding several, and how it splits into roles.

    path: dotted path below the block in the loaded transformers model: a module ("self_attn.q_proj",
        weight and bias below it) or, for layout "experts", the parameter itself ("mlp.experts.down_proj").
    roles: the role of each matrix the tensor holds, in the order they are laid out along the output axis.
    layout: storage of the weight:
        "linear"  [out, in] (nn.Linear, or a module holding such a weight); outputs along axis 0
        "conv1d"  [in, out] (GPT-2's Conv1D); outputs along axis 1
        "experts" [E, out, in], E experts stacked in one parameter (each expert's [out, in] is one matrix)
        Biases are [out] ([E, out] for experts): outputs along the last axis.
    fuse: how the output axis splits into `roles` when there are several:
        "blocks"   contiguous equal blocks [r1 | r2 | ...] (GPT-2 c_attn, Phi-3 gate_up_proj, Mixtral experts)
        "gqa"      [q | k | v] of num_attention_heads*head_dim, num_key_value_heads*head_dim,
                   num_key_value_heads*head_dim rows (Phi-3 qkv_proj, from its attention forward pass)
        "per_head" rows grouped per head as [num_attention_heads, len(roles), head_dim] (GPT-NeoX
                   query_key_value: qkv.view(..., heads, 3 * head_dim).chunk(3, -1) in its forward pass)
    lora: whether PEFT's LoRA can adapt it through `target_modules` (an nn.Linear or Conv1D module).
    checkpoint: ((name below the block, role), ...) where checkpoint files store the matrices under other names
        than the loaded model; "{expert}" stands for an expert index (Mixtral files hold
        block_sparse_moe.experts.{expert}.w1/w3/w2 as separate [out, in] matrices that transformers 5 fuses
        into experts.gate_up_proj and experts.down_proj on load, and splits again on save).
    Raises: ValueError on construction for an unknown role, layout or fuse.
    """

    path: str
    roles: tuple[str, ...]
    layout: str = "linear"
    fuse: str = "blocks"
    lora: bool = True
    checkpoint: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        unknown = [r for r in self.roles if r not in ROLES] + [r for _, r in self.checkpoint if r not in self.roles]
        if not self.roles or unknown or self.layout not in LAYOUTS or self.fuse not in FUSES:
            raise ValueError(f"bad Projection {self.path!r}: roles must be a non-empty subset of {ROLES} "
                             f"(checkpoint roles among them), layout one of {LAYOUTS}, fuse one of {FUSES}")

    @property
    def fused(self) -> bool:
        return len(self.roles) > 1

    @property
    def label(self) -> str:
        """Name of the whole tensor: its role, or for fused roles 'qkv' / 'gate_up' (else roles joined by '+')."""
        return _FUSED_LABELS.get(self.roles, "+".join(self.roles))

    def out_axis(self, param: str, ndim: int) -> int:
        """Axis of a stored `param` ('weight'/'bias') of `ndim` dimensions along which the outputs run."""
        if param != "weight" or ndim < 2:
            return ndim - 1
        return {"linear": 0, "conv1d": 1, "experts": 1}[self.layout]

    def role_sizes(self, out: int, config: Mapping[str, Any] | None) -> tuple[int, ...] | None:
        """Length of each role's run along the output axis (`out` long; runs repeat for "per_head").

        None when the split cannot be known: "gqa" and "per_head" need num_attention_heads (and
        num_key_value_heads, head_dim or hidden_size) from `config` (config.json as a dict), and every size
        must fit `out` exactly.
        """
        n = len(self.roles)
        if n == 1:
            return (out,)
        if self.fuse == "blocks":
            return (out // n,) * n if out % n == 0 else None
        config = config or {}
        heads = config.get("num_attention_heads")
        if not isinstance(heads, int) or heads < 1:
            return None
        if self.fuse == "per_head":
            return (out // (n * heads),) * n if out % (n * heads) == 0 else None
        head_dim = config.get("head_dim") or (config.get("hidden_size") or 0) // heads
        kv_heads = config.get("num_key_value_heads") or heads
        q, kv = heads * head_dim, kv_heads * head_dim
        return (q, kv, kv) if n == 3 and q > 0 and q + 2 * kv == out else None

    @functools.cached_property
    def _checkpoint_patterns(self) -> tuple[tuple[re.Pattern, str], ...]:
        return tuple((re.compile(re.escape(name).replace(re.escape(_EXPERT), r"(\d+)") + "$"), role)
                     for name, role in self.checkpoint)

    def match(self, path: str) -> tuple[tuple[str, ...], int | None] | None:
        """(roles held, expert index or None) if `path` (below the block, no .weight/.bias) names this tensor
        in the loaded model or in checkpoint files; else None."""
        if path == self.path:
            return self.roles, None
        for pattern, role in self._checkpoint_patterns:
            found = pattern.match(path)
            if found:
                return (role,), int(found.group(1)) if found.groups() else None
        return None


_FUSED_LABELS = {("q_proj", "k_proj", "v_proj"): "qkv", ("gate_proj", "up_proj"): "gate_up"}


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: dotted attribute paths from the *ForCausalLM module ('a|b': alternatives across
    transformers versions), `logit_softcap` (a config field, if the architecture soft-caps its logits), and
    inside every block: `projections` (see Projection), `norms` (module paths of the norms below the block;
    weight-change rows name them by their last component) and `lora_targets`, the default LoRA targets (role
    names or groups, resolved through the projections)."""

    embed: str
    layers: str
    final_norm: str
    lm_head: str = "lm_head"
    logit_softcap: str | None = None
    projections: tuple[Projection, ...] = ()
    norms: tuple[str, ...] = ()
    lora_targets: tuple[str, ...] = ATTENTION_ROLES

    def find(self, path: str) -> tuple[Projection, tuple[str, ...], int | None] | None:
        """(projection, roles held, expert index) of a tensor path below the block (without .weight/.bias),
        as named in the loaded model or in checkpoint files; None if the table does not list it."""
        for projection in self.projections:
            found = projection.match(path)
            if found is not None:
                return (projection, *found)
        return None


def _attention(prefix: str = "self_attn") -> tuple[Projection, ...]:
    return tuple(Projection(f"{prefix}.{role}", (role,)) for role in ATTENTION_ROLES)


def _gated_mlp(prefix: str = "mlp") -> tuple[Projection, ...]:
    return tuple(Projection(f"{prefix}.{role}", (role,)) for role in MLP_ROLES)


_PRE_NORMS = ("input_layernorm", "post_attention_layernorm")
_QK_NORMS = ("self_attn.q_norm", "self_attn.k_norm")
_SANDWICH_NORMS = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                   "post_feedforward_layernorm")
_OLMO2_NORMS = _QK_NORMS + ("post_attention_layernorm", "post_feedforward_layernorm")
_LLAMA_LIKE = ArchSpec(embed="model.embed_tokens", layers="model.layers", final_norm="model.norm",
                       projections=_attention() + _gated_mlp(), norms=_PRE_NORMS)
_MIXTRAL_MOE = (
    Projection("mlp.gate", (ROUTER,), lora=False, checkpoint=(("block_sparse_moe.gate", ROUTER),)),
    Projection("mlp.experts.gate_up_proj", ("gate_proj", "up_proj"), layout="experts", lora=False,
               checkpoint=(("block_sparse_moe.experts.{expert}.w1", "gate_proj"),
                           ("block_sparse_moe.experts.{expert}.w3", "up_proj"))),
    Projection("mlp.experts.down_proj", ("down_proj",), layout="experts", lora=False,
               checkpoint=(("block_sparse_moe.experts.{expert}.w2", "down_proj"),)),
)

ARCHITECTURES: dict[str, ArchSpec] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "mixtral": ArchSpec(embed="model.embed_tokens", layers="model.layers", final_norm="model.norm",
                        projections=_attention() + _MIXTRAL_MOE, norms=_PRE_NORMS),
    "olmo": _LLAMA_LIKE,  # OLMo-1's norms have no parameters, but the modules are there
    "olmo2": ArchSpec(embed="model.embed_tokens", layers="model.layers", final_norm="model.norm",
                      projections=_attention() + _gated_mlp(), norms=_OLMO2_NORMS),
    "olmo3": ArchSpec(embed="model.embed_tokens", layers="model.layers", final_norm="model.norm",
                      projections=_attention() + _gated_mlp(), norms=_OLMO2_NORMS),
    "qwen2": _LLAMA_LIKE,
    "qwen3": ArchSpec(embed="model.embed_tokens", layers="model.layers", final_norm="model.norm",
                      projections=_attention() + _gated_mlp(), norms=_PRE_NORMS + _QK_NORMS),
    "gemma": _LLAMA_LIKE,
    "gemma2": ArchSpec(embed="model.embed_tokens", layers="model.layers", final_norm="model.norm",
                       logit_softcap="final_logit_softcapping", projections=_attention() + _gated_mlp(),
                       norms=_SANDWICH_NORMS),
    "gemma3_text": ArchSpec(embed="model.embed_tokens", layers="model.layers", final_norm="model.norm",
                            logit_softcap="final_logit_softcapping", projections=_attention() + _gated_mlp(),
                            norms=_SANDWICH_NORMS + _QK_NORMS),
    "phi3": ArchSpec(embed="model.embed_tokens", layers="model.layers", final_norm="model.norm",
                     projections=(Projection("self_attn.qkv_proj", ("q_proj", "k_proj", "v_proj"), fuse="gqa"),
                                  Projection("self_attn.o_proj", ("o_proj",)),
                                  Projection("mlp.gate_up_proj", ("gate_proj", "up_proj")),
                                  Projection("mlp.down_proj", ("down_proj",))),
                     norms=_PRE_NORMS),
    "gpt2": ArchSpec(embed="transformer.wte", layers="transformer.h", final_norm="transformer.ln_f",
                     projections=(Projection("attn.c_attn", ("q_proj", "k_proj", "v_proj"), layout="conv1d"),
                                  Projection("attn.c_proj", ("o_proj",), layout="conv1d"),
                                  Projection("mlp.c_fc", ("up_proj",), layout="conv1d"),
                                  Projection("mlp.c_proj", ("down_proj",), layout="conv1d")),
                     norms=("ln_1", "ln_2")),
    "gpt_neox": ArchSpec(embed="gpt_neox.embed_in", layers="gpt_neox.layers", final_norm="gpt_neox.final_layer_norm",
                         lm_head="lm_head|embed_out",
                         projections=(Projection("attention.query_key_value", ("q_proj", "k_proj", "v_proj"),
                                                 fuse="per_head"),
                                      Projection("attention.dense", ("o_proj",)),
                                      Projection("mlp.dense_h_to_4h", ("up_proj",)),
                                      Projection("mlp.dense_4h_to_h", ("down_proj",))),
                         norms=_PRE_NORMS),
}

# Names outside the table that checkpoints of other families use (OPT, Phi-1/2 MLPs), for the generic fallback.
_GENERIC_EXTRA = (Projection("fc1", ("up_proj",)), Projection("fc2", ("down_proj",)))

_HOW_TO_ADD = ("add an entry to sftscope.models.architectures.ARCHITECTURES (or call register_architecture) "
               "giving the dotted paths of the embedding, the decoder block list, the final norm and the LM head, "
               "and the block's projections with their roles")


def register_architecture(model_type: str, spec: ArchSpec) -> None:
    """Teach sftscope a new model_type (e.g. from a notebook) without editing the package."""
    ARCHITECTURES[model_type] = spec


def arch_for(model_type: str) -> ArchSpec:
    """The table entry of `model_type`. Raises: UnknownNameError if the table has none."""
    if model_type not in ARCHITECTURES:
        raise UnknownNameError("architecture (model_type)", model_type, list(ARCHITECTURES), _HOW_TO_ADD)
    return ARCHITECTURES[model_type]


def spec_for_config(config: Mapping[str, Any] | Any | None) -> ArchSpec | None:
    """The table entry for a config (a config.json dict or a PretrainedConfig), or None if neither its
    model_type nor its text_config's (multimodal wrappers) is in the table."""
    for candidate in (config, _field(config, "text_config")):
        model_type = _field(candidate, "model_type")
        if isinstance(model_type, str) and model_type in ARCHITECTURES:
            return ARCHITECTURES[model_type]
    return None


def _field(config: Any, key: str) -> Any:
    if config is None:
        return None
    return config.get(key) if isinstance(config, Mapping) else getattr(config, key, None)


def _meaning(p: Projection) -> tuple:
    return (p.roles, p.layout, p.fuse, p.lora)


def generic_find(path: str) -> tuple[Projection, tuple[str, ...], int | None] | None:
    """Fallback for tensors of a model_type outside the table: match `path` (below a block, no .weight/.bias)
    against every entry of the table, by the whole path, then its last two components, then its last
    component, and accept a match only if every entry matching at that level means the same (same roles and
    layout); e.g. 'attn.c_proj' -> o_proj, but a bare 'c_proj' (GPT-2 attention or MLP) matches nothing."""
    candidates = [p for spec in ARCHITECTURES.values() for p in spec.projections] + list(_GENERIC_EXTRA)
    parts = path.split(".")
    for depth in (len(parts), 2, 1):
        if depth > len(parts):
            continue
        tail = ".".join(parts[-depth:])
        hits: dict[tuple, tuple[Projection, tuple[str, ...], int | None]] = {}
        for projection in candidates:
            found = projection.match(path) if depth == len(parts) else None
            if found is None and _tail_of(projection.path, depth) == tail:
                found = (projection.roles, None)
            if found is not None:
                hits.setdefault((_meaning(projection), found), (projection, *found))
        if len(hits) == 1:
            return next(iter(hits.values()))
        if hits:
            return None
    return None


def _tail_of(path: str, depth: int) -> str:
    return ".".join(path.split(".")[-depth:])


def resolve_path(model: nn.Module, path: str) -> tuple[str, nn.Module]:
    """(the alternative that exists, its module) for a dotted path with '|' alternatives.

    Raises: UnknownNameError if no alternative names a submodule of `model`."""
    for candidate in path.split("|"):
        try:
            return candidate, model.get_submodule(candidate)
        except AttributeError:
            continue
    top = [name for name, _ in model.named_children()]
    raise UnknownNameError("module path", path, top, f"the model has no such submodule; {_HOW_TO_ADD}")


def get_submodule(model: nn.Module, path: str) -> nn.Module:
    """The submodule at a dotted path with '|' alternatives. Raises: UnknownNameError if none exists."""
    return resolve_path(model, path)[1]


class ModelParts:
    """Resolved handles into one loaded model: embedding, blocks, final norm, head."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.model_type = model.config.model_type
        self.spec = arch_for(self.model_type)
        self.embed = get_submodule(model, self.spec.embed)
        self.blocks: nn.ModuleList = get_submodule(model, self.spec.layers)  # type: ignore[assignment]
        self.final_norm = get_submodule(model, self.spec.final_norm)
        self.lm_head = get_submodule(model, self.spec.lm_head)
        self.softcap = getattr(model.config, self.spec.logit_softcap, None) if self.spec.logit_softcap else None

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    @property
    def block_prefix(self) -> str:
        return self.spec.layers

    @property
    def head_device(self) -> torch.device:
        """Where the LM head computes (its hook's execution device when accelerate placed or offloaded it)."""
        from sftscope.models.placement import module_device
        return module_device(self.lm_head)

    def logits_from_residual(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm + head (+ soft-capping where the architecture has it): [.., d] -> [.., V]."""
        from sftscope.models.placement import module_device

        # OLMo-1's final norm has no parameters: then the head's device is where the norm runs; an offloaded
        # norm or head computes on its hook's execution device
        norm_device = module_device(self.final_norm) if next(self.final_norm.parameters(), None) is not None \
            else self.head_device
        normed = self.final_norm(hidden.to(norm_device))
        logits = self.lm_head(normed.to(self.head_device))
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits
