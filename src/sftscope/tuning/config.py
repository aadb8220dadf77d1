"""Configs of Mid-Block Efficient Tuning: one training run (`TrainConfig`), one cell (`TuneConfig`, `sftscope
tune`) and a sweep of cells (`SweepConfig`, `sftscope sweep`). The command lines are generated from the fields.

    TrainingOptions   LoRA / optimiser / schedule settings every cell of a sweep shares
    TrainConfig       + which blocks, which method, which seed: what `train_cell` needs
    CellOptions       TrainingOptions + the Base, training data, evaluation, retention, model loading
    TuneConfig        CellOptions + TrainConfig (+ where the Base's scores are cached, the cell's label)
    SweepConfig       CellOptions + masks x seeds x controls
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal, get_args

from sftscope.config import LoadConfig, PlotOptions, StageConfig, option
from sftscope.errors import SftscopeError
from sftscope.evaluation.config import TaskProtocolOptions
from sftscope.tuning.blocks import BlockSpec

Method = Literal["lora", "full"]
AlphaPolicy = Literal["constant-scale", "rslora", "fixed"]
FullScope = Literal["block", "targets"]
Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup"]
Precision = Literal["no", "bf16", "fp16"]
Control = Literal["lora-early", "lora-late", "lora-random", "lora-random-layers", "full-early", "full-middle",
                  "full-late", "full-random", "full-random-layers"]
METHODS, ALPHA_POLICIES, SCOPES = get_args(Method), get_args(AlphaPolicy), get_args(FullScope)
SCHEDULERS, PRECISIONS, CONTROLS = get_args(Scheduler), get_args(Precision), get_args(Control)
DEFAULT_TARGETS = ["default"]  # the architecture table's default LoRA targets: attention q, k, v, o
DEFAULT_CONTROLS = ["lora-early", "lora-late", "lora-random", "full-early", "full-middle", "full-late", "full-random"]
DEFAULT_TASKS = ["gsm8k"]
DEFAULT_RETENTION = ["ppl:ifeval", "ppl:mt_bench"]


@dataclass(kw_only=True)
class TrainingOptions(StageConfig):
    """Budget reference, LoRA, optimiser and schedule: the same for every cell of a sweep."""

    rank: int = option(8, "budget reference: LoRA of this rank on the target modules of every block")
    alpha: float = option(16.0, "LoRA alpha of the reference (see --alpha-policy)")
    alpha_policy: AlphaPolicy = option("constant-scale", "constant-scale: alpha/r fixed for every module and "
                                                         "mask; rslora: alpha/sqrt(r); fixed: the paper's alpha")
    target_modules: list[str] = option(factory=lambda: list(DEFAULT_TARGETS),
                                       help="modules adapted in each block: default (the architecture's q,k,v,o; "
                                            "sftscope ls architectures), roles (q_proj ... down_proj), groups "
                                            "(attention, mlp), paths inside the block (attn.c_proj), or all-linear")
    lora_dropout: float = option(0.0, "LoRA dropout")
    budget_tolerance: float = option(0.005, "largest allowed relative gap to the reference budget")
    full_scope: FullScope = option("block", "what --method full unfreezes: whole blocks or their target modules")
    lr: float = option(2e-4, "peak learning rate")
    epochs: int = option(1, "passes over the training data (unless --max-steps)")
    max_steps: int | None = option(None, "optimizer steps (overrides --epochs)")
    batch_size: int = option(8, "examples per micro-batch per device")
    grad_accum: int = option(1, "micro-batches per optimizer step")
    max_length: int = option(512, "tokens per example; the prompt is cut from the left, never the answer")
    warmup_ratio: float = option(0.03, "fraction of the steps with linear warm-up")
    lr_scheduler: Scheduler = option("linear", "learning-rate schedule")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float | None = option(1.0, "gradient clipping norm (none: no clipping)")
    mixed_precision: Precision = option("no", "accelerate mixed precision")
    log_every: int = option(10, "steps between loss updates of the progress bar")
    chat_template: bool = option(False, "train on the tokenizer's chat template (user = prompt, assistant = "
                                        "completion; the loss covers the assistant turn and its end marker); "
                                        "gsm8k / mmlu prompts in evaluation use it too")

    def check(self) -> None:
        super().check()
        for name in ("rank", "epochs", "batch_size", "grad_accum", "log_every"):
            if getattr(self, name) < 1:
                self._fail(f"{name}={getattr(self, name)!r}; it must be an integer >= 1")
        if self.max_length < 8:
            self._fail(f"max_length={self.max_length}; it must be >= 8 tokens to hold a prompt and an answer")
        if self.max_steps is not None and self.max_steps < 1:
            self._fail(f"max_steps={self.max_steps}; use none (epochs decide) or >= 1")
        if not self.lr > 0:
            self._fail(f"lr={self.lr}; it must be > 0")
        if not self.alpha > 0:
            self._fail(f"alpha={self.alpha}; it must be > 0")
        if not 0 <= self.warmup_ratio < 1:
            self._fail(f"warmup_ratio={self.warmup_ratio}; use a fraction in [0, 1)")
        if not 0 <= self.lora_dropout < 1:
            self._fail(f"lora_dropout={self.lora_dropout}; use a probability in [0, 1)")
        if not 0 < self.budget_tolerance < 1:
            self._fail(f"budget_tolerance={self.budget_tolerance}; use a fraction like 0.005")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            self._fail(f"max_grad_norm={self.max_grad_norm}; use none (no clipping) or > 0")
        if not self.target_modules:
            self._fail("target_modules is empty; name modules like q_proj,v_proj or use all-linear")

    def _fail(self, what: str) -> None:
        raise SftscopeError(f"invalid tuning config: {what}")


@dataclass(kw_only=True)
class TrainConfig(TrainingOptions):
    """One training run (`train_cell`): which blocks, which method, which seed, and the shared options.

    Budget: the reference is LoRA of rank `rank` on `target_modules` of every block; method="lora" matches it
    with integer ranks on the selected blocks, method="full" unfreezes whole blocks (scope="block") or their
    target modules (scope="targets"), as many as best match it."""

    method: Method = option("lora", "lora: budget-matched LoRA on the blocks; full: whole blocks unfrozen")
    blocks: str = option("all", "block spec: all, a mask like 01000, 20%-80%, layers:8-12, random:4; with "
                                "--method full also early/middle/late/random")
    segments: int | None = option(None, "k; if given, a mask must have exactly k digits")
    seed: int = option(0, "data order, LoRA init and random block choice")

    def check(self) -> None:
        super().check()
        spec = BlockSpec.parse(self.blocks)
        self.blocks = spec.text  # one canonical form in configs, tables and command lines
        if self.method == "lora" and spec.is_position:
            self._fail(f"blocks={spec.text!r} is a full-update position; for LoRA give a block spec "
                       "(e.g. layers:0-5 or random:6)")
        if self.segments is not None and spec.k is not None and spec.k != self.segments:
            self._fail(f"blocks={spec.text!r} has {spec.k} segments but segments={self.segments}")

    @property
    def block_spec(self) -> BlockSpec:
        return BlockSpec.parse(self.blocks)


@dataclass(kw_only=True)
class CellOptions(LoadConfig, TaskProtocolOptions, TrainingOptions):
    """Everything a tuning cell needs besides blocks, method and seed: what the cells of a sweep share.
    `backend`, `num_fewshot`, `fewshot_seed`, `max_new_tokens` decide how the evaluation tasks run (the retention
    tasks are sftscope's perplexity whatever the backend); `chat_template` applies to training and evaluation."""

    base: str = option(help="Base model to tune: hub id (ID@REVISION) or local dir")
    train: str = option("gsm8k", "training data: gsm8k (train split), organism-sft, or a .jsonl/.csv file with "
                                 "prompt and completion fields")
    train_limit: int | None = option(None, "first N training records (default all)")
    tasks: list[str] = option(factory=lambda: list(DEFAULT_TASKS), help="evaluation tasks (sftscope ls tasks), "
                                                                        "or none")
    retention: list[str] = option(factory=lambda: list(DEFAULT_RETENTION),
                                  help="retention perplexity tasks (change vs the Base is reported), or none")
    limit: int | None = option(None, "items per evaluation task (default all)")
    retention_limit: int | None = option(None, "texts per retention task (default all)")
    eval_batch_size: int = option(8, "items per forward pass in evaluation")
    eval_seed: int = option(0, "evaluation seed: the same for the Base and every cell, so all see the same items")
    data_dir: str | None = option(None, "local data copies (for organism-sft: the organism's data folder)")

    chat_template: bool = option(False, "train on the tokenizer's chat template (user = prompt, assistant = "
                                        "completion; the loss covers the assistant turn and its end marker) and "
                                        "put the gsm8k / mmlu evaluation prompts through it")

    def check(self) -> None:
        super().check()
        from sftscope.evaluation.tasks import get_task
        from sftscope.models.refs import ModelRef

        ModelRef.parse(self.base, "base")
        if not self.tasks and not self.retention:
            raise SftscopeError("a tuning cell needs evaluation tasks (--tasks) or retention tasks (--retention)")
        self.check_tasks(self.tasks)  # an unknown task name (or a missing lm_eval) fails before anything loads
        for task in self.retention:
            get_task(task)  # retention is sftscope's own perplexity, whatever the backend
        for name in ("train_limit", "retention_limit", "limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise SftscopeError(f"--{name.replace('_', '-')} must be at least 1 (or left out for all)")
        if self.eval_batch_size < 1:
            raise SftscopeError("--eval-batch-size must be at least 1")


@dataclass(kw_only=True)
class TuneConfig(CellOptions, TrainConfig):
    """`sftscope tune`: one cell (blocks x method x seed) trained from a fresh Base and scored."""

    NOT_IDENTITY = StageConfig.NOT_IDENTITY | {"export_peft_config"}

    base_eval: str | None = option(None, "run dir caching the Base's scores (default: --out; a sweep shares one)")
    name: str = option("", "the cell's label in tables (default: the --out folder's name)")
    export_peft_config: str | None = option(None, "write the budget-matched peft.LoraConfig (adapter_config.json "
                                                  "format) to this .json file or folder and stop: train with it in "
                                                  "TRL's SFTTrainer or any PEFT-based trainer")


@dataclass(kw_only=True)
class SweepConfig(PlotOptions, CellOptions):
    """`sftscope sweep`: masks x seeds x controls as independent tune cells, then a summary."""

    NOT_IDENTITY = StageConfig.NOT_IDENTITY | {"list_cells", "cell", "summarize_only"}

    k: int = option(5, "segments of the masks")
    masks: list[str] | None = option(None, "masks (and 'all'); default: every single-segment mask, 01100, 01110 "
                                           "and all")
    seeds: list[int] = option(factory=lambda: [0, 1, 2], help="seeds of every configuration")
    controls: list[Control] = option(factory=lambda: list(DEFAULT_CONTROLS), help="same-budget controls, or none")
    also_k: list[int] = option(factory=list, help="also single-segment masks of these k (e.g. 3,10: the "
                                                  "inverted-U ablation)")
    list_cells: bool = option(False, "print one `sftscope tune` line per cell and stop", aliases=["--list"])
    cell: int | None = option(None, "run only cell I (0-based, as --list orders them)")
    summarize_only: bool = option(False, "only gather finished cells and summarise")

    def check(self) -> None:
        super().check()
        if self.k < 1:
            raise SftscopeError("--k must be at least 1")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise SftscopeError(f"--seeds needs distinct seeds, got {self.seeds}")
        if self.masks is not None:
            self.masks = [self._mask(m) for m in self.masks]
        if any(k < 1 for k in self.also_k):
            raise SftscopeError("--also-k needs segment counts >= 1")

    @staticmethod
    def _mask(text: str) -> str:
        try:
            spec = BlockSpec.parse(text)
        except SftscopeError:
            spec = None
        if spec is None or spec.kind not in ("mask", "all"):
            raise SftscopeError(f"bad mask {text!r}: a mask is 0s and 1s with at least one 1, e.g. 01100, or all")
        return spec.text

    def mask_list(self) -> list[str]:
        """The masks to run: --masks, else the default set for k."""
        from sftscope.tuning.sweep import default_masks

        return list(self.masks) if self.masks is not None else default_masks(self.k)

    def cell_config(self, method: str, blocks: str, seed: int, **more) -> TuneConfig:
        """The TuneConfig of one cell: the shared options of this sweep + its blocks, method and seed."""
        shared = {f.name: getattr(self, f.name) for f in fields(CellOptions) if f.init}
        return TuneConfig(**shared, method=method, blocks=blocks, seed=seed, **more)
