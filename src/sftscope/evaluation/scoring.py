"""Model-agnostic scoring primitives for any HF causal LM: greedy generation, continuation log-probs, perplexity.

Text becomes ids only through `sftscope.tokenization` (the same ids training uses). All three primitives batch
their inputs and are pad-aware: generation pads on the left (so every prompt ends where generation starts),
scoring pads on the right (positions of real tokens are then unchanged). Inputs longer than the model's context
are cut from the left, as lm-evaluation-harness does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from transformers import StoppingCriteria, StoppingCriteriaList

from sftscope import distributed
from sftscope.tokenization import (decode_generated, document_ids, encode_pairs, encode_text, eos_token_ids,
                                   pad_token_id)

DEFAULT_MAX_LENGTH = 2048  # lm-eval's fallback when neither config nor tokenizer give a context length
_TOKENIZER_INFINITY = 10 ** 29  # transformers' "no limit" model_max_length is ~1e30


def model_device(model) -> torch.device:
    """Where inputs must go: the input embedding's device (its hook's execution device when accelerate placed
    or offloaded it), else the first parameter's."""
    from sftscope.models.placement import module_device
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return module_device(embeddings) if embeddings is not None else next(model.parameters()).device


def _my_batches(count: int) -> list[int]:
    """Indices of the batches this rank computes: a contiguous block of the batches one process would run, with
    the same composition (so every item's numbers equal the one-process run's)."""
    return list(range(*distributed.shard_bounds(count)))


def model_max_length(model, tokenizer=None) -> int:
    """Context length in tokens: the config's n_positions / max_position_embeddings / n_ctx, else the tokenizer's
    model_max_length, else 2048 (lm-eval's `resolve_max_length` order)."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if value is not None:
            return int(value)
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is not None and limit < _TOKENIZER_INFINITY:
        return int(limit)
    return DEFAULT_MAX_LENGTH


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
    """Text up to (not including) the earliest stop string (lm-eval's `postprocess_generated_text`)."""
    cut = min((text.find(s) for s in stop if s and s in text), default=len(text))
    return text[:cut]


class StopOnStrings(StoppingCriteria):
    """Ends each row of a batch once its decoded continuation contains a stop string.

    Works on decoded text, so it needs nothing from the tokenizer but `decode` (transformers' `stop_strings`
    indexes the vocabulary and fails on some tokenizer families). Rows stop independently: a finished row is
    padded while the others go on.
    """

    def __init__(self, tokenizer, stop: list[str], prompt_width: int, eos_ids: tuple[int, ...], batch_size: int):
        self.tokenizer, self.stop, self.prompt_width, self.eos_ids = tokenizer, stop, prompt_width, eos_ids
        self.done = [False] * batch_size

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.BoolTensor:
        new = input_ids[:, self.prompt_width:].tolist()
        for row, ids in enumerate(new):
            if not self.done[row]:
                text = decode_generated(self.tokenizer, ids, self.eos_ids)
                self.done[row] = any(s in text for s in self.stop)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


@torch.no_grad()
def greedy_generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 32,
                    stop: list[str] | None = None, batch_size: int = 16) -> list[str]:
    """Greedy completion of each prompt (prompt excluded), cut at the first stop string or EOS; len == len(prompts).

    The prompt is encoded by `encode_text` (BOS once) and cut from the left to the model's context length minus
    max_new_tokens; the continuation is decoded on its own with special tokens skipped (as lm-eval does).

    Raises:
        ValueError: max_new_tokens leaves no room for a prompt in the model's context.
    """
    stop = [s for s in (stop or []) if s]
    pad_id, device = pad_token_id(tokenizer), model_device(model)
    eos_ids = eos_token_ids(tokenizer, model)
    room = model_max_length(model, tokenizer) - max_new_tokens
    if room < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's context of "
                         f"{model_max_length(model, tokenizer)} tokens")
    encoded = [encode_text(tokenizer, p)[-room:] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))  # similar lengths share a batch
    outputs: dict[int, str] = {}
    starts = range(0, len(order), batch_size)
    for b in _my_batches(len(starts)):  # several processes: each generates its share of the batches
        rows = order[starts[b]:starts[b] + batch_size]
        input_ids, attention_mask = left_pad([encoded[i] for i in rows], pad_id)
        criteria = StoppingCriteriaList([StopOnStrings(tokenizer, stop, input_ids.shape[1], eos_ids, len(rows))]
                                        if stop else [])
        generated = model.generate(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
            do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, pad_token_id=pad_id,
            eos_token_id=list(eos_ids) or None, stopping_criteria=criteria,
        )
        new_tokens = generated[:, input_ids.shape[1]:].cpu()
        for row, i in enumerate(rows):
            outputs[i] = cut_at_stop(decode_generated(tokenizer, new_tokens[row].tolist(), eos_ids), stop)
    outputs = distributed.gather_dict(outputs)
    return [outputs.get(i, "") for i in range(len(prompts))]


