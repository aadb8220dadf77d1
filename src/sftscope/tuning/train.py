"""One tuning cell: adapt the chosen blocks (budget-matched LoRA or full blocks), train with accelerate.

The loop is explicit and driven by accelerate.Accelerator, so the same code runs on CPU, one GPU, or under
`accelerate launch --config_file examples/accelerate_fsdp.yaml` (FSDP) or DeepSpeed unchanged: model, optimizer
and data loader go through ONE prepare call, as FSDP2 and DeepSpeed require.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from sftscope.errors import SftscopeError
from sftscope.results.schema import Row
from sftscope.runtime import set_seed
from sftscope.tuning.adapters import attach_lora
from sftscope.tuning.blocks import BlockSpec
from sftscope.tuning.budget import RankPlan, lora_reference_count, match_budget
from sftscope.tuning.config import TrainConfig
from sftscope.tuning.full_blocks import FullBlockPlan, plan_full_blocks, unfreeze_blocks
from sftscope.tuning.modules import ALL_LINEAR, count_trainable, find_target_modules, num_layers_of
from sftscope.tuning.sequences import collate, encode_records, pad_id_of


@dataclass
class AdaptedModel:
    """A model ready to train: the (PEFT-wrapped or partly unfrozen) model, its blocks and budget record."""

    model: nn.Module
    layers: tuple[int, ...]
    plan: dict
    reference_count: int
    trainable_count: int


def targets_of(config: TrainConfig) -> tuple[str, ...] | str:
    """The config's target modules as `find_target_modules` reads them (`all-linear` alone is a keyword)."""
    targets = tuple(config.target_modules)
    return ALL_LINEAR if targets == (ALL_LINEAR,) else targets


def plan_adaptation(model: nn.Module, config: TrainConfig) -> tuple[RankPlan | FullBlockPlan, int]:
    """(the budget-matched LoRA ranks or full-block plan, the reference count) for `model`, changing nothing.

    Works on a weightless meta-device model (`meta_model_from_config`), so a block spec, target modules or a
    budget that do not fit the model fail before any weight loads.

    Raises:
        SftscopeError: the blocks, targets or budget do not fit the model.
    """
    num_layers = num_layers_of(model)
    targets = targets_of(config)
    reference = lora_reference_count(find_target_modules(model, targets), config.rank)
    spec = BlockSpec.parse(config.blocks)
    if config.method == "lora":
        selection = spec.resolve(num_layers, config.seed)
        return match_budget(model, selection, targets, config.rank, reference, config.budget_tolerance), reference
    where = spec.text if spec.is_position else spec.resolve(num_layers, config.seed)
    return plan_full_blocks(model, where, reference, config.full_scope, targets, config.seed), reference


def adapt_model(model: nn.Module, config: TrainConfig) -> AdaptedModel:
    """Attach the budget-matched LoRA (verified) or unfreeze the budget-matched full blocks of `model`."""
    plan, reference = plan_adaptation(model, config)
    if isinstance(plan, RankPlan):
        wrapped, check = attach_lora(model, plan, config.alpha, config.alpha_policy, config.lora_dropout,
                                     seed=config.seed)
        return AdaptedModel(wrapped, plan.layers, plan.summary(), reference, check.trainable_count)
    trainable = unfreeze_blocks(model, plan)
    return AdaptedModel(model, plan.layers, plan.summary(), reference, trainable)


@dataclass
class TrainResult:
    """Outcome of train_cell; `model` is the trained (unwrapped) model, ready for evaluation."""

    model: nn.Module = field(repr=False)
    config: TrainConfig
    layers: tuple[int, ...]
    plan: dict
    reference_count: int
    trainable_count: int
    loss_curve: list[float]          # mean training loss of each optimizer step
    steps: int
    n_records: int
    n_examples: int
    n_truncated: int
    n_dropped: int
    completion_tokens: int           # supervised tokens seen by this process
    wall_time_s: float

    @property
    def budget_rel_error(self) -> float:
        return (self.trainable_count - self.reference_count) / self.reference_count

    def rows(self, run: str = "", dataset: str = "train") -> list[Row]:
        """Tidy rows: train_loss per step, and one row each for the budget and data counts (layer -1)."""
        tags = {"method": self.config.method, "blocks": self.config.blocks, "seed": self.config.seed,
                "alpha_policy": self.config.alpha_policy}

        def row(metric, value, n=1, **more):
            return Row(side="tuned", dataset=dataset, layer=-1, metric=metric, value=float(value), n=n, run=run,
                       extra={**tags, **more})
        out = [row("train_loss", loss, step=i + 1) for i, loss in enumerate(self.loss_curve)]
        out += [row("trainable_params", self.trainable_count), row("reference_params", self.reference_count),
                row("budget_rel_error", self.budget_rel_error), row("train_truncated", self.n_truncated, self.n_records),
                row("train_dropped", self.n_dropped, self.n_records), row("train_wall_time_s", self.wall_time_s)]
        return out


def _loader(examples, config: TrainConfig, pad_id: int):
    generator = torch.Generator().manual_seed(config.seed)  # data order depends on the seed only
    return torch.utils.data.DataLoader(examples, batch_size=config.batch_size, shuffle=True, generator=generator,
                                       collate_fn=lambda batch: collate(batch, pad_id))


