"""`sftscope tune`: one tuning cell (block spec x method x seed) trained from a fresh Base, evaluated, resumable.

A cell's run directory holds two tables:
    tuning     train_cell's rows (train_loss per step, trainable_params, reference_params, budget_rel_error,
               train_truncated, train_dropped, train_wall_time_s) plus a loss-curve summary
               (train_loss_start / train_loss_end = mean of the first / last tenth of the steps, train_loss_min,
               train_steps, completion_tokens)
    tune_eval  task scores of the tuned model (side "tuned"), and per retention task the perplexity change vs
               the untouched Base (metric "perplexity_change" = ppl_tuned - ppl_base; lower = better retention)
    tune_items the per-item scores behind every tune_eval score that is a plain mean over items (exact match,
               accuracy: 0/1 per item; column `item` = the item's id, mode "item"): the sweep summary resamples
               items and seeds from them
Every row carries the columns cell, method, blocks, layers, k, seed, trainable_params, train.
The Base's own scores (side "base", unit "base" of tune_eval) live in `base_eval`: a sweep's cells share one
directory, so the Base is evaluated once per sweep; a lone `tune` keeps them in its own directory. All models
are scored with the same evaluation seed, so Base and every cell see the same items.
A finished cell (both tables written) is skipped on re-run.
"""

from __future__ import annotations

import gc
import math
from pathlib import Path

from sftscope.errors import SftscopeError
from sftscope.evaluation.tasks import TaskResult, evaluate, first_n, result_rows, run_protocol_task
from sftscope.models.loading import load_model
from sftscope.models.refs import ModelRef
from sftscope.preflight import check_output_dir, check_tuning
from sftscope.results.rundir import RunDir
from sftscope.results.schema import MODE_ITEM, Row, Tables
from sftscope.tuning.blocks import BlockSpec, format_layers
from sftscope.tuning.config import TuneConfig
from sftscope.tuning.train import TrainResult, train_cell

UNIT, BASE_UNIT = "cell", "base"
RETENTION_METRIC = "perplexity"


def load_train_records(train: str, data_dir: str | Path | None = None, limit: int | None = None) -> list[dict]:
    """First `limit` {"prompt", "completion"} records of a data set's train split (gsm8k, organism-sft) or a file.

    Raises:
        SftscopeError: an unknown name, a data set without a prompt/completion form, a file without those
            fields, or no records.
    """
    from sftscope.data.registry import DATASETS, load_records
    if train in DATASETS:
        spec = DATASETS[train]
        if spec.split is None:
            raise SftscopeError(f"data set {train!r} has no prompt/completion form for training; use gsm8k, "
                                "organism-sft or a .jsonl file with prompt and completion fields")
        records = [dict(zip(("prompt", "completion"), spec.split(r))) for r in load_records(train, data_dir, "train")]
    elif Path(train).expanduser().is_file():
        from sftscope.data.readers import read_user_file
        records = list(read_user_file(Path(train).expanduser()))
        if records and not {"prompt", "completion"} <= set(records[0]):
            raise SftscopeError(f"{train} needs 'prompt' and 'completion' fields (has {', '.join(records[0])})")
    else:
        raise SftscopeError(f"training data {train!r} is neither a registered data set with a train split "
                            "(gsm8k, organism-sft) nor a file")
    if not records:
        raise SftscopeError(f"training data {train!r} is empty")
    return first_n([{"prompt": str(r["prompt"]), "completion": str(r["completion"])} for r in records], limit)


def cell_done(run: RunDir) -> bool:
    """True when both tables of the cell are written (training rows and evaluation rows)."""
    return run.is_done(Tables.TUNING, UNIT) and run.is_done(Tables.TUNE_EVAL, UNIT)


def cell_tags(cfg: TuneConfig, name: str, result: TrainResult) -> dict:
    """Columns on every row of a cell: which configuration, seed and realised budget it is."""
    k = BlockSpec.parse(cfg.blocks).k
    return {"cell": name, "method": cfg.method, "blocks": cfg.blocks, "layers": format_layers(result.layers),
            "k": -1 if k is None else k, "seed": cfg.seed, "trainable_params": int(result.trainable_count),
            "train": cfg.train}


