"""Model-agnostic scoring primitives for any HF causal LM: greedy generation, continuation log-probs, perplexity.

All three batch their inputs and are pad-aware: generation pads on the left (so every prompt ends where
generation starts), scoring pads on the right (positions of real tokens are then unchanged).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sftscope.evaluation.prompt_completion import encode_context_continuation


def pad_token_id(tokenizer) -> int:
    """The id used for padding: the tokenizer's pad token, else EOS, else 0 (masked out either way)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def model_device(model) -> torch.device:
    """Device of the model's first parameter (where inputs must go)."""
    return next(model.parameters()).device


def left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad id lists to input_ids [B, T] and attention_mask [B, T] (0 on padding)."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        if ids:
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            attention_mask[row, width - len(ids):] = 1
    return input_ids, attention_mask


def right_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists to input_ids [B, T] and attention_mask [B, T] (0 on padding)."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask


def cut_at_stop(text: str, stop: list[str]) -> str:
    """Text up to (not including) the earliest stop string."""
    cut = min((text.find(s) for s in stop if s and s in text), default=len(text))
    return text[:cut]


@torch.no_grad()
def greedy_generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 32,
                    stop: list[str] | None = None, batch_size: int = 16) -> list[str]:
    """Greedy completion of each prompt (prompt excluded), cut at the first stop string or EOS; len == len(prompts)."""
    stop = [s for s in (stop or []) if s]
    pad_id, device = pad_token_id(tokenizer), model_device(model)
    encoded = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))  # similar lengths share a batch
    outputs: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        input_ids, attention_mask = left_pad([encoded[i] for i in rows], pad_id)
        generated = model.generate(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
            do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
            pad_token_id=pad_id, eos_token_id=tokenizer.eos_token_id,
            **({"stop_strings": stop, "tokenizer": tokenizer} if stop else {}),
        )
        new_tokens = generated[:, input_ids.shape[1]:].cpu()
        for row, i in enumerate(rows):
            ids = new_tokens[row].tolist()
            if tokenizer.eos_token_id in ids:  # EOS ends the answer; later positions are padding
                ids = ids[: ids.index(tokenizer.eos_token_id)]
            outputs[i] = cut_at_stop(tokenizer.decode(ids, skip_special_tokens=True), stop)
    return outputs


@torch.no_grad()
def continuation_logprobs(model, tokenizer, contexts: list[str], continuations: list[str],
                          batch_size: int = 16) -> list[float]:
    """sum_t log p(continuation token t | context, earlier continuation tokens) per pair; len == len(contexts).

    Context and continuation are tokenised separately (trailing context whitespace moves to the
    continuation), so the scored tokens are exactly the continuation's own tokens.
    """
    if len(contexts) != len(continuations):
        raise ValueError(f"{len(contexts)} contexts but {len(continuations)} continuations")
    pad_id, device = pad_token_id(tokenizer), model_device(model)
    pairs = [encode_context_continuation(tokenizer, c, x) for c, x in zip(contexts, continuations)]
    order = sorted(range(len(pairs)), key=lambda i: -sum(map(len, pairs[i])))
    scores = [0.0] * len(pairs)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        input_ids, attention_mask = right_pad([pairs[i][0] + pairs[i][1] for i in rows], pad_id)
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        for row, i in enumerate(rows):
            n_context, n_cont = len(pairs[i][0]), len(pairs[i][1])
            targets = input_ids[row, n_context:n_context + n_cont].to(logits.device)  # [n_cont]
            # logits at position t predict token t+1; normalise only the rows we need (vocab can be 150k)
            log_probs = F.log_softmax(logits[row, n_context - 1:n_context + n_cont - 1].float(), dim=-1)
            scores[i] = float(log_probs.gather(-1, targets[:, None]).sum())
    return scores


@torch.no_grad()
def perplexity(model, tokenizer, texts: list[str], max_length: int = 1024,
               batch_size: int = 8) -> tuple[float, int]:
    """exp(mean NLL per predicted token) over texts, and the number of predicted tokens.

    Each text is tokenised with the tokenizer's special prefix and cut into consecutive windows of at
    most max_length tokens; inside a window every token but the first is predicted.
    """
    pad_id, device = pad_token_id(tokenizer), model_device(model)
    windows = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        windows += [ids[i:i + max_length] for i in range(0, len(ids), max_length) if len(ids[i:i + max_length]) > 1]
    total_nll, n_tokens = 0.0, 0
    for start in range(0, len(windows), batch_size):
        input_ids, attention_mask = right_pad(windows[start:start + batch_size], pad_id)
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        for row in range(len(input_ids)):  # row by row: a float32 copy of [T, V] logits, not [B, T, V]
            n = int(attention_mask[row].sum())
            targets = input_ids[row, 1:n].to(logits.device)
            total_nll += float(F.cross_entropy(logits[row, :n - 1].float(), targets, reduction="sum"))
            n_tokens += n - 1
    if n_tokens == 0:
        raise ValueError("perplexity needs at least one text of two or more tokens")
    return math.exp(total_nll / n_tokens), n_tokens
