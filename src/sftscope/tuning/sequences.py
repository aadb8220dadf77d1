"""Prompt-completion records -> token sequences with the loss on the completion only, answer never cut.

A record is {"prompt": str, "completion": str}. The ids are the tokens of the whole text prompt + completion
(BOS once), split at the prompt's boundary by `sftscope.tokenization.encode_pair`, the same function the
log-likelihood scoring uses, so the model is trained on exactly the tokens it is later scored on; EOS is
appended once (not when the completion already ends with it). With `chat_template`, the pair is the tokenizer's
chat conversation (user = prompt, assistant = completion; `encode_chat_pair`): the loss covers the assistant's
content and the template's end-of-turn marker, and no extra EOS is added. Used by `sftscope tune` and the
organism's SFT. When the pair is longer than max_length, the PROMPT loses tokens from its left (after its
leading special tokens); the completion, whose end holds the "#### N" answer, is never cut. If even the
completion plus one prompt token does not fit, the record is dropped and counted. Labels are -100 on prompt
and pad positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sftscope.errors import SftscopeError
from sftscope.tokenization import IGNORE_INDEX, encode_chat_pair, encode_pair, pad_token_id


@dataclass(frozen=True)
class EncodedExample:
    """input_ids [T] and labels [T] (prompt positions IGNORE_INDEX); T <= max_length."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    prompt_tokens: int
    truncated: bool


@dataclass
class EncodedSet:
    """Encoded records plus how many were prompt-truncated and which were dropped (and why)."""

    examples: list[EncodedExample]
    n_records: int
    n_truncated: int = 0
    dropped: dict[int, str] = field(default_factory=dict)

    @property
    def n_dropped(self) -> int:
        return len(self.dropped)


def _leading_specials(ids: list[int], special_ids: set[int]) -> int:
    n = 0
    while n < len(ids) and ids[n] in special_ids:
        n += 1
    return n


def encode_prompt_completion(tokenizer, prompt: str, completion: str, max_length: int,
                             add_eos: bool = True, chat_template: bool = False) -> EncodedExample | str:
    """One record -> EncodedExample, or a string saying why it must be dropped.

    Raises:
        SftscopeError: chat_template is set and the tokenizer has no usable chat template.
    """
    # the same token boundary the scoring code uses, so training and log-likelihood scoring agree
    pair = encode_chat_pair(tokenizer, prompt, completion) if chat_template else encode_pair(tokenizer, prompt,
                                                                                              completion)
    prompt_ids, completion_ids = list(pair.context), list(pair.continuation)
    eos = tokenizer.eos_token_id
    if add_eos and not chat_template and eos is not None and completion_ids[-1:] != [eos]:
        completion_ids.append(eos)
    if not completion_ids:
        return "empty completion"
    truncated = False
    if len(prompt_ids) + len(completion_ids) > max_length:
        lead = _leading_specials(prompt_ids, set(tokenizer.all_special_ids))
        room = max_length - len(completion_ids) - lead
        if room < 1 or lead + 1 > len(prompt_ids):
            # The first completion token needs a real prompt token before it to be predicted from.
            return f"completion of {len(completion_ids)} tokens does not fit max_length {max_length}"
        prompt_ids = prompt_ids[:lead] + prompt_ids[len(prompt_ids) - room:]
        truncated = True
    return EncodedExample(input_ids=tuple(prompt_ids + completion_ids),
                          labels=tuple([IGNORE_INDEX] * len(prompt_ids) + completion_ids),
                          prompt_tokens=len(prompt_ids), truncated=truncated)


def encode_records(tokenizer, records, max_length: int, add_eos: bool = True, chat_template: bool = False) -> EncodedSet:
    """Encode every record; count truncated prompts; drop (and count) records whose answer cannot fit.

    Raises:
        SftscopeError: a record without string prompt/completion fields, or every record dropped.
    """
    out = EncodedSet(examples=[], n_records=0)
    for i, rec in enumerate(records):
        out.n_records += 1
        if not isinstance(rec, dict) or not isinstance(rec.get("prompt"), str) \
                or not isinstance(rec.get("completion"), str):
            raise SftscopeError(f"training record {i} must be a dict with string 'prompt' and 'completion' "
                                f"fields; got {type(rec).__name__} with keys {sorted(rec) if isinstance(rec, dict) else '-'}")
        encoded = encode_prompt_completion(tokenizer, rec["prompt"], rec["completion"], max_length, add_eos,
                                           chat_template)
        if isinstance(encoded, str):
            out.dropped[i] = encoded
            continue
        out.n_truncated += encoded.truncated
        out.examples.append(encoded)
    if not out.examples:
        raise SftscopeError(f"all {out.n_records} training records were dropped (e.g. {next(iter(out.dropped.values()), 'no records')}); "
                            "raise max_length")
    return out


pad_id_of = pad_token_id  # the tokenizer's pad id, else its EOS id, else 0 (pad positions are masked out anyway)


def collate(examples: list[EncodedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest: input_ids, attention_mask, labels, each [B, T_max] int64."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
