"""Tensor names -> (block, role, parameter, split), read from the architecture table (models/architectures.py).

A checkpoint tensor is classified by its *canonical* name: the stored name with wrapper prefixes removed
("model.", "transformer.", "gpt_neox.", "base_model.model." ...), so that a `LlamaForCausalLM` file matches a
`LlamaModel` file and a GPT-2 "transformer.h.3..." name matches "h.3...". The part below the block
("self_attn.qkv_proj", "block_sparse_moe.experts.3.w1") is looked up in the table entry of the config's
model_type; for a model_type outside the table (or no config, e.g. a bare state dict) every entry of the table
is tried and a name is accepted only where all entries agree on its meaning (`generic_find`).

Projections get role names shared by every architecture so the per-block attention and MLP sums are defined
everywhere: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj (and router for a mixture-of-experts
gate). Fused tensors (GPT-2 c_attn, GPT-NeoX query_key_value, Phi-3 qkv_proj and gate_up_proj, Mixtral's stacked
experts) are split into one part per matrix (`Split`). Norms keep the architecture's own name
(input_layernorm, post_attention_layernorm, pre_/post_feedforward_layernorm, q_norm, k_norm, ln_1, ln_2),
because the same name means different positions in different families (Gemma2's post_attention_layernorm
follows attention; Llama's precedes the MLP).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import torch

from sftscope.models.architectures import (ARCHITECTURES, ATTENTION_ROLES, MLP_ROLES, Projection, generic_find,
                                           spec_for_config)

# Wrapper prefixes stripped (repeatedly) before matching; longest first.
_PREFIXES = ("base_model.model.", "model.language_model.", "language_model.model.", "language_model.",
             "model.decoder.", "transformer.", "gpt_neox.", "model.")
_BLOCK = re.compile(r"^(?:layers|h|blocks|decoder\.layers)\.(\d+)\.(.+)$")
_PARAM = re.compile(r"^(.+)\.(weight|bias)$")
# Top-level names outside the table's embed / final_norm / lm_head paths.
_TOP_EXTRA = {"wpe": ("embed_positions", "embedding"), "embed_positions": ("embed_positions", "embedding"),
              "final_layernorm": ("final_norm", "final")}
# Buffers some checkpoints store beside the parameters (causal masks, rotary tables): never compared.
_BUFFERS = re.compile(r"(^|\.)(attn\.bias|attn\.masked_bias|attention\.bias|attention\.masked_bias)$|inv_freq$")
ATTN_ROLES = ATTENTION_ROLES
__all__ = ["ATTN_ROLES", "MLP_ROLES", "Split", "TensorRole", "canonical_name", "classify", "is_buffer"]


@dataclass(frozen=True)
class Split:
    """How a fused tensor's elements split into parts, one part per matrix it holds.

    Along `axis`, indices run through consecutive runs of `sizes` elements, run i holding role `parts[i]`, and
    the pattern repeats with period sum(sizes). `experts` > 0: axis 0 stacks that many experts and every
    (expert, role) is its own part, labelled "experts.{e}.{role}", expert-major.

    GPT-2 c_attn (Conv1D [in, 3*d]): axis 1, sizes (d, d, d), parts q, k, v.
    Phi-3 qkv_proj ([(H + 2*K)*hd, d]): axis 0, sizes (H*hd, K*hd, K*hd) (GQA: K key/value heads).
    GPT-NeoX query_key_value ([3*H*hd, d], rows laid out per head as [H, 3, hd]): axis 0, sizes (hd, hd, hd).
    Mixtral experts.gate_up_proj ([E, 2*I, d]): axis 1, sizes (I, I), parts gate, up, experts E.
    """

    axis: int
    sizes: tuple[int, ...]
    parts: tuple[str, ...]
    experts: int = 0

    def __post_init__(self):
        if len(self.sizes) != len(self.parts) or min(self.sizes, default=0) < 1:
            raise ValueError(f"Split needs one positive size per part, got sizes {self.sizes} for {self.parts}")
        if self.experts and self.axis == 0:
            raise ValueError("with stacked experts on axis 0 the parts must lie along another axis")

    @property
    def period(self) -> int:
        return sum(self.sizes)

    @property
    def labels(self) -> tuple[str, ...]:
        """Name of every part, in part-index order: the roles, or experts.{e}.{role} for stacked experts."""
        if not self.experts:
            return self.parts
        return tuple(f"experts.{e}.{p}" for e, p in itertools.product(range(self.experts), self.parts))

    @property
    def label_roles(self) -> tuple[str, ...]:
        """Role of every part, aligned with `labels`."""
        return self.parts * max(1, self.experts)

    def part_ids(self, start: int, stop: int) -> torch.Tensor:
        """Run index (into `parts`) of each index start..stop-1 along `axis`: LongTensor [stop - start]."""
        return self.run_of(torch.arange(start, stop))

    def run_of(self, index: torch.Tensor) -> torch.Tensor:
        """Run index (into `parts`) of each index along `axis` in the LongTensor `index` (same shape)."""
        bounds = torch.tensor(list(itertools.accumulate(self.sizes))[:-1], dtype=torch.long)
        return torch.bucketize(index % self.period, bounds, right=True)


@dataclass(frozen=True)
class TensorRole:
    """Where a tensor lives: block index (0-based; None outside blocks), region, name, parameter kind.

    `module` is a role name ("q_proj"), a fused tensor's label ("qkv", "gate_up"), a norm's own name
    ("input_layernorm") or a top-level name ("embed_tokens"); `roles` the projection roles the tensor holds
    (empty for norms and everything else); `expert` the expert index of one expert's matrix in a checkpoint file.
    """

    block: int | None
    region: str          # "block", "embedding", "final", "other"
    module: str
    param: str           # "weight" or "bias"
    split: Split | None = None
    note: str = ""
    roles: tuple[str, ...] = ()
    expert: int | None = None

    @property
    def label(self) -> str:
        """Row name of the unsplit tensor: `module`, or experts.{e}.{module} for one expert's matrix."""
        return self.module if self.expert is None else f"experts.{self.expert}.{self.module}"


