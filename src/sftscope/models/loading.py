"""Load a Base model and its fine-tuned variants, checking before any heavy work that they are comparable."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig

from sftscope.config import LoadConfig
from sftscope.errors import IncompatiblePairError, SftscopeError, describe, first_line
from sftscope.models.architectures import ModelParts, arch_for
from sftscope.models.refs import ModelRef, looks_local
from sftscope.runtime import cuda_available, dtype_name, resolve_device, resolve_dtype

PROBE_TEXT = "Question: What is 12 + 30?\nAnswer: 42. The quick brown fox jumps over the lazy dog."
_DTYPE_KWARG = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"


@dataclass
class LoadedModel:
    ref: ModelRef
    model: Any
    tokenizer: Any
    parts: ModelParts
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def input_device(self) -> torch.device:
        """Where the token ids go: the embedding's device (its hook's execution device when offloaded)."""
        from sftscope.models.placement import module_device
        return module_device(self.parts.embed)


def load_config(ref: ModelRef, trust_remote_code: bool = False) -> PretrainedConfig:
    """Config only (cheap): the first thing read for every model, so bad ids fail before any weights load."""
    path = Path(ref.id).expanduser()
    if looks_local(ref.id) and not path.exists():
        raise SftscopeError(f"model path {ref.id!r} ({ref.name}) does not exist; give an existing directory "
                            "or a Hugging Face hub id such as allenai/OLMo-2-0425-1B")
    if path.exists() and not path.is_dir():
        raise SftscopeError(f"{path} ({ref.name}) is a file; give the model's folder (with config.json, the "
                            "weights and the tokenizer files)")
    if path.is_dir() and not (path / "config.json").exists():
        raise SftscopeError(f"{path} ({ref.name}) has no config.json: it is not a saved transformers model")
    try:
        config = AutoConfig.from_pretrained(str(path) if path.exists() else ref.id, revision=ref.revision,
                                            trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001  transformers raises OSError, ValueError, KeyError, hub errors ...
        raise SftscopeError(f"cannot load the config of {ref.id!r} ({ref.name}): {first_line(exc).rstrip('.')}. "
                            "Check the id or "
                            "path, the revision, your network / HF_TOKEN, or pass --trust-remote-code for custom "
                            "code") from exc
    if not getattr(config, "num_hidden_layers", None) and not getattr(config, "n_layer", None):
        raise SftscopeError(f"the config of {ref.id!r} ({ref.name}) names no layer count (num_hidden_layers): "
                            "is it a decoder language model?")
    return config


def check_configs_compatible(base: PretrainedConfig, other: PretrainedConfig, names: tuple[str, str]) -> None:
    """Same family, depth and width: otherwise layer l of one model says nothing about layer l of the other."""
    problems = []
    if base.model_type != other.model_type:
        problems.append(f"architecture {base.model_type} vs {other.model_type}")
    for attr in ("num_hidden_layers", "hidden_size"):
        a, b = getattr(base, attr, None), getattr(other, attr, None)
        if a != b:
            problems.append(f"{attr} {a} vs {b}")
    if problems:
        raise IncompatiblePairError(f"{names[0]} and {names[1]} cannot be compared layer by layer: "
                                    f"{'; '.join(problems)}. Compare a fine-tuned model with its own Base")


def check_tokenizers_compatible(base_tok, other_tok, names: tuple[str, str]) -> None:
    a, b = base_tok(PROBE_TEXT)["input_ids"], other_tok(PROBE_TEXT)["input_ids"]
    if a != b:
        raise IncompatiblePairError(
            f"{names[0]} and {names[1]} tokenize the probe text differently ({len(a)} vs {len(b)} tokens); "
            "the same text would give different token positions. Use the Base's own fine-tuned checkpoints")


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json", "spiece.model")


def load_tokenizer(ref: ModelRef, trust_remote_code: bool = False):
    """The model's tokenizer (a pad token is set to EOS/UNK where it has none: padding is always masked).

    Raises:
        SftscopeError: a local folder without tokenizer files, or a tokenizer that cannot be loaded.
    """
    path = Path(ref.id).expanduser()
    if path.is_dir() and not any((path / name).exists() for name in TOKENIZER_FILES):
        raise SftscopeError(f"{path} ({ref.name}) has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...); "
                            "save the tokenizer into the model folder (tokenizer.save_pretrained(folder))")
    try:
        tok = AutoTokenizer.from_pretrained(str(path) if path.exists() else ref.id, revision=ref.revision,
                                            trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001  tokenizers, sentencepiece and the hub raise many types
        raise SftscopeError(f"cannot load the tokenizer of {ref.id!r} ({ref.name}): {describe(exc)}") from exc
    if tok.pad_token is None:  # many base LMs ship without one; padding is always masked out downstream
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def load_model(ref: ModelRef, options: LoadConfig | None = None, config: PretrainedConfig | None = None,
               tokenizer=None) -> LoadedModel:
    """Load one causal LM with its tokenizer; record id, revision, dtype and parameter count."""
    options = options or LoadConfig()
    config = config or load_config(ref, options.trust_remote_code)
    arch_for(config.model_type)  # unknown architecture: fail before loading weights
    device = resolve_device(options.device)
    ckpt_dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(ckpt_dtype, str):
        ckpt_dtype = getattr(torch, ckpt_dtype, None)
    gpu = device.startswith("cuda") or (options.device_map is not None and cuda_available())
    dtype = resolve_dtype(options.dtype, "cuda" if gpu else device, ckpt_dtype)
    source = str(Path(ref.id).expanduser()) if Path(ref.id).expanduser().exists() else ref.id
    kwargs: dict[str, Any] = {_DTYPE_KWARG: dtype, "revision": ref.revision,
                              "trust_remote_code": options.trust_remote_code}
    if options.device_map is not None:
        kwargs.update(options.placement(ref.name))
    try:
        model = AutoModelForCausalLM.from_pretrained(source, config=config, **kwargs)
    except Exception as exc:  # noqa: BLE001  OSError, ValueError, SafetensorError, UnpicklingError, OOM ...
        raise SftscopeError(f"cannot load the weights of {ref.id!r} ({ref.name}): {describe(exc)}") from exc
    if options.device_map is None:
        model.to(device)
    model.eval()
    tokenizer = tokenizer or load_tokenizer(ref, options.trust_remote_code)
    record = {
        "name": ref.name, "id": ref.id, "revision": ref.revision,
        "resolved_revision": getattr(config, "_commit_hash", None), "model_type": config.model_type,
        "dtype": dtype_name(dtype), "device": getattr(model, "hf_device_map", None) or device,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "num_layers": config.num_hidden_layers, "hidden_size": config.hidden_size,
    }
    return LoadedModel(ref=ref, model=model, tokenizer=tokenizer, parts=ModelParts(model), record=record)


def check_pair(refs: list[ModelRef], trust_remote_code: bool = False) -> list[PretrainedConfig]:
    """Cheap checks on configs and tokenizers of Base (first) vs each variant, before loading weights."""
    names = [r.name for r in refs]
    if len(set(names)) != len(names):
        raise SftscopeError(f"model names must be unique, got {names}")
    configs = [load_config(r, trust_remote_code) for r in refs]
    for cfg in configs:
        arch_for(cfg.model_type)
    base_tok = load_tokenizer(refs[0], trust_remote_code)
    for ref, cfg in zip(refs[1:], configs[1:]):
        check_configs_compatible(configs[0], cfg, (refs[0].name, ref.name))
        check_tokenizers_compatible(base_tok, load_tokenizer(ref, trust_remote_code), (refs[0].name, ref.name))
    return configs


def load_pair(refs: list[ModelRef], options: LoadConfig | None = None,
              configs: list[PretrainedConfig] | None = None) -> list[LoadedModel]:
    """Base first, then each fine-tuned variant, all resident at once (checked first, unless `configs` come
    from an earlier `check_pair` of the same refs)."""
    options = options or LoadConfig()
    configs = configs or check_pair(refs, options.trust_remote_code)
    return [load_model(r, options, c) for r, c in zip(refs, configs)]
