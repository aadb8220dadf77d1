"""TuneConfig: every setting of one tuning cell, typed and validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sftscope.errors import SftscopeError
from sftscope.tuning.adapters import ALPHA_POLICIES
from sftscope.tuning.full_blocks import POSITIONS, SCOPES
from sftscope.tuning.modules import ALL_LINEAR, ATTENTION_QKVO

METHODS = ("lora", "full")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
PRECISIONS = ("no", "bf16", "fp16")


@dataclass(frozen=True)
class TuneConfig:
    """One tuning cell. `blocks` is a block spec (blocks.py); for method="full" also early/middle/late/random.

    Budget: the reference is LoRA of rank `rank` on `target_modules` of every block; method="lora" matches it
    with integer ranks on the selected blocks, method="full" unfreezes whole blocks (scope="block") or their
    target modules (scope="targets"), as many as best match it.
    """

    method: str = "lora"
    blocks: str = "all"
    segments: int | None = None          # k; if given, a mask spec must have exactly k digits
    rank: int = 8
    alpha: float = 16.0
    alpha_policy: str = "constant-scale"
    target_modules: tuple[str, ...] | str = ATTENTION_QKVO
    lora_dropout: float = 0.0
    budget_tolerance: float = 0.005
    full_scope: str = "block"
    lr: float = 2e-4
    epochs: int = 1
    max_steps: int | None = None         # optimizer steps; overrides epochs when set
    batch_size: int = 8                  # per device, per micro-batch
    grad_accum: int = 1
    max_length: int = 512
    warmup_ratio: float = 0.03
    lr_scheduler: str = "linear"
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    mixed_precision: str = "no"
    seed: int = 0
    log_every: int = 10
    eval_tasks: tuple[str, ...] = ()     # names for the evaluation stage (not run by train_cell)
    eval_limit: int | None = None
    eval_batch_size: int = 8

    def __post_init__(self):
        if isinstance(self.target_modules, list):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
        if isinstance(self.eval_tasks, list):
            object.__setattr__(self, "eval_tasks", tuple(self.eval_tasks))
        self._validate()

    def _fail(self, what: str) -> None:
        raise SftscopeError(f"invalid tuning config: {what}")

    def _validate(self) -> None:
        choices = {"method": METHODS, "alpha_policy": ALPHA_POLICIES, "full_scope": SCOPES,
                   "lr_scheduler": SCHEDULERS, "mixed_precision": PRECISIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                self._fail(f"{name}={getattr(self, name)!r}; use one of {', '.join(allowed)}")
        for name in ("rank", "epochs", "batch_size", "grad_accum", "log_every", "eval_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                self._fail(f"{name}={getattr(self, name)!r}; it must be an integer >= 1")
        if self.max_length < 8:
            self._fail(f"max_length={self.max_length}; it must be >= 8 tokens to hold a prompt and an answer")
        if self.max_steps is not None and self.max_steps < 1:
            self._fail(f"max_steps={self.max_steps}; use None (epochs decide) or >= 1")
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
            self._fail(f"max_grad_norm={self.max_grad_norm}; use None (no clipping) or > 0")
        if isinstance(self.target_modules, str) and self.target_modules != ALL_LINEAR:
            self._fail(f"target_modules={self.target_modules!r}; give a list like q_proj,v_proj or {ALL_LINEAR}")
        if not isinstance(self.target_modules, str) and not self.target_modules:
            self._fail("target_modules is empty")
        if self.method == "lora" and self.blocks in POSITIONS:
            self._fail(f"blocks={self.blocks!r} is a full-update position; for LoRA give a block spec "
                       "(e.g. layers:0-5 or random:6)")
        spec = self.blocks.strip()
        mask = spec[5:] if spec.startswith("mask:") else spec
        if self.segments is not None and set(mask) <= {"0", "1"} and mask and len(mask) != self.segments:
            self._fail(f"blocks={spec!r} has {len(mask)} segments but segments={self.segments}")

    def as_dict(self) -> dict:
        """JSON-friendly dict (for RunDir.bind_config)."""
        d = asdict(self)
        d["target_modules"] = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        d["eval_tasks"] = list(self.eval_tasks)
        return d
