"""`weight_change`: Base-vs-fine-tuned weight distances per tensor, per module and per block, as tidy rows.

Metrics (value column; n = number of compared parameters):
  weight_delta_fro     ||W_sft - W_base||_F of one tensor (or one part of a fused tensor)
  weight_delta_rel     weight_delta_fro / ||W_base||_F
  attn_qkvo_delta_fro  per block: sum of the Frobenius distances of the q, k, v, o weight matrices (the paper's
                       per-layer attention change; biases excluded); each part of a fused tensor (GPT-2 c_attn,
                       GPT-NeoX query_key_value, Phi-3 qkv_proj) is one matrix
  attn_qkvo_delta_rel  attn_qkvo_delta_fro / (sum of the four ||W_base||_F): the ratio of the reported sum
  mlp_delta_fro/_rel   the same over the gate, up, down weight matrices (fused gate_up parts and every expert's
                       matrices of a mixture of experts included; the router excluded)
  block_delta_fro/_rel every parameter of the block as one vector: sqrt(sum ||dW||_F^2) / sqrt(sum ||W_base||_F^2)
Layers: 0 = embeddings, l = block l (1..L, the block whose output is representation layer l), L+1 = final
norm and LM head, -1 = other tensors.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import torch

from sftscope.results.schema import MODE_ALIGNMENT, Row
from sftscope.weights.diff import _Entry, compare_sources, relative
from sftscope.weights.naming import ATTN_ROLES, MLP_ROLES
from sftscope.weights.sources import open_source

ModelRef = str | Path | torch.nn.Module | Mapping[str, torch.Tensor]


def weight_change(base: ModelRef, sft: ModelRef, revision: str | None | tuple[str | None, str | None] = None,
                  progress: bool = True, side: str = "sft", strict: bool = True,
                  chunk_elements: int = 2**20) -> list[Row]:
    """Rows of Frobenius weight distances between two checkpoints of one architecture, streamed tensor by tensor.

    `base`/`sft`: a local directory or weight file, a Hugging Face hub id, an nn.Module (named_parameters;
    merge LoRA first) or a state dict. `revision`: one hub revision for both, or (base_rev, sft_rev).
    `side`: the variant name written to the rows (sft, dpo, ...). `strict`: unmatched tensor names raise
    SftscopeError (else they are skipped with a warning). Peak memory is about two float64 chunks of
    `chunk_elements` values (8 MiB each by default) plus the raw chunks, whatever the model size.
    Layers: 0 = embeddings, l = block l (l = 1..L; block l's output is representation layer l),
    L + 1 = final norm and LM head, -1 = anything else.
    """
    base_rev, sft_rev = revision if isinstance(revision, tuple) else (revision, revision)
    base_src, sft_src = open_source(base, base_rev), open_source(sft, sft_rev)
    entries, n_blocks = compare_sources(base_src, sft_src, progress, strict, chunk_elements)
    rows = [make(e, n_blocks, side) for e in entries for make in (_fro_row, _rel_row)]
    for block in range(n_blocks):
        in_block = [e for e in entries if e.role.block == block]
        rows += _block_rows(in_block, block + 1, side)
    return sorted(rows, key=lambda r: (r.layer if r.layer >= 0 else n_blocks + 2, r.extra["module"], r.extra["param"], r.metric))


def layer_of(entry: _Entry, n_blocks: int) -> int:
    """Row layer of a tensor: 0 embeddings, block index + 1, n_blocks + 1 final norm/head, -1 other."""
    if entry.role.block is not None:
        return entry.role.block + 1
    return {"embedding": 0, "final": n_blocks + 1}.get(entry.role.region, -1)


def _extra(module: str, param: str, tensor: str, numel: int, base_norm: float, region: str, note: str) -> dict:
    return {"module": module, "param": param, "tensor": tensor, "numel": numel, "base_norm": base_norm,
            "region": region, "note": note}


def _fro_row(e: _Entry, n_blocks: int, side: str) -> Row:
    return Row(side=side, dataset="", layer=layer_of(e, n_blocks), metric="weight_delta_fro", value=e.dist.fro,
               n=e.dist.numel, mode=MODE_ALIGNMENT, extra=_extra(e.module, e.role.param, e.tensor,
               e.dist.numel, e.dist.base_norm, e.role.region, e.note))


def _rel_row(e: _Entry, n_blocks: int, side: str) -> Row:
    row = _fro_row(e, n_blocks, side)
    row.metric, row.value = "weight_delta_rel", relative(e.dist.fro, e.dist.base_norm)
    return row


def _block_rows(entries: list[_Entry], layer: int, side: str) -> list[Row]:
    """Per-block sums: attention q,k,v,o and MLP weight matrices (sum of norms), whole block (one vector).

    A matrix counts in a sum when every role it holds belongs to the group: every part of a split fused tensor
    and every expert's matrix is one matrix; a fused tensor left unsplit counts as one (with a note)."""
    rows: list[Row] = []
    for name, roles in (("attn_qkvo", ATTN_ROLES), ("mlp", MLP_ROLES)):
        chosen = [e for e in entries if e.roles and set(e.roles) <= set(roles) and e.role.param == "weight"]
        if not chosen:
            continue
        delta = sum(e.dist.fro for e in chosen)
        base = sum(e.dist.base_norm for e in chosen)
        numel = sum(e.dist.numel for e in chosen)
        fused = sorted({e.module for e in chosen if len(e.roles) > 1})
        note = f"fused {', '.join(fused)} counted as one matrix" if fused else ""
        extra = _extra(name, "weight", ",".join(sorted({e.tensor for e in chosen})), numel, base, "block", note)
        rows.append(Row(side, "", layer, f"{name}_delta_fro", delta, numel, mode=MODE_ALIGNMENT, extra=extra))
        rows.append(Row(side, "", layer, f"{name}_delta_rel", relative(delta, base), numel, mode=MODE_ALIGNMENT,
                        extra=dict(extra)))
    if entries:
        delta = math.sqrt(sum(e.dist.delta_sq for e in entries))
        base = math.sqrt(sum(e.dist.base_sq for e in entries))
        numel = sum(e.dist.numel for e in entries)
        extra = _extra("block", "all", "", numel, base, "block", "")
        rows.append(Row(side, "", layer, "block_delta_fro", delta, numel, mode=MODE_ALIGNMENT, extra=extra))
        rows.append(Row(side, "", layer, "block_delta_rel", relative(delta, base), numel, mode=MODE_ALIGNMENT,
                        extra=dict(extra)))
    return rows


def weight_change_frame(rows: list[Row]) -> Any:
    """The rows as a pandas DataFrame (core columns first, then module, param, tensor, numel, ...)."""
    from sftscope.results.rundir import rows_to_frame

    return rows_to_frame(rows)
