"""Checks every stage runs before any model weight loads or any result is written.

Rule: everything cheap (the output folder, model configs and tokenizers, names, block specs, target modules,
budgets, counts, every record of a data file, the data of every task) is checked first, in the order that
names the real problem (a wrong model path before a data set is fetched); a run folder is bound (config.json
written) only when the run really starts, so a failed attempt never blocks the corrected command.
"""

from __future__ import annotations

from pathlib import Path

from sftscope.errors import SftscopeError
from sftscope.results.rundir import check_output_dir

__all__ = ["check_output_dir", "check_pair_run", "check_models", "check_weight_files", "check_max_length", "check_samples",
           "check_task_data", "check_tuning"]


def check_models(refs, trust_remote_code: bool = False, pair: bool = True) -> list:
    """Configs of `refs` (loaded cheaply, tokenizers checked); with `pair`, Base (first) and each variant must be
    comparable layer by layer. Returns the PretrainedConfigs for the loaders to reuse.

    Raises:
        SftscopeError: a missing path, an unreadable config or tokenizer, an unknown architecture, or (pair) a
            variant of another architecture, depth, width or tokenization.
    """
    from sftscope.models.architectures import arch_for
    from sftscope.models.loading import check_pair, load_config, load_tokenizer

    if pair:
        configs = check_pair(list(refs), trust_remote_code)
    else:
        configs = []
        for ref in refs:
            config = load_config(ref, trust_remote_code)
            arch_for(config.model_type)
            load_tokenizer(ref, trust_remote_code)
            configs.append(config)
    for ref in refs:
        check_weight_files(ref)
    return configs


def check_pair_run(cfg, out) -> tuple[list, list]:
    """The checks every stage that streams data through a Base and its variants starts with: the output folder,
    then the models (a wrong path fails before any data set is fetched) and --max-length against their positions.
    Returns (refs, configs) for the loaders to reuse.

    Raises:
        SftscopeError: naming the first problem.
    """
    check_output_dir(out)
    refs = cfg.refs()
    configs = check_models(refs, cfg.trust_remote_code)
    check_max_length(configs, cfg.max_length, [r.name for r in refs])
    return refs, configs


def check_weight_files(ref) -> None:
    """A local model folder's weight files: present, every shard there, no .safetensors file truncated (headers
    and sizes only; hub models are checked by their download).

    Raises:
        SftscopeError: naming the file and what to do.
    """
    from sftscope.models.refs import looks_local
    from sftscope.weights.sources import open_source

    path = Path(ref.id).expanduser()
    if looks_local(ref.id) and path.is_dir():
        try:
            open_source(path)
        except SftscopeError as exc:
            raise SftscopeError(f"{ref.name}: {exc}") from exc


def check_samples(prepared, tokenizer, max_length: int, min_tokens: int) -> None:
    """At least one sample of a data set must have `min_tokens` tokens after cutting at `max_length`.

    Raises:
        SftscopeError: nothing would be measured.
    """
    from sftscope.capture.batches import encode_texts

    texts = [prepared.spec.render(r) for r in prepared.records]
    encoded = encode_texts(prepared.ids, texts, tokenizer, max_length)
    if not any(len(e.input_ids) >= min_tokens for e in encoded):
        raise SftscopeError(f"every sample of {prepared.name!r} is shorter than {min_tokens} tokens (max length "
                            f"{max_length}): nothing to measure; choose another data set, text field or "
                            "--max-length")


def max_positions(config) -> int | None:
    """The longest sequence the model's positions cover (None when the config does not say)."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_max_length(configs, max_length: int, names=None) -> None:
    """--max-length must fit every model's positions: longer sequences would run past its position table.

    Raises:
        SftscopeError: a model covers fewer positions than `max_length`.
    """
    for i, config in enumerate(configs):
        limit = max_positions(config)
        if limit is not None and max_length > limit:
            who = f" ({names[i]})" if names else ""
            raise SftscopeError(f"--max-length {max_length} exceeds the {limit} positions of the model{who}; use "
                                f"--max-length {limit} or less")


def task_datasets(task: str) -> list[tuple[str, str | None]]:
    """(data set, split) pairs a registered task reads: its own name, or the text set of a `ppl:` task."""
    from sftscope.data.registry import DATASETS

    if task.startswith("ppl:"):
        name = task[4:]
        return [(name, None)] if name in DATASETS else []
    return [(task, None)] if task in DATASETS else []


def check_task_data(tasks, data_dir) -> None:
    """Read the data of every task now (local copies are cheap to read; a hub copy is fetched once either way),
    so a missing data set fails before a model is loaded or trained, not after. `ppl:<file>` files are read
    through the same readers.

    Raises:
        SftscopeError: an unknown task, or data that cannot be found or read.
    """
    from sftscope.data.registry import load_records, load_user_file
    from sftscope.evaluation.tasks import get_task

    for task in tasks:
        get_task(task)
        for name, split in task_datasets(task):
            load_records(name, data_dir, split)
        if task.startswith("ppl:") and not task_datasets(task):
            path = Path(task[4:]).expanduser()
            if not path.exists():
                raise SftscopeError(f"task {task!r}: {path} is neither a registered data set nor an existing file")
            load_user_file(path)


def check_tuning(cfgs) -> None:
    """Tuning cells (TuneConfig, or a list of cells sharing a Base, as a sweep's do): blocks, target modules and
    budget against the Base's architecture (one weightless model), the training data and the data of every
    task, before the Base is loaded or scored.

    Raises:
        SftscopeError: anything that would fail later in a cell (the message names the cell's blocks).
    """
    from sftscope.models.refs import ModelRef
    from sftscope.tuning.modules import meta_model_from_config
    from sftscope.tuning.pipeline import load_train_records
    from sftscope.tuning.train import plan_adaptation

    cfgs = cfgs if isinstance(cfgs, (list, tuple)) else [cfgs]
    if not cfgs:
        return
    first = cfgs[0]
    ref = ModelRef.parse(first.base, "base")
    (config,) = check_models([ref], first.trust_remote_code, pair=False)
    check_max_length([config], first.max_length, ["base"])
    meta = meta_model_from_config(config)
    for cfg in cfgs:
        try:
            plan_adaptation(meta, cfg)
        except SftscopeError as exc:
            raise SftscopeError(f"{cfg.method} on blocks {cfg.blocks} (seed {cfg.seed}): {exc}") from exc
    load_train_records(first.train, first.data_dir, first.train_limit)
    # lm-eval's tasks read their own data (the backend writes local configs when the run starts)
    native = first.tasks if first.backend == "sftscope" else []
    check_task_data([*native, *first.retention], first.data_dir)
