"""Prompt-completion tokenisation with completion-only labels: the one place SFT examples become tensors.

Used by the organism's SFT stage and by sftscope's tuning code, so both train on exactly the same format.
The prompt and the completion are encoded separately and concatenated (whitespace at the prompt's end is
moved onto the completion), so the completion's tokens are the same ones `continuation_logprobs` scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE_INDEX = -100  # label value that torch's cross-entropy (and every HF causal LM loss) skips


def split_trailing_space(prompt: str, completion: str) -> tuple[str, str]:
    """Move whitespace at the end of the prompt to the start of the completion ('Q: x ' + 'y' -> 'Q: x' + ' y')."""
    stripped = prompt.rstrip(" ")
    return stripped, prompt[len(stripped):] + completion


def encode_context_continuation(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of context (with the tokenizer's special prefix, e.g. BOS) and of continuation (none)."""
    context, continuation = split_trailing_space(context, continuation)
    context_ids = tokenizer(context, add_special_tokens=True)["input_ids"]
    continuation_ids = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    if not context_ids:  # nothing to condition on: the first continuation token needs a left neighbour
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        context_ids = [start]
    return list(context_ids), list(continuation_ids)


@dataclass
class SFTExample:
    """One tokenised example: input_ids [T], labels [T] (IGNORE_INDEX on the prompt), prompt_length."""

    input_ids: list[int]
    labels: list[int]
    prompt_length: int


def tokenize_prompt_completion(tokenizer, prompt: str, completion: str, max_length: int | None = None,
                               add_eos: bool = True) -> SFTExample:
    """Tokenise prompt+completion; labels copy the completion ids (+EOS) and mask the prompt with -100.

    Truncation drops tokens from the left of the prompt, so the completion (what is learned) survives.
    """
    prompt_ids, completion_ids = encode_context_continuation(tokenizer, prompt, completion)
    if add_eos and tokenizer.eos_token_id is not None:
        completion_ids = completion_ids + [tokenizer.eos_token_id]
    if max_length is not None and len(prompt_ids) + len(completion_ids) > max_length:
        keep_prompt = max(max_length - len(completion_ids), 1)
        prompt_ids = prompt_ids[-keep_prompt:]
        completion_ids = completion_ids[: max_length - len(prompt_ids)]
    input_ids = prompt_ids + completion_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + completion_ids
    return SFTExample(input_ids=input_ids, labels=labels, prompt_length=len(prompt_ids))


def collate_sft(examples: list[SFTExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of examples to input_ids/labels/attention_mask tensors of shape [B, T_max]."""
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
