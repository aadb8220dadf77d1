"""Tiny random decoders with realistic shape ratios (GQA: k/v narrower than q/o; MLP ~2.7x) for tuning tests."""

import functools

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Olmo2Config, Qwen2Config

# 16 layers, d=64, 8 query heads of 8 dims, 2 kv heads -> k/v out 16 (OLMo2-/Mistral-like ratios, tiny).
SHAPE = dict(vocab_size=300, hidden_size=64, intermediate_size=172, num_hidden_layers=16, num_attention_heads=8,
             num_key_value_heads=2, max_position_embeddings=128)
TUNING_CONFIGS = {
    "llama": lambda **kw: LlamaConfig(**{**SHAPE, **kw}),
    "mistral": lambda **kw: MistralConfig(**{**SHAPE, **kw}, sliding_window=None),
    "olmo2": lambda **kw: Olmo2Config(**{**SHAPE, **kw}),
    "qwen2": lambda **kw: Qwen2Config(**{**SHAPE, **kw}),
}
TUNING_ARCHS = list(TUNING_CONFIGS)


def tiny_decoder(arch: str = "llama", seed: int = 0, **overrides):
    """A random-weight model of `arch` with SHAPE (overridable), in eval mode."""
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(TUNING_CONFIGS[arch](**overrides)).eval()


@functools.lru_cache(maxsize=None)
def shared_decoder(arch: str):
    """One cached model per arch for read-only tests (planning never mutates the model)."""
    return tiny_decoder(arch)


@pytest.fixture(params=TUNING_ARCHS)
def arch(request):
    return request.param


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny matrices gain nothing from threads, and on a shared 2-core box spinning OpenMP threads made
    training tests ~10x slower; restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
