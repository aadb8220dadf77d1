"""Configuration of `sftscope evaluate` (registered tasks on one or more models)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sftscope.config import LoadConfig, StageConfig, option
from sftscope.errors import SftscopeError

Backend = Literal["sftscope", "lm-eval"]


@dataclass(kw_only=True)
class TaskProtocolOptions(StageConfig):
    """How the benchmark tasks are run: backend, in-context examples, chat template (evaluate, tune, sweep)."""

    backend: Backend = option("sftscope", "sftscope: sftscope's tasks (gsm8k and mmlu score as lm-eval does, plus "
                                          "extra metrics); lm-eval: lm-evaluation-harness's own tasks in-process "
                                          "(pip install 'sftscope[eval]'; gsm8k, mmlu from the local copies)")
    num_fewshot: int | None = option(None, "in-context examples of gsm8k / mmlu (default: lm-eval's, 5 and 0)")
    fewshot_seed: int = option(1234, "seed of gsm8k's few-shot draw (1234 = lm-eval's default)")
    chat_template: bool = option(False, "prompts of gsm8k / mmlu through the model's chat template (lm-eval's "
                                        "--apply_chat_template)")
    max_new_tokens: int | None = option(None, "new tokens per generated answer (default: the task's, 256 for gsm8k)")

    def check(self) -> None:
        super().check()
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise SftscopeError("--num-fewshot must be 0 or more (or none for the task's default)")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise SftscopeError("--max-new-tokens must be at least 1 (or none for the task's default)")

    def check_tasks(self, tasks: list[str]) -> None:
        """Fail on unknown task names before any model loads (the lm-eval backend's names are lm-eval's)."""
        if self.backend == "lm-eval":
            from sftscope.evaluation.lm_eval_backend import require_lm_eval
            require_lm_eval()  # a missing package fails now, in one line
            return
        from sftscope.evaluation.tasks import get_task
        for task in tasks:
            get_task(task)

    def protocol_options(self) -> dict:
        """Keyword arguments of `evaluation.tasks.evaluate` these options set."""
        return {"backend": self.backend, "num_fewshot": self.num_fewshot, "fewshot_seed": self.fewshot_seed,
                "chat_template": self.chat_template, "max_new_tokens": self.max_new_tokens}


@dataclass(kw_only=True)
class EvaluateConfig(TaskProtocolOptions, LoadConfig):
    """`sftscope evaluate`: task scores of each model, one unit per (model, task)."""

    models: list[str] = option(aliases=["--model"], metavar="[NAME=]ID", repeat=True,
                               help="model to evaluate (repeatable), e.g. --model base=allenai/OLMo-2-0425-1B")
    tasks: list[str] = option(help="comma-separated task names (sftscope ls tasks; with --backend lm-eval, "
                                   "lm-eval's names)")
    limit: int | None = option(None, "items per task (default: the whole test set)")
    data_dir: str | None = option(None, "folder with local copies (else $SFTSCOPE_DATA_DIR, else the hub)")
    batch_size: int = option(8, "items per forward pass")
    seed: int = option(0, "seed of sampled items (toxigen)")

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
