"""One tuning cell: adapt the chosen blocks (budget-matched LoRA or full blocks), train with accelerate.

The loop is explicit and driven by accelerate.Accelerator, so the same code runs on CPU, one GPU, or under
`accelerate launch --config_file examples/accelerate_fsdp.yaml` (FSDP) or DeepSpeed unchanged: model, optimizer
and data loader go through ONE prepare call, as FSDP2 and DeepSpeed require.
"""

from __future__ import annotations

import warnings

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
from sftscope.tuning.budget import lora_reference_count, match_budget
from sftscope.tuning.config import TrainConfig
from sftscope.tuning.full_blocks import plan_full_blocks, unfreeze_blocks
from sftscope.tuning.modules import ALL_LINEAR, count_trainable, find_target_modules, num_layers_of
from sftscope.tuning.sequences import collate, encode_records, pad_id_of

# transformers 5 warns on every training run about its own deprecated attribute; nothing to act on here.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


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


def adapt_model(model: nn.Module, config: TrainConfig) -> AdaptedModel:
    """Attach the budget-matched LoRA (verified) or unfreeze the budget-matched full blocks of `model`."""
    num_layers = num_layers_of(model)
    targets = targets_of(config)
    reference = lora_reference_count(find_target_modules(model, targets), config.rank)
    spec = BlockSpec.parse(config.blocks)
    if config.method == "lora":
        selection = spec.resolve(num_layers, config.seed)
        plan = match_budget(model, selection, targets, config.rank, reference, config.budget_tolerance)
        wrapped, check = attach_lora(model, plan, config.alpha, config.alpha_policy, config.lora_dropout,
                                     seed=config.seed)
        return AdaptedModel(wrapped, selection.layers, plan.summary(), reference, check.trainable_count)
    where = spec.text if spec.is_position else spec.resolve(num_layers, config.seed)
    full = plan_full_blocks(model, where, reference, config.full_scope, targets, config.seed)
    trainable = unfreeze_blocks(model, full)
    return AdaptedModel(model, full.layers, full.summary(), reference, trainable)


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


def train_cell(model: nn.Module, tokenizer, records, config: TrainConfig, progress: bool = True,
               accelerator=None) -> TrainResult:
    """Adapt `model` per `config`, train on prompt-completion `records` (loss on completions), return results."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    start = time.perf_counter()
    set_seed(config.seed)
    data = encode_records(tokenizer, records, config.max_length, chat_template=config.chat_template)
    adapted = adapt_model(model, config)
    model = adapted.model
    if getattr(model, "config", None) is not None:
        model.config.use_cache = False  # no KV cache while training
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise SftscopeError("nothing to train: no parameter requires grad after adapting the model")
    accelerator = accelerator or Accelerator(gradient_accumulation_steps=config.grad_accum,
                                             mixed_precision=config.mixed_precision)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    loader = _loader(data.examples, config, pad_id_of(tokenizer))
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = math.ceil(len(loader) / config.grad_accum)
    total_steps = config.max_steps or config.epochs * steps_per_epoch
    # Stepped by hand once per optimizer step (not prepared), so its length is in optimizer steps on any setup.
    scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=int(config.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    model.train()
    loss_curve, micro_losses, step, tokens = [], [], 0, 0
    bar = tqdm(total=total_steps, desc=f"tune {config.method} {config.blocks}",
               disable=not (progress and accelerator.is_local_main_process))
    while step < total_steps:
        for batch in loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            micro_losses.append(loss.detach().float())
            tokens += int((batch["labels"][:, 1:] != -100).sum())
            if accelerator.sync_gradients:
                scheduler.step()
                step += 1
                step_loss = accelerator.reduce(torch.stack(micro_losses).mean(), reduction="mean")
                loss_curve.append(float(step_loss))
                micro_losses = []
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