def training_rows(result: TrainResult, tags: dict, run: str) -> list[Row]:
    """train_cell's rows plus loss-curve summary rows, all tagged."""
    dataset = Path(tags["train"]).stem if Path(tags["train"]).suffix else tags["train"]
    rows = result.rows(run, dataset=dataset)
    curve = result.loss_curve
    tenth = max(1, math.ceil(len(curve) / 10))
    summary = {"train_steps": result.steps, "completion_tokens": result.completion_tokens}
    if curve:
        summary.update(train_loss_start=sum(curve[:tenth]) / tenth, train_loss_end=sum(curve[-tenth:]) / tenth,
                       train_loss_min=min(curve))
    rows += [Row(side="tuned", dataset=dataset, layer=-1, metric=k, value=float(v), n=max(len(curve), 1), run=run)
             for k, v in summary.items()]
    for row in rows:
        row.extra = {**row.extra, **tags}
    return rows


# metric -> the per-item field that averages to it, where a task names them differently (mmlu, toxigen, gsm8k)
ITEM_FIELDS = {"acc": "correct", "accuracy": "correct", "exact_match_strict-match": "strict_correct",
               "exact_match_flexible-extract": "flexible_correct", "exact_match_value_strict": "value_strict_correct",
               "exact_match_value_flexible": "value_flexible_correct"}


def item_rows(result: TaskResult, side: str, run: str, extra: dict) -> list[Row]:
    """One Row per item and metric whose value is the mean of a per-item field of `result.details`: the field
    named like the metric (a per-kind score 'exact_match:k' is carried by the items of kind k only), or
    ITEM_FIELDS[metric]. A metric is kept only when the items' mean reproduces it (1e-9), so the item rows
    always agree with the score. Item ids are the details' `id` (the position when ids are missing or repeated)."""
    details = result.details or []
    ids = [str(d.get("id")) for d in details]
    if any(d.get("id") is None for d in details) or len(set(ids)) != len(ids):
        ids = [str(i) for i in range(len(details))]
    rows = []
    for metric, value in result.metrics.items():
        key = metric if any(metric in d for d in details) else ITEM_FIELDS.get(metric)
        scores = [(i, d[key]) for i, d in zip(ids, details) if key in d] if key else []
        if not scores or not all(isinstance(v, (bool, int, float)) and math.isfinite(v) for _, v in scores):
            continue
        if abs(sum(float(v) for _, v in scores) / len(scores) - float(value)) > 1e-9:
            continue
        rows += [Row(side=side, dataset=result.task, layer=-1, metric=metric, value=float(v), n=1, mode=MODE_ITEM,
                     run=run, extra={**extra, "item": i}) for i, v in scores]
    return rows


def _score(model, tokenizer, cfg: TuneConfig, side: str, tags: dict, run: str) -> tuple[list[Row], list[Row]]:
    """(score rows, per-item rows) of every evaluation and retention task, all tagged."""
    # task_order 0 = the first evaluation task: the score the cell is judged on (report, suggest comparison)
    order = {task: i for i, task in enumerate((*cfg.tasks, *cfg.retention))}
    rows, items = [], []
    common = dict(data_dir=cfg.data_dir, batch_size=cfg.eval_batch_size, seed=cfg.eval_seed)
    for tasks, limit, protocol in ((cfg.tasks, cfg.limit, cfg.protocol_options()),
                                   (cfg.retention, cfg.retention_limit, {})):  # retention: sftscope's perplexity
        backend = protocol.pop("backend", "sftscope")
        for name in tasks:
            extra = {**tags, "task_order": order.get(name, len(order))}
            if backend == "lm-eval":  # lm-eval's own tasks: scores only (their items are not read back)
                rows += evaluate(model, tokenizer, [name], side=side, limit=limit, run=run, extra=extra,
                                 backend=backend, **common, **protocol)
                continue
            result = run_protocol_task(name, model, tokenizer, limit=limit, **common, **protocol)
            rows += result_rows(result, side, run=run, extra=extra)
            items += item_rows(result, side, run, extra)
    return rows, items


