"""Tensor names -> (block, module, parameter): one table for llama/mistral/qwen2/olmo2/gemma2, gpt2, gpt_neox.

A checkpoint tensor is classified by its *canonical* name: the stored name with wrapper prefixes removed
("model.", "transformer.", "gpt_neox.", "base_model.model." ...), so that a `LlamaForCausalLM` file matches a
`LlamaModel` file and a GPT-2 "transformer.h.3..." name matches "h.3...".

Projections get role names shared by every architecture so the per-block attention sum is defined everywhere:
q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj. Norms keep the architecture's own name
(input_layernorm, post_attention_layernorm, pre_/post_feedforward_layernorm, q_norm, k_norm, ln_1, ln_2),
because the same name means different positions in different families (Gemma2's post_attention_layernorm
follows attention; Llama's precedes the MLP). Fused projections are split into row/column parts (`Split`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

# Wrapper prefixes stripped (repeatedly) before matching; longest first.
_PREFIXES = ("base_model.model.", "model.language_model.", "language_model.model.", "language_model.",
             "model.decoder.", "transformer.", "gpt_neox.", "model.")
_BLOCK = re.compile(r"^(?:layers|h|blocks|decoder\.layers)\.(\d+)\.(.+)\.(weight|bias)$")
_TOP = re.compile(r"^(.+)\.(weight|bias)$")

# Leaf module name (optionally qualified by its parent) -> role name inside a block.
_BLOCK_ROLES = {
    "q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "o_proj": "o_proj",
    "attention.dense": "o_proj", "attn.c_proj": "o_proj",                     # gpt_neox, gpt2
    "gate_proj": "gate_proj", "up_proj": "up_proj", "down_proj": "down_proj",
    "c_fc": "up_proj", "mlp.c_proj": "down_proj",                             # gpt2
    "dense_h_to_4h": "up_proj", "dense_4h_to_h": "down_proj",                 # gpt_neox
    "fc1": "up_proj", "fc2": "down_proj",
}
_TOP_ROLES = {
    "embed_tokens": ("embed_tokens", "embedding"), "wte": ("embed_tokens", "embedding"),
    "embed_in": ("embed_tokens", "embedding"), "wpe": ("embed_positions", "embedding"),
    "embed_positions": ("embed_positions", "embedding"),
    "norm": ("final_norm", "final"), "ln_f": ("final_norm", "final"), "final_layer_norm": ("final_norm", "final"),
    "final_layernorm": ("final_norm", "final"),
    "lm_head": ("lm_head", "final"), "embed_out": ("lm_head", "final"),
}
# Buffers some checkpoints store beside the parameters (causal masks, rotary tables): never compared.
_BUFFERS = re.compile(r"(^|\.)(attn\.bias|attn\.masked_bias|attention\.bias|attention\.masked_bias)$|inv_freq$")
ATTN_ROLES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_ROLES = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Split:
    """How a fused tensor splits into named parts: element index along `axis` -> part `(index // size) % n`.

    GPT-2 c_attn (Conv1D, stored [in, 3*out]): axis 1, size = out, parts q, k, v.
    GPT-NeoX query_key_value (Linear, [3*hidden, hidden], rows laid out per head as [H, 3, head_dim]):
    axis 0, size = head_dim, parts q, k, v (weight.view(H, 3, head_dim, hidden)[:, j] is part j).
    """

    axis: int
    size: int
    parts: tuple[str, ...]

    def part_ids(self, start: int, stop: int) -> torch.Tensor:
        """Part index of each element index start..stop-1 along `axis`: LongTensor [stop - start]."""
        return (torch.arange(start, stop) // self.size) % len(self.parts)


@dataclass(frozen=True)
class TensorRole:
    """Where a tensor lives: block index (0-based; None outside blocks), region, role name, parameter kind."""

    block: int | None
    region: str          # "block", "embedding", "final", "other"
    module: str          # role name ("q_proj", "input_layernorm", "embed_tokens", "qkv" ...)
    param: str           # "weight" or "bias"
    split: Split | None = None
    note: str = ""


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


def classify(name: str, shape: tuple[int, ...], config: dict | None = None) -> TensorRole:
    """Role of one stored tensor `name` of `shape`; `config` (config.json as a dict) enables fused-qkv splits."""
    canon = canonical_name(name)
    match = _BLOCK.match(canon)
    if match is None:
        top = _TOP.match(canon)
        path, param = (top.group(1), top.group(2)) if top else (canon, "weight")
        module, region = _TOP_ROLES.get(path, (path, "other"))
        return TensorRole(None, region, module, param)
    block, path, param = int(match.group(1)), match.group(2), match.group(3)
    leaf = path.rsplit(".", 1)[-1]
    qualified = ".".join(path.split(".")[-2:])
    if leaf == "c_attn":  # GPT-2 Conv1D: columns are [q | k | v]
        out = shape[-1] // 3
        split = Split(axis=len(shape) - 1, size=out, parts=("q_proj", "k_proj", "v_proj"))
        return TensorRole(block, "block", "qkv", param, split, note="split from fused c_attn")
    if leaf == "query_key_value":
        return _neox_qkv(block, param, shape, config)
    role = _BLOCK_ROLES.get(qualified) or _BLOCK_ROLES.get(leaf) or leaf
    return TensorRole(block, "block", role, param)


def _neox_qkv(block: int, param: str, shape: tuple[int, ...], config: dict | None) -> TensorRole:
    """GPT-NeoX fused qkv: split per head when the head count is known, else report fused 'qkv'."""
    heads = (config or {}).get("num_attention_heads")
    if heads and shape[0] % (3 * heads) == 0:
        head_dim = shape[0] // (3 * heads)
        return TensorRole(block, "block", "qkv", param, Split(axis=0, size=head_dim,
                          parts=("q_proj", "k_proj", "v_proj")), note="split per head from query_key_value")
    return TensorRole(block, "block", "qkv", param,
                      note="fused query_key_value not split (num_attention_heads unknown)")
