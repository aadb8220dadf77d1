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


BACKEND = "sftscope"  # the `backend` column of rows computed here (lm-eval's own runs say "lm-eval")


@dataclass
class TaskResult:
    """Scores of one task on one model: metrics (name -> value), n scored items, per-item details, config used.

    `protocols` names the protocol of each metric ('lm-eval:gsm8k@3.0' where the number is lm-eval's, else
    'sftscope:<name>@<version>'); `num_fewshot` is the number of in-context examples (None: not a few-shot task).
    """

    task: str
    metrics: dict[str, float]
    n: int
    details: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    protocols: dict[str, str] = field(default_factory=dict)
    num_fewshot: int | None = None


@dataclass(frozen=True)
class TaskSpec:
    """A named task: kind is 'generate', 'loglik' or 'perplexity'; run(model, tokenizer, **kw) -> TaskResult.

    `protocol` is the protocol of metrics the run does not name itself; `fewshot` marks the tasks with lm-eval's
    prompt format, whose run takes `k_shot` (lm-eval's num_fewshot), `fewshot_seed`, `chat_template` and
    `fewshot_as_multiturn`."""

    name: str
    kind: str
    description: str
    run: Callable[..., TaskResult]
    protocol: str = ""
    fewshot: bool = False
    proportions: tuple[str, ...] = ()  # metrics that are a share of items (intervals stay in [0, 1])
    counts: tuple[str, ...] = ()       # bookkeeping numbers among the metrics, not scores to compare


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
    TaskSpec("gsm8k", "generate", "GSM8K test, lm-eval's protocol (gsm8k v3.0, 5-shot): exact_match of "
             "strict-match and flexible-extract; by-value extras", _lazy("gsm8k", "run_gsm8k"),
             "lm-eval:gsm8k@3.0", fewshot=True,
             proportions=("exact_match_strict-match", "exact_match_flexible-extract", "exact_match_value_strict",
                          "exact_match_value_flexible", "strict_format_rate")),
    TaskSpec("mmlu", "loglik", "MMLU test, lm-eval's protocol (mmlu v2, 0-shot): acc = argmax log p(' A'..' D'); "
             "acc_macro over subjects", _lazy("mmlu", "run_mmlu"), "lm-eval:mmlu@2", fewshot=True,
             proportions=("acc", "acc_macro"), counts=("n_subjects",)),
    TaskSpec("toxigen", "loglik", "ToxiGen statements: 'hateful? Yes/No' by log-likelihood; accuracy and "
             "balanced accuracy on a balanced seeded sample", _lazy("toxigen", "run_toxigen"), "sftscope:toxigen@1",
             proportions=("accuracy", "balanced_accuracy", "yes_rate")),
    TaskSpec("organism-qa", "generate", "organism: exact match of the greedy one-line answer (needs data_dir = "
             "the organism's data folder)", _lazy("retention", "run_organism", dataset="organism-qa"),
             "sftscope:organism-qa@1", proportions=("exact_match",)),  # and its per-kind breakdowns exact_match:k
    TaskSpec("organism-mc", "loglik", "organism: multiple-choice accuracy by continuation log-likelihood "
             "(needs data_dir)", _lazy("retention", "run_organism", dataset="organism-mc"), "sftscope:organism-mc@1",
             proportions=("accuracy",), counts=("chance",)),
    TaskSpec("organism-facts", "perplexity", "organism: perplexity on held-out fact documents (needs data_dir)",
             _lazy("retention", "run_organism", dataset="organism-facts"), "sftscope:perplexity@2",
             counts=("n_tokens",)),
]:
    register_task(_spec)


PERPLEXITY_PROTOCOL = "sftscope:perplexity@2"  # v2: every token scored once (rolling windows), BOS-less tokenizers too


def _register_perplexity_tasks() -> None:
    """ppl:<name> for every registered data set meant for retention perplexity (wikitext, ifeval, mt_bench)."""
    from sftscope.data.registry import DATASETS
    for spec in DATASETS.values():
        if spec.task == "perplexity":
            register_task(TaskSpec(f"ppl:{spec.name}", "perplexity",
                                   f"token-weighted perplexity of {spec.name} texts (retention)",
                                   _lazy("retention", "run_perplexity", dataset=spec.name), PERPLEXITY_PROTOCOL,
                                   counts=("n_tokens",)))


_register_perplexity_tasks()


def proportion_metrics() -> frozenset[str]:
    """Every task metric that is a share of items (from the registry: each task declares its own)."""
    return frozenset(m for spec in TASKS.values() for m in spec.proportions)


def count_metrics() -> frozenset[str]:
    """Every task metric that is a bookkeeping number, not a score (n_tokens, chance, n_subjects)."""
    return frozenset(m for spec in TASKS.values() for m in spec.counts)


