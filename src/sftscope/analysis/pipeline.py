"""`sftscope analyze`: stream data sets through Base and variants once, accumulate every metric, write tables.

Flow: load (checked) models -> per data set: seeded samples -> per side: tokens -> batches -> ONE forward pass
per model per batch (hooks) -> per-layer accumulators -> tidy rows -> metrics.parquet/.csv -> figures.
Resume unit: one data set (all sides). In sequential mode each side's accumulator is spilled to disk as its
own unit, so a pair that does not fit in memory together is analysed one model at a time.
"""

from __future__ import annotations

import gc
import json
import sys
from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from sftscope import distributed
from sftscope.analysis.config import AnalyzeConfig
from sftscope.analysis.uncertainty import add_uncertainty
from sftscope.capture.batches import EncodedSample, encode_texts, make_batches
from sftscope.capture.hooks import capture
from sftscope.data.prepare import PreparedData, prepare_dataset, render_for_side
from sftscope.errors import SftscopeError
from sftscope.metrics import dense
from sftscope.metrics.accumulators import SideAccumulator, pair_rows, side_rows
from sftscope.models.loading import LoadedModel, load_model, load_pair, load_tokenizer
from sftscope.preflight import check_pair_run, check_samples
from sftscope.results.rundir import RunDir, _atomic_write
from sftscope.results.schema import MODE_DIAGNOSTIC, Row, Tables
from sftscope.runtime import resolve_device

TABLE = Tables.METRICS
MIN_TOKENS = 2  # a one-token sample has no token-level structure to measure


def _encode_side(prepared: PreparedData, loaded: LoadedModel, cfg: AnalyzeConfig) -> list[EncodedSample]:
    use_chat = cfg.chat_template and loaded.name != "base"
    texts = [render_for_side(prepared.spec, r, loaded.tokenizer, use_chat) for r in prepared.records]
    return encode_texts(prepared.ids, texts, loaded.tokenizer, cfg.max_length)


def _data_rows(prepared: PreparedData, side: str, encoded: list[EncodedSample]) -> list[Row]:
    """Diagnostics a reader needs to trust the numbers: truncation, too-short and empty samples."""
    n = len(encoded)
    common = dict(side=side, dataset=prepared.name, layer=-1, n=n, mode=MODE_DIAGNOSTIC)
    return [Row(metric="truncated_samples", value=sum(e.truncated for e in encoded), **common),
            Row(metric="too_short_samples", value=sum(len(e.input_ids) < MIN_TOKENS for e in encoded), **common),
            Row(metric="empty_texts_dropped", value=prepared.dropped_empty, **common),
            Row(metric="tokens", value=sum(len(e.input_ids) for e in encoded), **common)]


def _usable(prepared: PreparedData, encoded: list[EncodedSample]) -> list[EncodedSample]:
    usable = [e for e in encoded if len(e.input_ids) >= MIN_TOKENS]
    if not usable:
        raise SftscopeError(f"every sample of {prepared.name!r} is shorter than {MIN_TOKENS} tokens: "
                            "nothing to measure; choose another data set or text field")
    return usable


def _new_accumulator(loaded: LoadedModel, prepared: PreparedData, cfg: AnalyzeConfig) -> SideAccumulator:
    return SideAccumulator(loaded.parts.num_layers + 1, cfg.presets, prepared.token_ids, prepared.pooled_ids,
                           eigen_route=cfg.eigen_route)


def _run_side(loaded: LoadedModel, prepared: PreparedData, encoded: list[EncodedSample], cfg: AnalyzeConfig,
              acc: SideAccumulator) -> None:
    pad = loaded.tokenizer.pad_token_id
    batches = distributed.shard(list(make_batches(encoded, cfg.batch_size, pad, cfg.padding_side)))
    for batch in tqdm(batches, desc=f"{loaded.name} x {prepared.name}", unit="batch", leave=False):
        capture(loaded, batch, acc.update)


def _merged_on_main(accs: dict[str, SideAccumulator]) -> dict[str, SideAccumulator] | None:
    """The accumulators of every rank merged into rank 0's (each rank fed a disjoint share of the samples; the
    merge gives the tables of one accumulator that saw them all); None on the other ranks."""
    if distributed.world_size() == 1:
        return accs
    gathered = distributed.gather_to_main({name: acc.state_dict() for name, acc in accs.items()})
    if gathered is None:
        return None
    for states in gathered[1:]:
        for name, acc in accs.items():
            acc.merge(states[name])
    return accs


def _finish_dataset(run: RunDir, prepared: PreparedData, accs: dict[str, SideAccumulator],
                    diagnostics: list[Row], cfg: AnalyzeConfig) -> None:
    rows = list(diagnostics)
    for side, acc in accs.items():
        rows += side_rows(acc, side, prepared.name)
    base = accs["base"]
    for side, acc in accs.items():
        if side != "base":
            pairs = pair_rows(base, acc, side, prepared.name)
            rows += pairs + add_uncertainty(pairs, base, acc, side, prepared.name, cfg.bootstrap,
                                            cfg.robustness_splits, cfg.seed)
    run.write_unit(TABLE, prepared.name, rows)


