"""A tiny Base/SFT Llama pair with a BPE tokenizer trained on WikiText, saved like hub models (benchmarks only)."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tokenizers.processors import TemplateProcessing
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

from sftscope.data.registry import get_dataset, load_records


def train_tokenizer(data_dir: str, vocab_size: int = 8000) -> PreTrainedTokenizerFast:
    texts = [get_dataset("wikitext").render(r) for r in load_records("wikitext", data_dir)]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<bos>", "<eos>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


def save_pair(root: Path, data_dir: str, layers: int = 12, hidden: int = 256, perturb: float = 0.01) -> tuple[Path, Path]:
    tok = train_tokenizer(data_dir)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                         num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=1024)
    paths = []
    for name, noise in (("base", 0.0), ("sft", perturb)):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
        with torch.no_grad():
            gen = torch.Generator().manual_seed(1)
            for p in model.parameters():
                p.add_(noise * torch.randn(p.shape, generator=gen))
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        paths.append(root / name)
    return paths[0], paths[1]
