"""Backend `lm-eval`: lm-evaluation-harness's own tasks run in-process on an already loaded model, as tidy rows.

lm_eval is optional (`pip install 'sftscope[eval]'`); without it the backend fails with a one-line message.
`gsm8k` and `mmlu` run offline from the local copies under the data directory: for each, a task config is
written that `include`s lm-eval's own YAML (prompt, few-shot format, filters, metrics, version: all lm-eval's)
and only replaces the data source by local JSON files holding exactly the items sftscope's native task would
score (the first `limit` GSM8K test items; MMLU's round-robin selection over subjects, one lm-eval subtask per
subject and a group `mmlu` over them, as lm-eval's own group). Any other task name goes to lm-eval's registry
as is (it then needs the hub or the datasets cache).

Results are read from simple_evaluate's output: results["results"][task]["<metric>,<filter>"],
results["n-samples"][task]["effective"], results["versions"][task] and results["n-shot"][task].
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from sftscope.errors import SftscopeError
from sftscope.results.schema import MODE_TASK, Row

BACKEND = "lm-eval"
LOCAL_TASKS = ("gsm8k", "mmlu")


MISSING = ("the lm-eval backend needs the 'lm_eval' package, which is not installed: pip install 'sftscope[eval]' "
           "(or use --backend sftscope)")


def require_lm_eval() -> Path:
    """The installed lm_eval package's folder (a cheap import: configs check this before any model loads).

    Raises:
        SftscopeError: lm_eval is not installed (one line saying how to install it).
    """
    try:
        import lm_eval
    except ImportError as exc:
        raise SftscopeError(MISSING) from exc
    return Path(lm_eval.__file__).parent


def _import_lm_eval():
    """(simple_evaluate, HFLM, TaskManager, the lm_eval package folder), or a one-line SftscopeError."""
    package = require_lm_eval()
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError as exc:
        raise SftscopeError(MISSING) from exc
    return simple_evaluate, HFLM, TaskManager, package


def _write_jsonl(path: Path, records: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def _yaml(path: Path, config: dict) -> None:
    import yaml  # a dependency of transformers and lm_eval
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _gsm8k_config(folder: Path, package: Path, data_dir, limit: int | None) -> None:
    from sftscope.data.registry import load_records
    from sftscope.evaluation.tasks import first_n

    def fields(r):
        return {"question": r["question"], "answer": r["answer"]}

    files = {"test": _write_jsonl(folder / "data" / "gsm8k" / "test.jsonl",
                                  [fields(r) for r in first_n(load_records("gsm8k", data_dir, "test"), limit)]),
             "train": _write_jsonl(folder / "data" / "gsm8k" / "train.jsonl",
                                   [fields(r) for r in load_records("gsm8k", data_dir, "train")])}
    _yaml(folder / "gsm8k.yaml", {"include": str(package / "tasks" / "gsm8k" / "gsm8k.yaml"), "task": "gsm8k",
                                  "dataset_path": "json", "dataset_name": None,
                                  "dataset_kwargs": {"data_files": files, "cache_dir": str(folder / "cache")}})


def _mmlu_config(folder: Path, package: Path, data_dir, limit: int | None, subjects: list[str] | None) -> None:
    from sftscope.data.registry import load_records
    from sftscope.data.templates import mmlu_choices
    from sftscope.evaluation.mmlu import select_items

    def fields(r):
        return {"question": r["question"], "subject": r["subject"], "choices": mmlu_choices(r),
                "answer": int(r["answer"])}

    chosen = select_items(load_records("mmlu", data_dir, "test"), limit, subjects)
    dev = load_records("mmlu", data_dir, "dev")
    names = []
    for subject in dict.fromkeys(r["subject"] for r in chosen):
        own = package / "tasks" / "mmlu" / "default" / f"mmlu_{subject}.yaml"
        if not own.exists():
            raise SftscopeError(f"lm-eval has no MMLU subject task {own.name}")
        files = {"test": _write_jsonl(folder / "data" / "mmlu" / subject / "test.jsonl",
                                      [fields(r) for r in chosen if r["subject"] == subject]),
                 "dev": _write_jsonl(folder / "data" / "mmlu" / subject / "dev.jsonl",
                                     [fields(r) for r in dev if r["subject"] == subject])}
        names.append(f"mmlu_{subject}")
        _yaml(folder / f"mmlu_{subject}.yaml", {
            "include": str(own), "task": f"mmlu_{subject}", "tag": "sftscope_local_mmlu", "dataset_path": "json",
            "dataset_name": None, "dataset_kwargs": {"data_files": files, "cache_dir": str(folder / "cache")}})
    import yaml
    group = yaml.safe_load((package / "tasks" / "mmlu" / "default" / "_mmlu.yaml").read_text())
    _yaml(folder / "_mmlu.yaml", {"group": "mmlu", "task": names,
                                  "aggregate_metric_list": group.get("aggregate_metric_list"),
                                  "metadata": group.get("metadata")})


def write_local_tasks(folder: str | Path, tasks: list[str], data_dir, limit: int | None = None,
                      subjects: list[str] | None = None) -> list[str]:
    """Write lm-eval task configs (and the item files they read) for the local tasks among `tasks` into folder;
    returns the local task names.

    Raises:
        SftscopeError: lm_eval is missing, or the local data cannot be read.
    """
    _, _, _, package = _import_lm_eval()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    local = [t for t in tasks if t in LOCAL_TASKS]
    if "gsm8k" in local:
        _gsm8k_config(folder, package, data_dir, limit)
    if "mmlu" in local:
        _mmlu_config(folder, package, data_dir, limit, subjects)
    return local


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def rows_from_lm_eval(results: dict[str, Any], side: str, run: str = "", preset: str = "",
                      extra: dict[str, Any] | None = None) -> list[Row]:
    """Tidy rows from simple_evaluate's dict: metric '<name>' or '<name>_<filter>', with columns `stderr`,
    `protocol` ('lm-eval:<task>@<version>'), `backend` ('lm-eval') and `num_fewshot`; a group's n is the sum of
    its subtasks' effective samples."""
    rows = []
    n_samples = results.get("n-samples", {})
    versions, shots = results.get("versions", {}), results.get("n-shot", {})
    groups = results.get("group_subtasks", {})

    def count(task: str) -> int:
        if task in n_samples:
            return int(n_samples[task].get("effective", 0))
        return sum(count(t) for t in groups.get(task, []))

    for task, values in results.get("results", {}).items():
        for key, value in values.items():
            if "," not in key or "_stderr" in key or not _number(value):
                continue  # 'alias' and other labels; stderr goes beside its metric
            metric, filt = key.split(",", 1)
            stderr = values.get(f"{metric}_stderr,{filt}")
            name = metric if filt == "none" else f"{metric}_{filt}"
            columns = {**(extra or {}), "backend": BACKEND,
                       "protocol": f"lm-eval:{task}@{versions.get(task, '?')}"}
            if _number(stderr):
                columns["stderr"] = float(stderr)
            if _number(shots.get(task)):
                columns["num_fewshot"] = int(shots[task])
            rows.append(Row(side=side, dataset=task, layer=-1, metric=name, value=float(value), n=count(task),
                            preset=preset, mode=MODE_TASK, run=run, extra=columns))
    return rows


