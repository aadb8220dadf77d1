"""Configuration of `sftscope evaluate` (registered tasks on one or more models)."""

from __future__ import annotations

from dataclasses import dataclass

from sftscope.config import LoadConfig, option
from sftscope.errors import SftscopeError


@dataclass(kw_only=True)
class EvaluateConfig(LoadConfig):
    """`sftscope evaluate`: task scores of each model, one unit per (model, task)."""

    models: list[str] = option(aliases=["--model"], metavar="[NAME=]ID", repeat=True,
                               help="model to evaluate (repeatable), e.g. --model base=allenai/OLMo-2-0425-1B")
    tasks: list[str] = option(help="comma-separated task names (sftscope ls tasks)")
    limit: int | None = option(None, "items per task (default: the whole test set)")
    data_dir: str | None = option(None, "folder with local copies (else $SFTSCOPE_DATA_DIR, else the hub)")
    batch_size: int = option(8, "items per forward pass")
    seed: int = option(0, "seed of sampled items and few-shot draws")

    def check(self) -> None:
        super().check()
        if not self.models:
            raise SftscopeError("give at least one model: --model [NAME=]ID")
        if not self.tasks:
            raise SftscopeError("give at least one task: --tasks gsm8k,mmlu (sftscope ls tasks)")
        if self.limit is not None and self.limit < 1:
            raise SftscopeError("--limit must be at least 1 (or left out for every item)")
        if self.batch_size < 1:
            raise SftscopeError("--batch-size must be at least 1")
        self.refs()

    def refs(self):
        """ModelRef per --model; unnamed models are model1, model2, ... in order."""
        from sftscope.models.refs import ModelRef

        refs = [ModelRef.parse(m, f"model{i + 1}") for i, m in enumerate(self.models)]
        names = [r.name for r in refs]
        if len(set(names)) != len(names):
            raise SftscopeError(f"model names must be unique, got {', '.join(names)}")
        return refs