BASE_TAGS = {"cell": BASE_UNIT, "method": "none", "blocks": "", "layers": "", "k": -1, "seed": -1,
             "trainable_params": 0, "train": ""}


def base_eval_config(cfg: TuneConfig) -> dict:
    """What the Base's cached scores depend on (a cell with other evaluation settings must not reuse them)."""
    return {"base": cfg.base, "tasks": list(cfg.tasks), "limit": cfg.limit, "retention": list(cfg.retention),
            "retention_limit": cfg.retention_limit, "data_dir": cfg.data_dir, "eval_batch_size": cfg.eval_batch_size,
            "eval_seed": cfg.eval_seed, "load": cfg.load_options().as_dict(), **cfg.protocol_options()}


def base_scores(cfg: TuneConfig, out: str | Path, loaded=None) -> list[dict]:
    """The untouched Base's rows (computed once with `loaded`, else read back from the cache)."""
    run = RunDir(cfg.base_eval or out)
    run.bind_config("tune_base", base_eval_config(cfg))
    if not run.is_done(Tables.TUNE_EVAL, BASE_UNIT):
        if loaded is None:
            raise SftscopeError(f"the Base's scores are not in {run.path} yet; run a cell first")
        scores, items = _score(loaded.model, loaded.tokenizer, cfg, "base", BASE_TAGS, run.name)
        run.write_unit(Tables.TUNE_ITEMS, BASE_UNIT, items)  # before tune_eval: the unit is done once that exists
        run.write_unit(Tables.TUNE_EVAL, BASE_UNIT, scores)
    table = run.read_table(Tables.TUNE_EVAL)
    return table[table["side"] == "base"].to_dict("records")


def retention_rows(tuned: list[Row], base: list[dict], tags: dict, run: str) -> list[Row]:
    """perplexity_change = ppl_tuned - ppl_base per retention task (same texts, same seed)."""
    base_ppl = {r["dataset"]: r["value"] for r in base if r["metric"] == RETENTION_METRIC}
    return [Row(side="tuned", dataset=r.dataset, layer=-1, metric="perplexity_change",
                value=r.value - base_ppl[r.dataset], n=r.n, preset=r.preset, mode=r.mode, run=run,
                extra={**tags, "task_order": r.extra.get("task_order"), "protocol": r.extra.get("protocol", ""),
                       "backend": r.extra.get("backend", "")})
            for r in tuned if r.metric == RETENTION_METRIC and r.dataset in base_ppl]


def run_tune(cfg: TuneConfig, out: str | Path | None, progress: bool = True) -> RunDir:
    """Train and evaluate one cell into `out` (skipped when already finished there); returns its RunDir.

    Raises:
        SftscopeError: bad training data, an unloadable Base, a block spec that does not fit the model, or a
            different config already recorded in `out`.
    """
    if out is None:
        raise SftscopeError("give the cell's run directory: --out DIR")
    run = RunDir(out)
    if cell_done(run):
        run.bind_config("tune", cfg.identity())  # a finished cell: only its config is checked
        return run
    check_output_dir(out)
    check_tuning([cfg])  # blocks, targets, budget, training data and task data, before the Base loads
    run.bind_config("tune", cfg.identity())
    name = cfg.name or run.name
    records = load_train_records(cfg.train, cfg.data_dir, cfg.train_limit)
    loaded = load_model(ModelRef.parse(cfg.base, "base"), cfg.load_options())
    run.write_environment(cfg.seed, [loaded.record])
    base = base_scores(cfg, out, loaded)  # before training: the same loaded model is then adapted in place
    result = train_cell(loaded.model, loaded.tokenizer, records, cfg, progress=progress)
    tags = cell_tags(cfg, name, result)
    run.write_unit(Tables.TUNING, UNIT, training_rows(result, tags, run.name))
    tuned, items = _score(result.model, loaded.tokenizer, cfg, "tuned", tags, run.name)
    run.write_unit(Tables.TUNE_ITEMS, UNIT, items)  # before tune_eval: a cell is done once tune_eval exists
    run.write_unit(Tables.TUNE_EVAL, UNIT, tuned + retention_rows(tuned, base, tags, run.name))
    del loaded, result
    gc.collect()
    return run
