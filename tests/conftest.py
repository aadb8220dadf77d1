"""Shared fixtures: tiny random models of each supported architecture, saved and loaded like hub models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (Gemma2Config, GPT2Config, GPTNeoXConfig, LlamaConfig, MistralConfig,
                          Olmo2Config, PreTrainedTokenizerFast, Qwen2Config)

# Tiny models are dominated by per-op overhead: one thread is faster than two on a shared 2-core machine.
torch.set_num_threads(1)

SHARED_DATA = Path(os.environ.get("SFTSCOPE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
VOCAB = 300
COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)

CONFIGS = {
    "llama": lambda: LlamaConfig(**COMMON),
    "mistral": lambda: MistralConfig(**COMMON, sliding_window=None),
    "olmo2": lambda: Olmo2Config(**COMMON),
    "qwen2": lambda: Qwen2Config(**COMMON),
    "gemma2": lambda: Gemma2Config(**COMMON, head_dim=8, final_logit_softcapping=5.0),
    "gpt2": lambda: GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=4, n_head=4, n_positions=256,
                               bos_token_id=1, eos_token_id=2),
    "gpt_neox": lambda: GPTNeoXConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                      num_attention_heads=4, max_position_embeddings=256),
}
ARCHS = list(CONFIGS)


def _more_configs():
    """The rest of the architecture table, for the capture equalities (built offline from configs)."""
    import transformers as tf
    more = {
        "mixtral": lambda: tf.MixtralConfig(**COMMON, num_local_experts=2, num_experts_per_tok=1),
        "olmo": lambda: tf.OlmoConfig(**COMMON),
        "olmo3": lambda: tf.Olmo3Config(**COMMON),
        "qwen3": lambda: tf.Qwen3Config(**COMMON, head_dim=8),
        "gemma": lambda: tf.GemmaConfig(**COMMON, head_dim=8),
        "gemma3_text": lambda: tf.Gemma3TextConfig(**COMMON, head_dim=8, final_logit_softcapping=5.0),
        "phi3": lambda: tf.Phi3Config(**COMMON, pad_token_id=0),
    }
    return more


CONFIGS.update(_more_configs())
ALL_ARCHS = list(CONFIGS)


def lm_eval_or_skip():
    """Import lm_eval, or skip the test where the optional `eval` extra is not installed; CI sets
    SFTSCOPE_REQUIRE_LM_EVAL=1 so that a missing package fails there instead of skipping the parity tests."""
    if os.environ.get("SFTSCOPE_REQUIRE_LM_EVAL") == "1":
        import lm_eval
        return lm_eval
    return pytest.importorskip("lm_eval")


# what a test module that reads the offline data copies names (directly or through the tokenizer families)
_DATA_READERS = ("SHARED_DATA", "tokenizer_families")


def pytest_collection_modifyitems(config, items):
    """Without ../shared/data (or $SFTSCOPE_DATA_DIR), skip the test modules that read it, saying why, instead of
    failing them; CI sets SFTSCOPE_REQUIRE_DATA=1, where missing data is an error rather than a skip."""
    if SHARED_DATA.is_dir():
        return
    if os.environ.get("SFTSCOPE_REQUIRE_DATA") == "1":
        raise pytest.UsageError(f"SFTSCOPE_REQUIRE_DATA=1 but the offline data copies are not at {SHARED_DATA}")
    import inspect

    skip = pytest.mark.skip(reason=f"reads the offline data copies, not found at {SHARED_DATA} "
                                   "(set SFTSCOPE_DATA_DIR)")
    reads: dict[str, bool] = {}
    for item in items:
        module = getattr(item, "module", None)
        if module is None or module.__name__ == __name__:
            continue
        if module.__name__ not in reads:
            source = inspect.getsource(module)
            reads[module.__name__] = any(name in source for name in _DATA_READERS)
        if reads[module.__name__]:
            item.add_marker(skip)


def make_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over a fixed vocabulary (offline, deterministic), BOS added to every text."""
    words = ["<pad>", "<bos>", "<eos>", "<unk>"] + [chr(c) for c in range(33, 127)] + \
        "the a of to and is in what question answer A B C D".split()
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    for i in range(len(vocab), VOCAB):
        vocab[f"w{i}"] = i
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Split(r"[^A-Za-z0-9]", "isolated")])
    from tokenizers.processors import TemplateProcessing
    tok.post_processor = TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>")


def build_tiny(arch: str, seed: int = 0):
    torch.manual_seed(seed)
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_config(CONFIGS[arch]()).eval()


def save_tiny(arch: str, path: Path, seed: int = 0, perturb: float = 0.0) -> Path:
    model = build_tiny(arch, seed)
    if perturb:
        with torch.no_grad():
            gen = torch.Generator().manual_seed(seed + 1)
            for p in model.parameters():
                p.add_(perturb * torch.randn(p.shape, generator=gen))
    model.save_pretrained(path)
    make_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_pair_dir(tmp_path_factory):
    """(base_dir, sft_dir) factory per architecture; SFT = Base + small perturbation."""
    cache: dict[str, tuple[Path, Path]] = {}

    def get(arch: str = "llama"):
        if arch not in cache:
            root = tmp_path_factory.mktemp(f"pair-{arch}")
            cache[arch] = (save_tiny(arch, root / "base"), save_tiny(arch, root / "sft", perturb=0.02))
        return cache[arch]
    return get


def manual_greedy(model, tok, ids: list[int], n: int) -> list[int]:
    """Greedy decoding written out: up to n new token ids after `ids`, one full forward per token, stopping at EOS
    (the reference the generation tests compare against)."""
    out: list[int] = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(input_ids=torch.tensor([ids + out])).logits[0, -1].argmax())
            if nxt == tok.eos_token_id:
                break
            out.append(nxt)
    return out
