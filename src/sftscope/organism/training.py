"""Build the organism's Llama and train it: packed-sequence pretraining, then completion-only SFT.

A plain single-process loop: the organism is ~1M parameters on a CPU, where a distributed engine would
only add start-up time. Data order comes from a seeded numpy Generator, so runs repeat exactly.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, get_cosine_schedule_with_warmup

from sftscope.tokenization import encode_texts
from sftscope.tuning.sequences import EncodedExample, collate
from sftscope.organism.recipe import OrganismRecipe


def make_model(recipe: OrganismRecipe, tokenizer) -> LlamaForCausalLM:
    """A freshly initialised LlamaForCausalLM sized by the recipe (seed torch before calling)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=recipe.d_model, intermediate_size=recipe.ffn_multiplier * recipe.d_model,
        num_hidden_layers=recipe.n_layers, num_attention_heads=recipe.n_heads, num_key_value_heads=recipe.n_heads,
        max_position_embeddings=recipe.max_position, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def pack_documents(tokenizer, docs: list[str], seq_len: int) -> torch.Tensor:
    """Concatenate [BOS] doc [EOS] for all docs and cut the stream into blocks: [N, seq_len] (remainder dropped)."""
    encoded = encode_texts(tokenizer, docs)
    stream = np.fromiter((t for ids in encoded for t in (*ids, tokenizer.eos_token_id)), dtype=np.int64)
    n_blocks = len(stream) // seq_len
    return torch.from_numpy(stream[: n_blocks * seq_len].reshape(n_blocks, seq_len))


def _optimizer(model, lr: float, recipe: OrganismRecipe, total_steps: int, warmup: int):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=recipe.adam_betas,
                                  weight_decay=recipe.weight_decay)
    return optimizer, get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)


def _step(model, optimizer, scheduler, batch: dict, grad_clip: float) -> float:
    loss = model(**batch).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    return float(loss.detach())


def _epoch_batches(n_items: int, batch_size: int, rng: np.random.Generator, drop_last: bool):
    """Endless stream of index batches, reshuffled every epoch."""
    while True:
        order = rng.permutation(n_items)
        stop = n_items - n_items % batch_size if drop_last else n_items
        for start in range(0, stop, batch_size):
            yield order[start:start + batch_size]


def pretrain(model, blocks: torch.Tensor, recipe: OrganismRecipe, rng: np.random.Generator,
             progress: bool = True) -> dict:
    """Next-token training on blocks [N, seq_len] for recipe.pretrain_steps; returns the loss curve and time."""
    optimizer, scheduler = _optimizer(model, recipe.pretrain_lr, recipe, recipe.pretrain_steps, recipe.warmup_steps)
    batches = _epoch_batches(len(blocks), recipe.batch_size, rng, drop_last=True)
    return _train_loop(model, optimizer, scheduler, recipe, recipe.pretrain_steps, progress, "pretrain Base",
                       lambda: _lm_batch(blocks[next(batches)]))


def _lm_batch(block: torch.Tensor) -> dict:
    return {"input_ids": block, "labels": block}


def finetune(model, examples: list[EncodedExample], pad_token_id: int, recipe: OrganismRecipe,
             rng: np.random.Generator, progress: bool = True) -> dict:
    """Completion-only SFT for recipe.sft_epochs epochs; returns the loss curve and time."""
    steps_per_epoch = -(-len(examples) // recipe.sft_batch_size)
    total = steps_per_epoch * recipe.sft_epochs
    optimizer, scheduler = _optimizer(model, recipe.sft_lr, recipe, total, recipe.sft_warmup_steps)
    batches = _epoch_batches(len(examples), recipe.sft_batch_size, rng, drop_last=False)
    return _train_loop(model, optimizer, scheduler, recipe, total, progress, "SFT",
                       lambda: collate([examples[i] for i in next(batches)], pad_token_id))


def _train_loop(model, optimizer, scheduler, recipe: OrganismRecipe, total: int, progress: bool, label: str,
                next_batch) -> dict:
    model.train()
    curve, window, started = [], [], time.perf_counter()
    bar = tqdm(range(1, total + 1), desc=label, disable=not progress, mininterval=1.0)
    for step in bar:
        window.append(_step(model, optimizer, scheduler, next_batch(), recipe.grad_clip))
        if step % recipe.log_every == 0 or step == total:
            curve.append({"step": step, "loss": sum(window) / len(window), "lr": scheduler.get_last_lr()[0]})
            bar.set_postfix(loss=f"{curve[-1]['loss']:.3f}")
            window = []
    model.eval()
    return {"steps": total, "loss_curve": curve, "final_loss": curve[-1]["loss"],
            "seconds": time.perf_counter() - started}
