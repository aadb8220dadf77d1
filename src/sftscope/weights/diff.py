"""Streaming Base-vs-fine-tuned weight distances, one tensor (and one row chunk) at a time.

Layer convention of the rows (matches the representation tables, METRICS.md): layer 0 = embeddings
(token and position), layer l = block l for l = 1..L (block index l-1 in the tensor names; the representation
at layer l is the output of block l), layer L+1 = final norm and LM head, layer -1 = any other tensor.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from sftscope.errors import SftscopeError
from sftscope.weights.naming import Split, TensorRole, canonical_name, classify, is_buffer
from sftscope.weights.sources import RowReader, TensorSource

_HEAD_KEYS = ("lm_head.weight", "embed_out.weight")
_EMBED_KEYS = ("embed_tokens.weight", "wte.weight", "embed_in.weight")


@dataclass
class Distance:
    """Sums of squares of one tensor (part): ||W_sft - W_base||_F^2 and ||W_base||_F^2, over numel entries."""

    delta_sq: float = 0.0
    base_sq: float = 0.0
    numel: int = 0

    @property
    def fro(self) -> float:
        return math.sqrt(self.delta_sq)

    @property
    def base_norm(self) -> float:
        return math.sqrt(self.base_sq)


def relative(delta: float, base: float) -> float:
    """delta / base, with 0/0 = 0 and x/0 = inf (a change of a zero tensor), never NaN."""
    if base > 0:
        return delta / base
    return 0.0 if delta == 0 else math.inf


def tensor_distance(base: RowReader, sft: RowReader, shape: tuple[int, ...], split: Split | None = None,
                    chunk_elements: int = 2**20) -> dict[str, Distance]:
    """Distances of one tensor of `shape`, read in row chunks of about `chunk_elements`; one entry per split part.

    The difference is taken in float64 after upcasting each chunk (exact for float32/bf16/fp16 storage), so
    a tensor against itself gives exactly 0 and mixed storage dtypes compare by value.
    """
    rows = shape[0] if shape else 1
    per_row = math.prod(shape[1:]) if len(shape) > 1 else 1
    step = max(1, chunk_elements // max(per_row, 1))
    parts = split.parts if split else ("",)
    delta_sq = torch.zeros(len(parts), dtype=torch.float64)
    base_sq = torch.zeros(len(parts), dtype=torch.float64)
    numel = torch.zeros(len(parts), dtype=torch.long)
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        # copy=True: the in-place ops below must never touch a caller's (already float64) tensor
        x = base(start, stop).to(torch.float64, copy=True).reshape(stop - start, -1)
        y = sft(start, stop).to(device=x.device, dtype=torch.float64, copy=True).reshape(stop - start, -1)
        d = y.sub_(x)  # in place: two float64 chunks alive at a time
        if split is None:  # a dot product is one pass with no squared temporary
            ids, counts = torch.zeros(1, dtype=torch.long), torch.tensor([d.numel()])
            d2 = torch.dot(d.view(-1), d.view(-1)).reshape(1)
            b2 = torch.dot(x.view(-1), x.view(-1)).reshape(1)
        elif split.axis == 0:  # parts interleave along rows (GPT-NeoX per-head qkv, 1-D biases)
            ids = split.part_ids(start, stop)
            d2, b2 = d.square_().sum(1), x.square_().sum(1)
            counts = torch.full((stop - start,), x.shape[1], dtype=torch.long)
        else:  # parts are column blocks (GPT-2 Conv1D [in, 3*out])
            ids = split.part_ids(0, x.shape[1])
            d2, b2 = d.square_().sum(0), x.square_().sum(0)
            counts = torch.full((x.shape[1],), stop - start, dtype=torch.long)
        delta_sq.index_add_(0, ids, d2.cpu())
        base_sq.index_add_(0, ids, b2.cpu())
        numel.index_add_(0, ids, counts)
    return {p: Distance(float(delta_sq[i]), float(base_sq[i]), int(numel[i])) for i, p in enumerate(parts)}


@dataclass
class _Entry:
    """One compared tensor part with its place in the model."""

    role: TensorRole
    module: str
    tensor: str
    dist: Distance
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _canonical_map(source: TensorSource) -> tuple[dict[str, str], str]:
    """canonical name -> stored name (buffers dropped), with the LM head aliased to a tied embedding."""
    mapping: dict[str, str] = {}
    for name in source.names:
        if not is_buffer(name):
            mapping.setdefault(canonical_name(name), name)
    note = ""
    if not any(k in mapping for k in _HEAD_KEYS):
        embed = next((k for k in _EMBED_KEYS if k in mapping), None)
        if embed is not None:
            head = "embed_out.weight" if embed == "embed_in.weight" else "lm_head.weight"
            mapping[head] = mapping[embed]
            note = f"tied: {{side}} stores no LM head; its token embedding {mapping[embed]} stands in"
    return mapping, note


def _pair_names(base: TensorSource, sft: TensorSource, strict: bool) -> tuple[list[tuple[str, str, str]], dict]:
    """Matched (canonical, base name, sft name) triples in base file order, and head-tying notes."""
    base_map, base_note = _canonical_map(base)
    sft_map, sft_note = _canonical_map(sft)
    only_base = sorted(set(base_map) - set(sft_map))
    only_sft = sorted(set(sft_map) - set(base_map))
    if only_base or only_sft:
        msg = "; ".join(f"{len(names)} tensor(s) only in {label} {src.description} "
                        f"(e.g. {', '.join(mapping[n] for n in names[:5])})"
                        for names, src, label, mapping in ((only_base, base, "Base", base_map),
                                                          (only_sft, sft, "fine-tuned", sft_map)) if names)
        if strict:
            raise SftscopeError(f"Base and fine-tuned checkpoints hold different tensors: {msg}")
        warnings.warn(f"skipping unmatched tensors: {msg}", stacklevel=3)
    pairs = [(c, base_map[c], sft_map[c]) for c in base_map if c in sft_map]
    for canon, b, s in pairs:
        if base.shapes[b] != sft.shapes[s]:
            hint = " (a resized vocabulary?)" if canon in _HEAD_KEYS + _EMBED_KEYS else ""
            raise SftscopeError(f"shape mismatch for tensor {b}: Base {list(base.shapes[b])} vs fine-tuned "
                                f"{list(sft.shapes[s])}{hint}")
    notes = [n.format(side=side) for n, side in ((base_note, "Base"), (sft_note, "fine-tuned")) if n]
    head_notes = {k: "; ".join(notes) for k in _HEAD_KEYS}
    return pairs, head_notes


def compare_sources(base: TensorSource, sft: TensorSource, progress: bool = True, strict: bool = True,
                    chunk_elements: int = 2**20) -> tuple[list[_Entry], int]:
    """Every matched tensor part's Distance, and the number of blocks L (from the Base tensor names)."""
    pairs, head_notes = _pair_names(base, sft, strict)
    config = base.config or sft.config
    entries: list[_Entry] = []
    for canon, b, s in tqdm(pairs, desc="weights", unit="tensor", disable=not progress):
        role = classify(canon, base.shapes[b], config)  # canonical: a tied head classifies as the head
        with base.open(b) as read_base, sft.open(s) as read_sft:
            parts = tensor_distance(read_base, read_sft, base.shapes[b], role.split, chunk_elements)
        note = "; ".join(n for n in (role.note, head_notes.get(canon, "")) if n)
        for part, dist in parts.items():
            entries.append(_Entry(role, part or role.module, b, dist, note))
    blocks = [e.role.block for e in entries if e.role.block is not None]
    if not blocks:
        raise SftscopeError(f"no transformer blocks recognised in the tensor names of {base.description} "
                            f"(e.g. {', '.join(base.names[:3])})")
    return entries, max(blocks) + 1