def run_lm_eval(model, tokenizer, tasks: list[str], *, data_dir=None, limit: int | None = None, batch_size: int = 8,
                num_fewshot: int | None = None, fewshot_seed: int = 1234, max_new_tokens: int | None = None,
                subjects: list[str] | None = None, chat_template: bool = False, log_samples: bool = False,
                **kwargs) -> dict[str, Any]:
    """lm_eval.simple_evaluate on HFLM(pretrained=model, tokenizer=tokenizer): gsm8k and mmlu from the local
    copies (see the module docstring), other names from lm-eval's registry; kwargs go to simple_evaluate.

    Raises:
        SftscopeError: lm_eval is missing, a task is unknown to lm-eval, or local data cannot be read.
    """
    simple_evaluate, HFLM, TaskManager, _ = _import_lm_eval()
    from sftscope.data.registry import resolve_data_dir

    root = resolve_data_dir(data_dir)
    with tempfile.TemporaryDirectory(prefix="sftscope-lm-eval-") as folder:
        local = write_local_tasks(folder, tasks, root, limit, subjects) if root is not None else []
        others = [t for t in tasks if t not in local]
        manager = TaskManager(include_path=folder, include_defaults=bool(others))
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        gen_kwargs = {"max_gen_toks": int(max_new_tokens)} if max_new_tokens is not None else None
        try:
            results = simple_evaluate(
                model=lm, tasks=list(tasks), limit=None if not others else limit, num_fewshot=num_fewshot,
                task_manager=manager, fewshot_random_seed=fewshot_seed, gen_kwargs=gen_kwargs,
                apply_chat_template=chat_template, log_samples=log_samples, bootstrap_iters=0,
                random_seed=None, numpy_random_seed=None, torch_random_seed=None, **kwargs)
        except (KeyError, ValueError) as exc:
            if any(t not in manager.all_tasks for t in tasks):
                unknown = [t for t in tasks if t not in manager.all_tasks]
                raise SftscopeError(f"lm-eval does not know task(s) {', '.join(unknown)}") from exc
            raise
    return results or {}


def evaluate_with_lm_eval(model, tokenizer, tasks: list[str], limit: int | None = None, batch_size: int = 8,
                          *, side: str = "model", num_fewshot: int | None = None, run: str = "", preset: str = "",
                          extra: dict[str, Any] | None = None, **kwargs) -> list[Row]:
    """run_lm_eval, as tidy rows (see rows_from_lm_eval); kwargs go to run_lm_eval.

    Raises:
        SftscopeError: lm_eval is missing, or see run_lm_eval.
    """
    results = run_lm_eval(model, tokenizer, list(tasks), limit=limit, batch_size=batch_size,
                          num_fewshot=num_fewshot, **kwargs)
    return rows_from_lm_eval(results, side, run=run, preset=preset, extra=extra)
