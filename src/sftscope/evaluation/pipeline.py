"""`sftscope evaluate`: registered tasks on one or more models, as a tidy `tasks` table."""

from __future__ import annotations

import gc
from pathlib import Path

from sftscope.data.registry import resolve_data_dir
from sftscope.evaluation.config import EvaluateConfig
from sftscope.evaluation.tasks import evaluate
from sftscope.models.loading import load_model
from sftscope.preflight import check_models, check_output_dir, check_task_data
from sftscope.results.rundir import RunDir
from sftscope.results.schema import Tables

TABLE = Tables.TASKS


def run_evaluate(cfg: EvaluateConfig, out: str | Path) -> RunDir:
    """One unit per (model, task): an interrupted evaluation resumes at the next unfinished task.

    Raises:
        SftscopeError: an unknown task, a model that cannot be loaded, missing data, or a different config in `out`.
    """
    check_output_dir(out)
    root = resolve_data_dir(cfg.data_dir)
    refs = cfg.refs()
    configs = check_models(refs, cfg.trust_remote_code, pair=False)  # any models: no pair to compare
    cfg.check_tasks(cfg.tasks)  # unknown task names (or a missing lm_eval) fail before any model loads
    if cfg.backend == "sftscope":
        check_task_data(cfg.tasks, root)  # missing data fails before any model loads
    run = RunDir(out)
    run.bind_config("evaluate", cfg.identity())
    for ref, config in zip(refs, configs):
        pending = [t for t in cfg.tasks if not run.is_done(TABLE, f"{ref.name}--{t}")]
        if not pending:
            continue
        loaded = load_model(ref, cfg.load_options(), config)
        run.write_environment(cfg.seed, [loaded.record])
        for task in pending:
            rows = evaluate(loaded.model, loaded.tokenizer, [task], side=ref.name, data_dir=root, limit=cfg.limit,
                            batch_size=cfg.batch_size, seed=cfg.seed, **cfg.protocol_options())
            run.write_unit(TABLE, f"{ref.name}--{task}", rows)
        del loaded
        gc.collect()
    return run
