"""`sftscope evaluate`: registered tasks on one or more models, as a tidy `tasks` table."""

from __future__ import annotations

import gc
from pathlib import Path

from sftscope.data.registry import resolve_data_dir
from sftscope.evaluation.tasks import evaluate, get_task
from sftscope.models.loading import LoadOptions, ModelRef, load_model
from sftscope.results.rundir import RunDir

TABLE = "tasks"


def run_evaluate(models: list[ModelRef], tasks: list[str], out: str | Path, data_dir: str | None = None,
                 limit: int | None = None, batch_size: int = 8, seed: int = 0,
                 options: LoadOptions = LoadOptions()) -> RunDir:
    """One unit per (model, task): an interrupted evaluation resumes at the next unfinished task."""
    for task in tasks:
        get_task(task)  # unknown task names fail before any model loads
    run = RunDir(out)
    run.bind_config("evaluate", {"models": [vars(m) for m in models], "tasks": tasks, "data_dir": data_dir,
                                 "limit": limit, "batch_size": batch_size, "seed": seed})
    root = resolve_data_dir(data_dir)
    for ref in models:
        pending = [t for t in tasks if not run.is_done(TABLE, f"{ref.name}--{t}")]
        if not pending:
            continue
        loaded = load_model(ref, options)
        run.write_environment(seed, [loaded.record])
        for task in pending:
            rows = evaluate(loaded.model, loaded.tokenizer, [task], side=ref.name, data_dir=root, limit=limit,
                            batch_size=batch_size, seed=seed)
            run.write_unit(TABLE, f"{ref.name}--{task}", rows)
        del loaded
        gc.collect()
    return run