def _windows(loader, size: int):
    """The loader's micro-batches in groups of `size` (one optimizer step each; the epoch's last may be shorter)."""
    window = []
    for batch in loader:
        window.append(batch)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def supervised_tokens(batch: dict) -> torch.Tensor:
    """Tokens whose prediction is scored in a causal-LM batch: labels[:, 1:] != IGNORE_INDEX (0-d int64)."""
    return (batch["labels"][:, 1:] != -100).sum()


def micro_batch_loss(model, batch: dict, num_items: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(the loss to back-propagate, its summed token NLL) of one micro-batch.

    The loss is transformers' causal-LM loss (`ForCausalLMLoss`): with `num_items` it is the summed NLL / the
    supervised tokens of the whole optimizer step (every micro-batch, every rank), so micro-batches weigh by their
    tokens as in one big batch; without it, the micro-batch's token mean (the same number when the step is one
    micro-batch on one process, bit for bit as the model's own loss)."""
    from transformers.loss.loss_utils import ForCausalLMLoss

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    vocab = logits.shape[-1]
    if num_items is None:
        loss = ForCausalLMLoss(logits, batch["labels"], vocab)
        return loss, loss.detach().double() * supervised_tokens(batch).to(loss.device)
    total = ForCausalLMLoss(logits, batch["labels"], vocab, num_items_in_batch=1)  # reduction "sum", / 1
    return total / num_items, total.detach()


def accumulate_gradients(model, window: list[dict], accelerator) -> tuple[float, int]:
    """Back-propagate one optimizer step's micro-batches (this rank's) into the parameters' .grad.

    Returns (the step's loss: mean NLL over every supervised token of the global batch, this rank's supervised
    tokens). The gradient is that of the same mean, whatever the split into micro-batches and ranks."""
    ranks = accelerator.num_processes
    local = sum(supervised_tokens(b) for b in window).to(accelerator.device)
    count = accelerator.reduce(local, reduction="sum")  # supervised tokens of the global batch
    # one micro-batch on one process: the model's own token-mean loss, bit for bit
    num_items = None if len(window) == 1 and ranks == 1 else count.clamp_min(1)
    nll = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    for i, batch in enumerate(window):
        sync = i == len(window) - 1  # gradients are exchanged once per step
        with contextlib.nullcontext() if sync else accelerator.no_sync(model):
            loss, total = micro_batch_loss(model, batch, num_items)
            # DDP and FSDP average gradients over ranks: scale back up to the global sum / global count
            accelerator.backward(loss * ranks if num_items is not None else loss)
        nll += total.double()
    return float(accelerator.reduce(nll, reduction="sum") / count.clamp_min(1)), int(local)


def train_cell(model: nn.Module, tokenizer, records, config: TrainConfig, progress: bool = True,
               accelerator=None) -> TrainResult:
    """Adapt `model` per `config`, train on prompt-completion `records` (loss on completions), return results.

    The loss of an optimizer step is the mean NLL over every supervised token of the global batch (all
    `grad_accum` micro-batches of all ranks): micro-batch losses are summed and divided by that count, and
    multiplied by the number of processes because DDP / FSDP average gradients over ranks. So batch 2 x accum 1,
    batch 1 x accum 2 and 2 ranks x batch 1 take the same step (tested).

    Raises:
        SftscopeError: the blocks, targets or budget do not fit the model, or nothing is trainable.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    from sftscope import distributed

    start = time.perf_counter()
    set_seed(config.seed)
    distributed.state()  # the process group before accelerate's state: a CPU launch joins as gloo, not N copies
    data = encode_records(tokenizer, records, config.max_length, chat_template=config.chat_template)
    adapted = adapt_model(model, config)
    model = adapted.model
    if getattr(model, "config", None) is not None:
        model.config.use_cache = False  # no KV cache while training
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise SftscopeError("nothing to train: no parameter requires grad after adapting the model")
    # accumulation is done here (token-weighted), not by accelerate (which weighs micro-batches equally)
    accelerator = accelerator or Accelerator(mixed_precision=config.mixed_precision)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    loader = _loader(data.examples, config, pad_id_of(tokenizer))
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = math.ceil(len(loader) / config.grad_accum)
    total_steps = config.max_steps or config.epochs * steps_per_epoch
    # Stepped by hand once per optimizer step (not prepared), so its length is in optimizer steps on any setup.
    scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=int(config.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    model.train()
    loss_curve, step, tokens = [], 0, 0
    bar = tqdm(total=total_steps, desc=f"tune {config.method} {config.blocks}",
               disable=not (progress and accelerator.is_main_process))
    while step < total_steps:
        for window in _windows(loader, config.grad_accum):
            mean_loss, local = accumulate_gradients(model, window, accelerator)
            if config.max_grad_norm is not None:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
            step += 1
            tokens += local
            loss_curve.append(mean_loss)
            bar.update(1)
            if step % config.log_every == 0 or step == total_steps:
                bar.set_postfix(loss=f"{loss_curve[-1]:.4f}")
            if step >= total_steps:
                break
    bar.close()
    model = accelerator.unwrap_model(model)
    model.eval()
    accelerator.free_memory()
    return TrainResult(model=model, config=config, layers=adapted.layers, plan=adapted.plan,
                       reference_count=adapted.reference_count, trainable_count=count_trainable(model),
                       loss_curve=loss_curve, steps=step, n_records=data.n_records, n_examples=len(data.examples),
                       n_truncated=data.n_truncated, n_dropped=data.n_dropped, completion_tokens=tokens,
                       wall_time_s=time.perf_counter() - start)