@torch.no_grad()
def continuation_logprobs(model, tokenizer, contexts: list[str], continuations: list[str],
                          batch_size: int = 16) -> list[float]:
    """sum_t log p(continuation token t | context, earlier continuation tokens) in nats, per pair.

    Pairs are encoded by `encode_pair` (the whole text's tokens split at the context's boundary, as lm-eval);
    every continuation token is scored once. A pair longer than the model's context (+1) loses context tokens
    from the left. len(result) == len(contexts).

    Raises:
        ValueError: contexts and continuations differ in length.
    """
    pad_id, device = pad_token_id(tokenizer), model_device(model)
    limit = model_max_length(model, tokenizer) + 1
    pairs = encode_pairs(tokenizer, contexts, continuations)
    sequences = [p.ids[-limit:] for p in pairs]
    n_scored = [min(len(p.continuation), len(s) - 1) for p, s in zip(pairs, sequences)]
    order = sorted(range(len(pairs)), key=lambda i: -len(sequences[i]))
    scores: dict[int, float] = {}
    starts = range(0, len(order), batch_size)
    for b in _my_batches(len(starts)):  # several processes: each scores its share of the batches
        rows = [i for i in order[starts[b]:starts[b] + batch_size] if n_scored[i] > 0]
        if not rows:
            continue
        input_ids, attention_mask = right_pad([sequences[i][:-1] for i in rows], pad_id)
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        for row, i in enumerate(rows):
            n_input, n_cont = len(sequences[i]) - 1, n_scored[i]
            targets = torch.tensor(sequences[i][-n_cont:], device=logits.device)  # [n_cont]
            # logits at position t predict token t+1; normalise only the rows we need (vocab can be 150k)
            log_probs = F.log_softmax(logits[row, n_input - n_cont:n_input].float(), dim=-1)
            scores[i] = float(log_probs.gather(-1, targets[:, None]).sum())
    scores = distributed.gather_dict(scores)
    return [scores.get(i, 0.0) for i in range(len(pairs))]


def rolling_windows(ids: list[int], n_condition: int, max_length: int) -> list[tuple[list[int], int]]:
    """(window ids, n_scored) covering ids[n_condition:] once; a window holds at most max_length + 1 ids.

    A window's inputs are its ids but the last, its targets its ids but the first, and its last n_scored targets
    are scored. Window 1 starts at the conditioning tokens; later windows start one id before the first token not
    yet scored, so every token is predicted exactly once and from at least one token of context (lm-eval's
    rolling windows with context_len=1).
    """
    first = ids[:max_length + 1]
    windows = [(first, len(first) - n_condition)] if len(first) > n_condition else []
    scored_to = len(first)
    while scored_to < len(ids):
        window = ids[scored_to - 1:scored_to - 1 + max_length + 1]
        windows.append((window, len(window) - 1))
        scored_to += len(window) - 1
    return windows


@torch.no_grad()
def perplexity(model, tokenizer, texts: list[str], max_length: int = 1024,
               batch_size: int = 8) -> tuple[float, int]:
    """exp(mean NLL per scored token) over texts, and the number of scored tokens.

    Each text is encoded by `document_ids` (conditioned on BOS, or on lm-eval's prefix token when the tokenizer
    adds none) and every one of its tokens is scored once, in rolling windows of at most max_length inputs.

    Raises:
        ValueError: no text has a token to score.
    """
    pad_id, device = pad_token_id(tokenizer), model_device(model)
    windows = []
    for text in texts:
        ids, n_condition = document_ids(tokenizer, text)
        windows += rolling_windows(ids, n_condition, max_length)
    nll: dict[int, float] = {}  # per window, added up in window order below (the one-process sum, bit for bit)
    starts = range(0, len(windows), batch_size)
    for b in _my_batches(len(starts)):  # several processes: each scores its share of the windows
        start = starts[b]
        chunk = windows[start:start + batch_size]
        input_ids, attention_mask = right_pad([w[:-1] for w, _ in chunk], pad_id)
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        for row, (window, n) in enumerate(chunk):  # row by row: a float32 copy of [T, V] logits, not [B, T, V]
            n_inputs = len(window) - 1
            targets = torch.tensor(window[-n:], device=logits.device)
            nll[start + row] = float(F.cross_entropy(logits[row, n_inputs - n:n_inputs].float(), targets,
                                                     reduction="sum"))
    nll = distributed.gather_dict(nll)
    total_nll, n_tokens = 0.0, 0
    for index, (_, n) in enumerate(windows):
        total_nll += nll.get(index, 0.0)
        n_tokens += n
    if n_tokens == 0:
        raise ValueError("perplexity needs at least one text with a token to score")
    return math.exp(total_nll / n_tokens), n_tokens