def canonical_name(name: str) -> str:
    """Stored tensor name without wrapper prefixes: 'model.layers.3.self_attn.q_proj.weight' -> 'layers.3...'."""
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix):], True
                break
    return name


def is_buffer(name: str) -> bool:
    """True for stored non-parameters (GPT-2 attn.bias causal mask, rotary inv_freq)."""
    return bool(_BUFFERS.search(canonical_name(name).removesuffix(".weight")))


def _top_roles() -> dict[str, tuple[str, str]]:
    """Canonical top-level path -> (name, region), from the table's embed / final_norm / lm_head paths."""
    roles = dict(_TOP_EXTRA)
    for spec in ARCHITECTURES.values():
        for paths, value in ((spec.embed, ("embed_tokens", "embedding")), (spec.final_norm, ("final_norm", "final")),
                             (spec.lm_head, ("lm_head", "final"))):
            for path in paths.split("|"):
                roles.setdefault(canonical_name(path + ".weight").removesuffix(".weight"), value)
    return roles


def classify(name: str, shape: tuple[int, ...], config: dict | None = None) -> TensorRole:
    """Role of one stored tensor `name` of `shape`.

    `config` (config.json as a dict) selects the table entry by its model_type and gives the head counts that
    GQA and per-head fused splits need (num_attention_heads, num_key_value_heads, head_dim or hidden_size);
    without them such a tensor is reported unsplit, with a note. Parameters stored without a .weight/.bias
    suffix (Mixtral's stacked experts.gate_up_proj) count as weights.
    """
    canon = canonical_name(name)
    match = _BLOCK.match(canon)
    if match is None:
        top = _PARAM.match(canon)
        path, param = (top.group(1), top.group(2)) if top else (canon, "weight")
        module, region = _top_roles().get(path, (path, "other"))
        return TensorRole(None, region, module, param)
    block, rest = int(match.group(1)), match.group(2)
    suffixed = _PARAM.match(rest)
    path, param = (suffixed.group(1), suffixed.group(2)) if suffixed else (rest, "weight")
    spec = spec_for_config(config)
    found = (spec.find(path) if spec is not None else None) or generic_find(path)
    if found is None:  # norms and anything the table does not list keep their own name
        return TensorRole(block, "block", path.rsplit(".", 1)[-1], param)
    projection, roles, expert = found
    stacked = projection.layout == "experts" and expert is None
    if len(roles) == 1 and not stacked:
        return TensorRole(block, "block", roles[0], param, roles=roles, expert=expert)
    return _fused(block, param, shape, config, projection, stacked)


def _fused(block: int, param: str, shape: tuple[int, ...], config: dict | None, projection: Projection,
           stacked: bool) -> TensorRole:
    """A tensor holding several matrices (fused roles and/or stacked experts), split if its layout is known."""
    leaf = projection.path.rsplit(".", 1)[-1]
    axis = projection.out_axis(param, len(shape))
    sizes = projection.role_sizes(shape[axis], config) if 0 <= axis < len(shape) else None
    if sizes is None or (stacked and axis == 0):
        return TensorRole(block, "block", projection.label, param, roles=projection.roles,
                          note=f"fused {leaf} not split (num_attention_heads / num_key_value_heads unknown or "
                               f"not matching its {list(shape)} shape)")
    split = Split(axis, sizes, projection.roles, experts=shape[0] if stacked else 0)
    if stacked:
        note = f"split per expert from {leaf}"
    else:
        note = f"split per head from {leaf}" if projection.fuse == "per_head" else f"split from fused {leaf}"
    return TensorRole(block, "block", projection.label, param, split, note=note, roles=projection.roles)
