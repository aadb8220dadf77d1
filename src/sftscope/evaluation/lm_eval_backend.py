"""Optional backend: run lm-evaluation-harness tasks in-process on an already loaded model, as tidy rows.

lm_eval is not a dependency of sftscope; install it (`pip install lm_eval[hf]`) to use its task
definitions verbatim. Results are read from simple_evaluate's output:
    results["results"][task]["<metric>,<filter>"] and results["n-samples"][task]["effective"].
"""

from __future__ import annotations

from typing import Any

from sftscope.errors import SftscopeError
from sftscope.evaluation.tasks import MODE_TASK
from sftscope.results.schema import Row


def _import_lm_eval():
    """(simple_evaluate, HFLM) from lm_eval, or a clean SftscopeError when the package is missing."""
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
    except ImportError as exc:
        raise SftscopeError("the lm-evaluation-harness backend needs the 'lm_eval' package, which is not "
                            "installed: pip install 'lm_eval[hf]' (or use sftscope's own tasks: "
                            "sftscope ls tasks)") from exc
    return simple_evaluate, HFLM


def rows_from_lm_eval(results: dict[str, Any], side: str, run: str = "", preset: str = "") -> list[Row]:
    """Tidy rows from simple_evaluate's dict: metric '<name>' or '<name>_<filter>', stderr in extra."""
    rows = []
    n_samples = results.get("n-samples", {})
    for task, values in results.get("results", {}).items():
        n = int(n_samples.get(task, {}).get("effective", 0))
        for key, value in values.items():
            if "," not in key or "_stderr" in key or not isinstance(value, (int, float)):
                continue  # 'alias' and other labels; stderr goes beside its metric
            metric, filt = key.split(",", 1)
            stderr = values.get(f"{metric}_stderr,{filt}")
            name = metric if filt == "none" else f"{metric}_{filt}"
            extra = {"backend": "lm_eval"}
            if isinstance(stderr, (int, float)):
                extra["stderr"] = float(stderr)
            rows.append(Row(side=side, dataset=task, layer=-1, metric=name, value=float(value), n=n,
                            preset=preset, mode=MODE_TASK, run=run, extra=extra))
    return rows


def evaluate_with_lm_eval(model, tokenizer, tasks: list[str], limit: int | float | None = None, batch_size: int = 8,
                          *, side: str = "model", num_fewshot: int | None = None, run: str = "", preset: str = "",
                          **kwargs) -> list[Row]:
    """lm_eval.simple_evaluate on HFLM(pretrained=model, tokenizer=tokenizer); kwargs go to simple_evaluate."""
    simple_evaluate, HFLM = _import_lm_eval()
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    results = simple_evaluate(model=lm, tasks=list(tasks), limit=limit, num_fewshot=num_fewshot, **kwargs)
    if results is None:  # non-zero ranks of a distributed run get None
        return []
    return rows_from_lm_eval(results, side, run=run, preset=preset)
