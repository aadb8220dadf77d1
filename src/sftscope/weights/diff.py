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

    Keys: the split's part labels (`Split.labels`), or "" for an unsplit tensor. A row (index along axis 0)
    longer than `chunk_elements` (one expert of a stacked [E, out, in] tensor) is read whole in its storage
    dtype and compared `chunk_elements` values at a time. The difference is taken in float64 after upcasting
    each chunk (exact for float32/bf16/fp16 storage), so a tensor against itself gives exactly 0 and mixed
    storage dtypes compare by value.
    """
    rows = shape[0] if shape else 1
    per_row = math.prod(shape[1:]) if len(shape) > 1 else 1
    step = max(1, chunk_elements // max(per_row, 1))
    col_step = max(1, min(per_row, chunk_elements))
    labels = split.labels if split else ("",)
    delta_sq = torch.zeros(len(labels), dtype=torch.float64)
    base_sq = torch.zeros(len(labels), dtype=torch.float64)
    numel = torch.zeros(len(labels), dtype=torch.long)
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        raw_x, raw_y = base(start, stop).reshape(stop - start, -1), sft(start, stop).reshape(stop - start, -1)
        for col in range(0, per_row, col_step):
            cols = slice(col, min(per_row, col + col_step))
            # copy=True: the in-place ops below must never touch a caller's (already float64) tensor
            x = raw_x[:, cols].to(torch.float64, copy=True)
            y = raw_y[:, cols].to(device=x.device, dtype=torch.float64, copy=True)
            d = y.sub_(x)  # in place: two float64 chunks alive at a time
            ids, d2, b2, counts = _part_sums(d, x, split, shape, start, stop, cols)
            delta_sq.index_add_(0, ids, d2.cpu())
            base_sq.index_add_(0, ids, b2.cpu())
            numel.index_add_(0, ids, counts)
    return {p: Distance(float(delta_sq[i]), float(base_sq[i]), int(numel[i])) for i, p in enumerate(labels)}


def _part_sums(d: torch.Tensor, x: torch.Tensor, split: Split | None, shape: tuple[int, ...], start: int,
               stop: int, cols: slice) -> tuple[torch.Tensor, ...]:
    """(part ids, sum of d^2, sum of x^2, element counts) of one chunk d, x [rows, columns] (x, d overwritten).

    Rows are indices start..stop-1 along axis 0; columns the flattened trailing axes cols.start..cols.stop-1.
    """
    if split is None:  # a dot product is one pass with no squared temporary
        ids, counts = torch.zeros(1, dtype=torch.long), torch.tensor([d.numel()])
        return ids, torch.dot(d.view(-1), d.view(-1)).reshape(1), torch.dot(x.view(-1), x.view(-1)).reshape(1), counts
    if split.axis == 0:  # parts interleave along rows (GPT-NeoX per-head qkv, Phi-3 qkv_proj, 1-D biases)
        ids = split.part_ids(start, stop)
        counts = torch.full((stop - start,), x.shape[1], dtype=torch.long)
        return ids, d.square_().sum(1), x.square_().sum(1), counts
    # parts lie along a later axis: index along it of flattened column j is (j // inner) % shape[axis]
    inner = math.prod(shape[split.axis + 1:])
    col_ids = split.run_of(torch.arange(cols.start, cols.stop) // inner % shape[split.axis])
    if not split.experts:  # column blocks (GPT-2 Conv1D [in, 3*out])
        counts = torch.full((x.shape[1],), stop - start, dtype=torch.long)
        return col_ids, d.square_().sum(0), x.square_().sum(0), counts
    # stacked experts [E, out, in]: part = expert * len(parts) + run
    n = len(split.parts)
    def grouped(t: torch.Tensor) -> torch.Tensor:
        return torch.zeros(t.shape[0], n, dtype=t.dtype).index_add_(1, col_ids, t).reshape(-1)
    ids = (torch.arange(start, stop)[:, None] * n + torch.arange(n)).reshape(-1)
    counts = torch.bincount(col_ids, minlength=n).repeat(stop - start)
    return ids, grouped(d.square_()), grouped(x.square_()), counts


@dataclass
class _Entry:
    """One compared tensor part with its place in the model."""

    role: TensorRole
    module: str                 # row name: role, fused label, experts.{e}.{role}, norm name ...
    tensor: str
    dist: Distance
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    roles: tuple[str, ...] = ()  # projection roles this part holds (one for a split part)


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
        if role.split is None:
            entries.append(_Entry(role, role.label, b, parts[""], note, roles=role.roles))
        else:
            for label, part_role in zip(role.split.labels, role.split.label_roles):
                entries.append(_Entry(role, label, b, parts[label], note, roles=(part_role,)))
    blocks = [e.role.block for e in entries if e.role.block is not None]
    if not blocks:
        raise SftscopeError(f"no transformer blocks recognised in the tensor names of {base.description} "
                            f"(e.g. {', '.join(base.names[:3])})")
    return entries, max(blocks) + 1
