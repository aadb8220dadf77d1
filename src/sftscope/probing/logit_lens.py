"""Logit lens at every layer 0..L: the final norm and head applied (exactly once) to each residual stream.

Per layer and model: next-token accuracy and loss (padding masked, labels shifted by one), KL divergence
KL(p_final || p_layer) to the model's own output distribution, and top-1 agreement between Base and each
variant at the same layer and position. Memory is O(chunk x vocab): positions go through the head in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sftscope.capture.batches import TokenBatch
from sftscope.capture.hooks import capture
from sftscope.models.loading import LoadedModel


@dataclass
class LensTotals:
    """Running sums per layer for one model on one data set."""

    num_layers: int
    correct: torch.Tensor = None
    loss: torch.Tensor = None
    kl: torch.Tensor = None
    tokens: int = 0
    agree: dict[str, torch.Tensor] = field(default_factory=dict)  # variant -> matches per layer

    def __post_init__(self):
        self.correct = torch.zeros(self.num_layers, dtype=torch.float64)
        self.loss = torch.zeros(self.num_layers, dtype=torch.float64)
        self.kl = torch.zeros(self.num_layers, dtype=torch.float64)


def predicted_positions(batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions t whose next token t+1 is a real token: [B, T-1] bool, and the labels there."""
    mask = batch.attention_mask.bool()
    valid = mask[:, :-1] & mask[:, 1:]
    return valid, batch.input_ids[:, 1:][valid]


@torch.no_grad()
def lens_batch(loaded: LoadedModel, batch: TokenBatch, chunk: int = 256) -> tuple[torch.Tensor, ...]:
    """One forward pass; per layer: (correct [L+1], loss sum [L+1], kl sum [L+1], top-1 ids [L+1, N], N)."""
    valid, labels = predicted_positions(batch)
    states: dict[int, torch.Tensor] = {}

    def keep(layer, hidden, mask, ids):  # only positions that predict a real token: bounded by the batch
        states[layer] = hidden[:, :-1][valid.to(hidden.device)]

    capture(loaded, batch, keep)
    num_layers, n = len(states), int(labels.numel())
    correct = torch.zeros(num_layers, dtype=torch.float64)
    loss = torch.zeros(num_layers, dtype=torch.float64)
    kl = torch.zeros(num_layers, dtype=torch.float64)
    top1 = torch.empty(num_layers, n, dtype=torch.long)
    final = num_layers - 1
    head_device = loaded.parts.head_device
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        target = labels[sl].to(head_device)
        final_logp = torch.log_softmax(loaded.parts.logits_from_residual(states[final][sl]).float(), -1)
        for layer in range(num_layers):
            logp = final_logp if layer == final else torch.log_softmax(
                loaded.parts.logits_from_residual(states[layer][sl]).float(), -1)
            pred = logp.argmax(-1)
            top1[layer, sl] = pred.cpu()
            correct[layer] += (pred == target).sum().item()
            loss[layer] -= logp.gather(-1, target[:, None]).sum().double().item()
            kl[layer] += (final_logp.exp() * (final_logp - logp)).sum().double().item()
    return correct, loss, kl, top1, n


@torch.no_grad()
def next_token_stats(loaded: LoadedModel, batch: TokenBatch, chunk: int = 256) -> tuple[float, float, int]:
    """Teacher-forced (correct count, summed NLL, predicted tokens) of the model's own output distribution."""
    valid, labels = predicted_positions(batch)
    last: dict[str, torch.Tensor] = {}
    final_layer = loaded.parts.num_layers

    def keep(layer, hidden, mask, ids):
        if layer == final_layer:
            last["h"] = hidden[:, :-1][valid.to(hidden.device)]

    capture(loaded, batch, keep)
    correct, nll = 0.0, 0.0
    head_device = loaded.parts.head_device
    for start in range(0, labels.numel(), chunk):
        target = labels[start:start + chunk].to(head_device)
        logp = torch.log_softmax(loaded.parts.logits_from_residual(last["h"][start:start + chunk]).float(), -1)
        correct += (logp.argmax(-1) == target).sum().item()
        nll -= logp.gather(-1, target[:, None]).sum().item()
    return correct, nll, int(labels.numel())