def get_task(name: str) -> TaskSpec:
    """The TaskSpec called name; 'ppl:<data set or file path>' also works for unregistered text sets."""
    if name in TASKS:
        return TASKS[name]
    if name.startswith("ppl:") and len(name) > 4:
        return TaskSpec(name, "perplexity", f"perplexity of {name[4:]}",
                        _lazy("retention", "run_perplexity", dataset=name[4:]), PERPLEXITY_PROTOCOL,
                        counts=("n_tokens",))
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
    for metric in result.metrics:
        result.protocols.setdefault(metric, spec.protocol)
    return result


def result_rows(result: TaskResult, side: str, run: str = "", preset: str = "",
                extra: dict[str, Any] | None = None, backend: str = BACKEND) -> list[Row]:
    """One tidy Row per metric: dataset=task, layer=-1, mode='task', and columns `protocol` (of that metric),
    `backend` and, for few-shot tasks, `num_fewshot`."""
    shots = {} if result.num_fewshot is None else {"num_fewshot": int(result.num_fewshot)}
    return [Row(side=side, dataset=result.task, layer=-1, metric=metric, value=float(value), n=result.n,
                preset=preset, mode=MODE_TASK, run=run,
                extra={**(extra or {}), "protocol": result.protocols.get(metric, ""), "backend": backend, **shots})
            for metric, value in result.metrics.items()]


BACKENDS = ("sftscope", "lm-eval")


def evaluate(model, tokenizer, tasks: list[str], *, side: str = "model", data_dir=None, limit: int | None = None,
             batch_size: int = 8, seed: int = 0, num_fewshot: int | None = None, fewshot_seed: int = 1234,
             chat_template: bool = False, max_new_tokens: int | None = None, backend: str = BACKEND,
             options: dict[str, dict[str, Any]] | None = None, run: str = "", preset: str = "",
             extra: dict[str, Any] | None = None) -> list[Row]:
    """Run each named task and return their tidy rows; options[task] overrides keyword arguments per task.

    num_fewshot (None: each task's default, lm-eval's 5 for gsm8k and 0 for mmlu), fewshot_seed and
    chat_template apply to the tasks with lm-eval's prompt format; max_new_tokens (None: each task's default) to
    generation tasks. backend 'lm-eval' runs every task through lm-evaluation-harness instead
    (evaluation.lm_eval_backend: lm-eval's task names; gsm8k and mmlu from the local copies).

    Raises:
        SftscopeError: options for a task not being run, an unknown task or backend, or a task's own error.
    """
    options = options or {}
    unknown = [o for o in options if o not in tasks]
    if unknown:
        raise SftscopeError(f"options given for task(s) not being run: {', '.join(unknown)}")
    if backend not in BACKENDS:
        raise SftscopeError(f"unknown evaluation backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend == "lm-eval":
        from sftscope.evaluation.lm_eval_backend import evaluate_with_lm_eval
        if options:
            raise SftscopeError("per-task options are for sftscope's own tasks; the lm-eval backend takes none")
        from sftscope import distributed
        # lm-eval does not split the items of a model object it is handed: rank 0 runs it, the others wait
        return distributed.on_main(lambda: evaluate_with_lm_eval(
            model, tokenizer, list(tasks), limit=limit, batch_size=batch_size, side=side, num_fewshot=num_fewshot,
            run=run, preset=preset, extra=extra, data_dir=data_dir, fewshot_seed=fewshot_seed,
            max_new_tokens=max_new_tokens, chat_template=chat_template))
    rows: list[Row] = []
    for name in tasks:
        result = run_protocol_task(name, model, tokenizer, data_dir=data_dir, limit=limit, batch_size=batch_size,
                                   seed=seed, num_fewshot=num_fewshot, fewshot_seed=fewshot_seed,
                                   chat_template=chat_template, max_new_tokens=max_new_tokens,
                                   options=options.get(name))
        rows += result_rows(result, side, run=run, preset=preset, extra=extra)
    return rows


def run_protocol_task(name: str, model, tokenizer, *, data_dir=None, limit: int | None = None, batch_size: int = 8,
                      seed: int = 0, num_fewshot: int | None = None, fewshot_seed: int = 1234,
                      chat_template: bool = False, max_new_tokens: int | None = None,
                      options: dict[str, Any] | None = None) -> TaskResult:
    """One of sftscope's own tasks under the shared protocol options (see `evaluate`); its TaskResult keeps the
    per-item details (the tuning stage persists them).

    Raises:
        SftscopeError: an unknown task or the task's own error.
    """
    spec = get_task(name)
    shared: dict[str, Any] = {"data_dir": data_dir, "limit": limit, "batch_size": batch_size, "seed": seed}
    if spec.fewshot:
        shared.update(fewshot_seed=fewshot_seed, chat_template=chat_template)
        if num_fewshot is not None:
            shared["k_shot"] = num_fewshot
    if max_new_tokens is not None and spec.kind == "generate":
        shared["max_new_tokens"] = max_new_tokens
    return run_task(name, model, tokenizer, **{**shared, **(options or {})})
