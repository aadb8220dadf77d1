"""Token batches: encode samples once, group by length (less padding), pad per batch on either side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from sftscope.tokenization import encode_text


@dataclass
class EncodedSample:
    id: str
    input_ids: list[int]
    truncated: bool


@dataclass
class TokenBatch:
    """input_ids / attention_mask: [B, T]; sample_ids: the B samples in order."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    sample_ids: list[str]

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())


def encode_texts(ids: Sequence[str], texts: Sequence[str], tokenizer, max_length: int | None) -> list[EncodedSample]:
    """Tokenize each text once by `sftscope.tokenization.encode_text` (the tokenizer's BOS exactly once, also for
    a rendered chat template that already carries it); cut at max_length, flag the cut."""
    out = []
    for sample_id, text in zip(ids, texts):
        tokens = encode_text(tokenizer, text)
        cut = max_length is not None and len(tokens) > max_length
        out.append(EncodedSample(sample_id, tokens[:max_length] if cut else tokens, cut))
    return out


def make_batches(samples: Sequence[EncodedSample], batch_size: int, pad_id: int, padding_side: str = "right",
                 sort_by_length: bool = True) -> Iterator[TokenBatch]:
    """Yield padded batches; sorting by length keeps padding (wasted compute) small."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be left or right, got {padding_side!r}")
    order = sorted(samples, key=lambda s: len(s.input_ids)) if sort_by_length else list(samples)
    for start in range(0, len(order), batch_size):
        chunk = [s for s in order[start:start + batch_size] if s.input_ids]
        if not chunk:
            continue
        width = max(len(s.input_ids) for s in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, s in enumerate(chunk):
            n = len(s.input_ids)
            sl = slice(0, n) if padding_side == "right" else slice(width - n, width)
            ids[row, sl] = torch.tensor(s.input_ids)
            mask[row, sl] = 1
        yield TokenBatch(ids, mask, [s.id for s in chunk])
