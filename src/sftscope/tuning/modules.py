"""Find a causal LM's decoder blocks and the linear modules inside them that adapters may target."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sftscope.errors import SftscopeError

ATTENTION_QKVO = ("q_proj", "k_proj", "v_proj", "o_proj")
ALL_LINEAR = "all-linear"
_LAYER_LIST_NAMES = ("layers", "h", "blocks", "block", "decoder_layers")


@dataclass(frozen=True)
class TargetModule:
    """One linear map in block `layer`: full dotted `name`, its short `kind` (q_proj), and its shape."""

    name: str
    layer: int
    kind: str
    in_features: int
    out_features: int

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
    """(dotted name, ModuleList) of the decoder blocks: the shortest-named block list of the model."""
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


def find_target_modules(model: nn.Module, target_modules=ATTENTION_QKVO) -> list[TargetModule]:
    """Every targeted linear module of every block, ordered by (layer, position in the block)."""
    prefix, layers = decoder_layers(model)
    wanted = None if target_modules == ALL_LINEAR else tuple(target_modules)
    if wanted is not None and not wanted:
        raise SftscopeError("target_modules is empty; name modules like q_proj,v_proj or use all-linear")
    found: list[TargetModule] = []
    for index, block in enumerate(layers):
        in_block = []
        for sub_name, sub in block.named_modules():
            shape = linear_shape(sub)
            kind = sub_name.rsplit(".", 1)[-1]
            if shape is None or (wanted is not None and kind not in wanted):
                continue
            in_block.append(TargetModule(f"{prefix}.{index}.{sub_name}", index, kind, *shape))
        missing = set(wanted or ()) - {m.kind for m in in_block}
        if missing:
            available = sorted({n.rsplit(".", 1)[-1] for n, s in block.named_modules() if linear_shape(s)})
            raise SftscopeError(f"block {index} has no linear module named {', '.join(sorted(missing))}; "
                                f"linear modules there: {', '.join(available)} (or use all-linear)")
        found.extend(in_block)
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
