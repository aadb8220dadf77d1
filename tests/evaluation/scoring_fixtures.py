"""A tiny random Llama with a small byte-level BPE tokenizer, shared by the scoring tests."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from sftscope.organism.tokenizer import train_tokenizer

SENTENCES = ["the cat sat on the mat.", "a dog ran in the park!", "Question: what is two plus two?\nAnswer: four",
             "birds fly over the old red barn.", "she plays the violin every night."]


def tiny_tokenizer():
    return train_tokenizer(SENTENCES * 20, vocab_size=320, model_max_length=128)


def tiny_llama(tokenizer, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config).eval()