def _analyze_resident(cfg: AnalyzeConfig, run: RunDir, datasets: list[PreparedData], configs) -> None:
    """All models loaded; each batch of samples goes through the Base, then each variant."""
    pending = [p for p in datasets if not run.is_done(TABLE, p.name)]
    if not pending:  # resume with everything finished: no model needs loading
        return
    models = load_pair(cfg.refs(), cfg.load_options(), configs)
    run.write_environment(cfg.seed, [m.record for m in models])
    for prepared in pending:
        encoded = {m.name: _encode_side(prepared, m, cfg) for m in models}
        diagnostics = [r for m in models for r in _data_rows(prepared, m.name, encoded[m.name])]
        usable_ids = {e.id for e in _usable(prepared, encoded["base"])}
        accs = {m.name: _new_accumulator(m, prepared, cfg) for m in models}
        # Group samples by the Base's token length so every model sees the same batches; several processes each
        # run a contiguous share of the groups, and rank 0 merges their accumulated states.
        groups = list(make_batches([e for e in encoded["base"] if e.id in usable_ids], cfg.batch_size, 0))
        by_id = {m.name: {e.id: e for e in encoded[m.name]} for m in models}
        for group in tqdm(distributed.shard(groups), desc=f"{'+'.join(by_id)} x {prepared.name}", unit="batch"):
            for m in models:
                side = [by_id[m.name][i] for i in group.sample_ids]
                for batch in make_batches(side, len(side), m.tokenizer.pad_token_id, cfg.padding_side, False):
                    capture(m, batch, accs[m.name].update)
        merged = _merged_on_main(accs)
        distributed.on_main(lambda: _finish_dataset(run, prepared, merged, diagnostics, cfg))


def _analyze_sequential(cfg: AnalyzeConfig, run: RunDir, datasets: list[PreparedData], configs) -> None:
    """One model at a time: each side's accumulated state is spilled to disk, then sides are paired."""
    refs = cfg.refs()
    spill = run.path / "spill"
    spill.mkdir(parents=True, exist_ok=True)
    pending = [p for p in datasets if not run.is_done(TABLE, p.name)]
    records = []
    for ref, config in zip(refs, configs):
        todo = [p for p in pending if not (spill / f"{ref.name}--{p.name}.pt").exists()]
        if not todo:
            continue
        loaded = load_model(ref, cfg.load_options(), config)
        records.append(loaded.record)
        for prepared in todo:
            encoded = _encode_side(prepared, loaded, cfg)
            acc = _new_accumulator(loaded, prepared, cfg)
            _run_side(loaded, prepared, _usable(prepared, encoded), cfg, acc)
            merged = _merged_on_main({ref.name: acc})
            diag = [asdict(r) for r in _data_rows(prepared, ref.name, encoded)]
            distributed.on_main(lambda: _spill(spill, f"{ref.name}--{prepared.name}", merged[ref.name], diag))
        del loaded
        gc.collect()
    run.write_environment(cfg.seed, records)
    device = resolve_device(cfg.load_options().device)  # the end-of-run math runs where the models ran

    def pair_sides():
        for prepared in pending:
            accs = {r.name: SideAccumulator.load(spill / f"{r.name}--{prepared.name}.pt", device) for r in refs}
            diag = [Row(**d) for r in refs
                    for d in json.loads((spill / f"{r.name}--{prepared.name}.diag.json").read_text())]
            _finish_dataset(run, prepared, accs, diag, cfg)
    distributed.on_main(pair_sides)


def _spill(folder: Path, name: str, acc: SideAccumulator, diagnostics: list[dict]) -> None:
    """One side's state on disk: diagnostics, then the accumulator, each written whole (temporary file + rename),
    the accumulator last: its file marks the side finished, so a killed run never leaves a half file there."""
    _atomic_write(folder / f"{name}.diag.json", lambda tmp: Path(tmp).write_text(json.dumps(diagnostics)))
    _atomic_write(folder / f"{name}.pt", lambda tmp: acc.save(tmp))


def run_analyze(cfg: AnalyzeConfig, out: str | Path) -> RunDir:
    """Run (or resume) an analysis into `out`; returns the run directory.

    Raises:
        SftscopeError: unknown data sets or fields, models that cannot be loaded or compared, nothing to measure,
            or a different config already recorded in `out`.
    """
    refs, configs = check_pair_run(cfg, out)  # models first: a wrong path fails before data is fetched
    datasets = [prepare_dataset(d, cfg.data_dir, cfg.seed, cfg.token_samples, cfg.pooled_samples, cfg.text_field)
                for d in cfg.data]
    base_tokenizer = load_tokenizer(refs[0], cfg.trust_remote_code)
    for prepared in datasets:
        check_samples(prepared, base_tokenizer, cfg.max_length, MIN_TOKENS)
    run = RunDir(out)
    run.bind_config("analyze", cfg.identity())
    pending = [p.name for p in datasets if not run.is_done(TABLE, p.name)]
    eigen = dense.router(cfg.eigen_route)
    before = sum(eigen.matrices.values())
    if cfg.mode == "resident":
        _analyze_resident(cfg, run, datasets, configs)
    else:
        _analyze_sequential(cfg, run, datasets, configs)
    # where decompositions of accelerator-held states ran, every rank's (a collective: every rank takes part)
    lines = distributed.gather_to_main(eigen.describe() if sum(eigen.matrices.values()) > before else None)
    for rank, line in enumerate(lines or []):
        if line is not None:
            tqdm.write(f"rank {rank}: {line}" if len(lines) > 1 else line, file=sys.stderr)
    # figures are drawn from the table: redraw only when it changed (or they are missing)
    if cfg.plots and (pending or not any(run.figures.glob("alignment__*.png"))):
        from sftscope.report.plots.analysis import plot_analysis
        plot_analysis(run.read_table(TABLE), run.figures)
    return run
