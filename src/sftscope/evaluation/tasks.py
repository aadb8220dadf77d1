"""Evaluation tasks by name: a registry of TaskSpecs, one `run` per task, and tidy rows for the results table.

Every task's run has the signature
    run(model, tokenizer, *, data_dir=None, limit=None, batch_size=8, seed=0, **options) -> TaskResult
Task modules are imported only when a task runs (the registry itself is cheap: `sftscope ls tasks`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from sftscope.errors import SftscopeError, UnknownNameError
from sftscope.results.schema import MODE_TASK, Row


@dataclass
class TaskResult:
    """Scores of one task on one model: metrics (name -> value), n scored items, per-item details, config used."""

    task: str
    metrics: dict[str, float]
    n: int
    details: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    """A named task: kind is 'generate', 'loglik' or 'perplexity'; run(model, tokenizer, **kw) -> TaskResult."""

    name: str
    kind: str
    description: str
    run: Callable[..., TaskResult]


def first_n(records: list, limit: int | None) -> list:
    """The first `limit` records (all if None), as lm-eval's --limit does; limit must be positive."""
    if limit is None:
        return list(records)
    if int(limit) < 1:
        raise SftscopeError(f"limit must be a positive number of items, got {limit}")
    return list(records[: int(limit)])


def _lazy(module: str, function: str, **bound: Any) -> Callable[..., TaskResult]:
    """A run function that imports its module on first call (keeps the registry import-light)."""
    def run(model, tokenizer, **kwargs):
        return getattr(importlib.import_module(f"sftscope.evaluation.{module}"), function)(
            model, tokenizer, **bound, **kwargs)
    run.__name__ = f"{module}.{function}"
    return run


TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add (or replace) a task in TASKS."""
    TASKS[spec.name] = spec
    return spec


for _spec in [
    TaskSpec("gsm8k", "generate", "GSM8K test: greedy answer, exact match of '#### N' (strict) and of the last "
             "number (flexible); 0-shot, k-shot from train", _lazy("gsm8k", "run_gsm8k")),
    TaskSpec("mmlu", "loglik", "MMLU test: argmax log p(' A'..' D' | prompt); accuracy and macro over subjects; "
             "k-shot from dev", _lazy("mmlu", "run_mmlu")),
    TaskSpec("toxigen", "loglik", "ToxiGen statements: 'hateful? Yes/No' by log-likelihood; accuracy and "
             "balanced accuracy on a balanced seeded sample", _lazy("toxigen", "run_toxigen")),
    TaskSpec("organism-qa", "generate", "organism: exact match of the greedy one-line answer (needs data_dir = "
             "the organism's data folder)", _lazy("retention", "run_organism", dataset="organism-qa")),
    TaskSpec("organism-mc", "loglik", "organism: multiple-choice accuracy by continuation log-likelihood "
             "(needs data_dir)", _lazy("retention", "run_organism", dataset="organism-mc")),
    TaskSpec("organism-facts", "perplexity", "organism: perplexity on held-out fact documents (needs data_dir)",
             _lazy("retention", "run_organism", dataset="organism-facts")),
]:
    register_task(_spec)


def _register_perplexity_tasks() -> None:
    """ppl:<name> for every registered data set meant for retention perplexity (wikitext, ifeval, mt_bench)."""
    from sftscope.data.registry import DATASETS
    for spec in DATASETS.values():
        if spec.task == "perplexity":
            register_task(TaskSpec(f"ppl:{spec.name}", "perplexity",
                                   f"token-weighted perplexity of {spec.name} texts (retention)",
                                   _lazy("retention", "run_perplexity", dataset=spec.name)))


_register_perplexity_tasks()


def get_task(name: str) -> TaskSpec:
    """The TaskSpec called name; 'ppl:<data set or file path>' also works for unregistered text sets."""
    if name in TASKS:
        return TASKS[name]
    if name.startswith("ppl:") and len(name) > 4:
        return TaskSpec(name, "perplexity", f"perplexity of {name[4:]}",
                        _lazy("retention", "run_perplexity", dataset=name[4:]))
    raise UnknownNameError("task", name, list(TASKS), "or ppl:<data set name or text file>")


def run_task(name: str, model, tokenizer, **kwargs) -> TaskResult:
    """Run one task with the model in eval mode (its train/eval mode is restored afterwards)."""
    spec = get_task(name)
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        result = spec.run(model, tokenizer, **kwargs)
    finally:
        model.train(was_training)
    result.task = name
    return result


def result_rows(result: TaskResult, side: str, run: str = "", preset: str = "",
                extra: dict[str, Any] | None = None) -> list[Row]:
    """One tidy Row per metric: dataset=task, layer=-1, mode='task'."""
    return [Row(side=side, dataset=result.task, layer=-1, metric=metric, value=float(value), n=result.n,
                preset=preset, mode=MODE_TASK, run=run, extra=dict(extra or {}))
            for metric, value in result.metrics.items()]


def evaluate(model, tokenizer, tasks: list[str], *, side: str = "model", data_dir=None, limit: int | None = None,
             batch_size: int = 8, seed: int = 0, options: dict[str, dict[str, Any]] | None = None,
             run: str = "", preset: str = "", extra: dict[str, Any] | None = None) -> list[Row]:
    """Run each named task and return their tidy rows; options[task] overrides keyword arguments per task."""
    options = options or {}
    unknown = [o for o in options if o not in tasks]
    if unknown:
        raise SftscopeError(f"options given for task(s) not being run: {', '.join(unknown)}")
    rows: list[Row] = []
    for name in tasks:
        kwargs = {"data_dir": data_dir, "limit": limit, "batch_size": batch_size, "seed": seed, **options.get(name, {})}
        rows += result_rows(run_task(name, model, tokenizer, **kwargs), side, run=run, preset=preset, extra=extra)
    return rows
