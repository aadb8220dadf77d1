"""The token boundary between a prompt (context) and its completion (continuation), shared by scoring and
training: encoded separately (whitespace at the prompt's end moved onto the completion), so the tokens a
model is trained on are the ones `continuation_logprobs` scores. Training sequences: sftscope.tuning.sequences.
"""

from __future__ import annotations

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
