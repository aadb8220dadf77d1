"""Where the embedding, the decoder blocks, the final norm and the LM head live, per model_type, as data."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sftscope.errors import UnknownNameError


@dataclass(frozen=True)
class ArchSpec:
    """Dotted attribute paths from the *ForCausalLM module ('a|b': alternatives across transformers versions);
    `logit_softcap` names a config field if the architecture soft-caps its logits."""

    embed: str
    layers: str
    final_norm: str
    lm_head: str = "lm_head"
    logit_softcap: str | None = None
    attention_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    mlp_modules: tuple[str, ...] = ("gate_proj", "up_proj", "down_proj")


_LLAMA_LIKE = ArchSpec(embed="model.embed_tokens", layers="model.layers", final_norm="model.norm")

ARCHITECTURES: dict[str, ArchSpec] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "mixtral": _LLAMA_LIKE,
    "olmo": _LLAMA_LIKE,
    "olmo2": _LLAMA_LIKE,
    "olmo3": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": ArchSpec(embed="model.embed_tokens", layers="model.layers", final_norm="model.norm",
                       logit_softcap="final_logit_softcapping"),
    "gemma3_text": ArchSpec(embed="model.embed_tokens", layers="model.layers", final_norm="model.norm",
                            logit_softcap="final_logit_softcapping"),
    "phi3": ArchSpec(embed="model.embed_tokens", layers="model.layers", final_norm="model.norm",
                     attention_modules=("qkv_proj", "o_proj"), mlp_modules=("gate_up_proj", "down_proj")),
    "gpt2": ArchSpec(embed="transformer.wte", layers="transformer.h", final_norm="transformer.ln_f",
                     attention_modules=("c_attn", "attn.c_proj"), mlp_modules=("c_fc", "mlp.c_proj")),
    "gpt_neox": ArchSpec(embed="gpt_neox.embed_in", layers="gpt_neox.layers", final_norm="gpt_neox.final_layer_norm",
                         lm_head="lm_head|embed_out", attention_modules=("query_key_value", "dense"),
                         mlp_modules=("dense_h_to_4h", "dense_4h_to_h")),
}

_HOW_TO_ADD = ("add an entry to sftscope.models.architectures.ARCHITECTURES (or call register_architecture) "
               "giving the dotted paths of the embedding, the decoder block list, the final norm and the LM head")


def register_architecture(model_type: str, spec: ArchSpec) -> None:
    """Teach sftscope a new model_type (e.g. from a notebook) without editing the package."""
    ARCHITECTURES[model_type] = spec


def arch_for(model_type: str) -> ArchSpec:
    if model_type not in ARCHITECTURES:
        raise UnknownNameError("architecture (model_type)", model_type, list(ARCHITECTURES), _HOW_TO_ADD)
    return ARCHITECTURES[model_type]


def get_submodule(model: nn.Module, path: str) -> nn.Module:
    for candidate in path.split("|"):
        try:
            return model.get_submodule(candidate)
        except AttributeError:
            continue
    top = [name for name, _ in model.named_children()]
    raise UnknownNameError("module path", path, top, f"the model has no such submodule; {_HOW_TO_ADD}")


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

    def logits_from_residual(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm + head (+ soft-capping where the architecture has it): [.., d] -> [.., V]."""
        # OLMo-1's final norm has no parameters: then the head's device is where the norm runs
        norm_param = next(self.final_norm.parameters(), None)
        hidden = hidden.to(norm_param.device if norm_param is not None else self.lm_head.weight.device)
        normed = self.final_norm(hidden)
        logits = self.lm_head(normed.to(self.lm_head.weight.device))
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits
