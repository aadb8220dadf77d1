"""`sftscope swap`: hybrids of Base and SFT, one segment at a time, evaluated on data sets and tasks.

A hybrid "base<-sft seg i" is the Base with the SFT's blocks of segment i (whole segments by default; with
--swap-depth n the last n blocks of each segment, the authors' setting); "sft<-base" is the reverse. Each is
run with the receiving model's own final norm + head ("original") and with the donor's ("transferred").
Metrics: teacher-forced next-token accuracy and perplexity on each data set, and task scores where the data
set has a log-likelihood or exact-match task (MMLU, organism-qa, organism-mc).
"""

from __future__ import annotations

import math
from pathlib import Path

from tqdm.auto import tqdm

from sftscope import distributed
from sftscope.capture.batches import encode_texts, make_batches
from sftscope.data.prepare import prepare_dataset
from sftscope.models.loading import LoadedModel, load_pair
from sftscope.preflight import check_pair_run, check_task_data
from sftscope.probing.logit_lens import next_token_stats
from sftscope.results.rundir import RunDir
from sftscope.results.schema import MODE_SWAP, Row, Tables
from sftscope.swapping.config import DIRECTIONS, SwapConfig
from sftscope.swapping.surgery import segment_layers, transplant

TABLE = Tables.SWAP


def hybrids(num_layers: int, cfg: SwapConfig) -> list[dict]:
    """Every (direction, segment, head) hybrid, plus the unswapped models and head-only swaps as references."""
    plans = [{"hybrid": f"{who}", "receiver": who, "donor": None, "segment": -1, "layers": [], "head": "original"}
             for who in ("base", "sft")]
    for direction in cfg.directions:
        receiver, donor = DIRECTIONS[direction]
        plans.append({"hybrid": f"{direction} head-only", "receiver": receiver, "donor": donor, "segment": -1,
                      "layers": [], "head": "transferred"})
        for seg, layers in enumerate(segment_layers(num_layers, cfg.segments)):
            chosen = layers if cfg.swap_depth is None else layers[-cfg.swap_depth:]
            for head in cfg.heads:
                plans.append({"hybrid": f"{direction} seg{seg} head={head}", "receiver": receiver, "donor": donor,
                              "segment": seg, "layers": chosen, "head": head})
    return plans


TEACHER_FORCED = "sftscope:teacher-forced@1"  # token accuracy / perplexity of the data set's text


def _teacher_forced(model: LoadedModel, batches) -> dict[str, float]:
    """Next-token accuracy and perplexity over `batches`; several processes each run a contiguous share of the
    batches and the sums are added in batch order (the one-process numbers)."""
    start, stop = distributed.shard_bounds(len(batches))
    stats = distributed.gather_dict({i: next_token_stats(model, batches[i]) for i in range(start, stop)})
    correct = nll = tokens = 0
    for i in range(len(batches)):
        c, l, n = stats[i]
        correct, nll, tokens = correct + c, nll + l, tokens + n
    return {"token_accuracy": correct / tokens, "perplexity": math.exp(nll / tokens), "tokens": tokens}


def _scored_task(task: str | None) -> str | None:
    """The data set's task when it gives a swap score (log-likelihood or generation), else None."""
    from sftscope.evaluation.tasks import TASKS
    return task if task in TASKS and TASKS[task].kind != "perplexity" else None


def _task_scores(model: LoadedModel, task: str | None, data_dir, cfg: SwapConfig
                 ) -> tuple[dict[str, float], dict[str, str], int]:
    """({'<task>:<metric>': value}, {'<task>:<metric>': protocol}, items scored) of the data set's task, if it
    has one."""
    task = _scored_task(task) if cfg.tasks else None
    if task is None:
        return {}, {}, 0
    from sftscope.evaluation.tasks import run_task
    result = run_task(task, model.model, model.tokenizer, data_dir=data_dir, limit=cfg.task_limit,
                      batch_size=cfg.batch_size, seed=cfg.seed)
    return ({f"{task}:{k}": float(v) for k, v in result.metrics.items()},
            {f"{task}:{k}": result.protocols.get(k, "") for k in result.metrics}, int(result.n))


def run_swap(cfg: SwapConfig, out: str | Path) -> RunDir:
    """Run (or resume) every hybrid on every data set into `out`; returns the run directory.

    Raises:
        SftscopeError: bad data sets, models that cannot be loaded or compared, or a different config in `out`.
    """
    refs, configs = check_pair_run(cfg, out)
    plans = hybrids(configs[0].num_hidden_layers, cfg)  # a segment count the model cannot hold fails here
    datasets = [prepare_dataset(d, cfg.data_dir, cfg.seed, cfg.samples, cfg.samples, cfg.text_field)
                for d in cfg.data]
    if cfg.tasks:
        check_task_data([t for t in (_scored_task(p.spec.task) for p in datasets) if t], cfg.data_dir)
    run = RunDir(out)
    run.bind_config("swap", cfg.identity())
    if all(run.is_done(TABLE, f"{p.name}--{h['hybrid']}") for p in datasets for h in plans):
        return _plot(run, cfg.plots)  # resume with everything finished: no model needs loading
    models = {m.name: m for m in load_pair(refs, cfg.load_options(), configs)}
    run.write_environment(cfg.seed, [m.record for m in models.values()])
    tok = models["base"].tokenizer
    for prepared in datasets:
        enc = encode_texts(prepared.ids, [prepared.spec.render(r) for r in prepared.records], tok, cfg.max_length)
        batches = list(make_batches(enc, cfg.batch_size, tok.pad_token_id))
        for plan in tqdm(plans, desc=f"swap x {prepared.name}", unit="hybrid"):
            unit = f"{prepared.name}--{plan['hybrid']}"
            if run.is_done(TABLE, unit):
                continue
            receiver = models[plan["receiver"]]
            donor = models[plan["donor"]] if plan["donor"] else receiver
            with transplant(receiver, donor, plan["layers"], head=plan["head"] == "transferred"):
                scores = _teacher_forced(receiver, batches)
                task_scores, protocols, items = _task_scores(receiver, prepared.spec.task, cfg.data_dir, cfg)
                scores.update(task_scores)
            n = int(scores.pop("tokens"))  # teacher-forced scores rest on tokens, task scores on the task's items
            extra = {k: plan[k] for k in ("hybrid", "receiver", "segment", "head")}
            extra.update(donor=plan["donor"] or "", blocks=",".join(map(str, plan["layers"])))
            run.write_unit(TABLE, unit, [Row(side=plan["receiver"], dataset=prepared.name, layer=-1, metric=k,
                                             value=v, n=items if k in task_scores else n, mode=MODE_SWAP,
                                             extra={**extra, "protocol": protocols.get(k, TEACHER_FORCED)})
                                         for k, v in scores.items()])
    return _plot(run, cfg.plots)


def _plot(run: RunDir, plots: bool) -> RunDir:
    if plots:
        from sftscope.report.plots.stages import plot_swap
        plot_swap(run.read_table(TABLE), run.figures)
    return run
