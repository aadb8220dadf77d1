"""`sftscope sweep`: masks x seeds x controls expanded into independent tuning cells, then summarised.

Layout of a sweep directory:
    config.json, sweep_summary.parquet/.csv, tune_eval / tuning / tune_items (every finished cell's rows
    gathered), figures/
    base/              the untouched Base's scores, computed once and shared by every cell
    cells/<name>/      one `sftscope tune` run directory per cell (name = method-spec-seedS)
Cells are independent, so any scheduler can run them in parallel: `sweep --list` prints one `sftscope tune`
command line per cell, `sweep --cell I` runs cell I only, `sweep --summarize-only` gathers what is finished.

Configurations: the masks (default: every single-segment mask of k, the middle runs 01100 and 01110 for k = 5,
and `all` = all-layer LoRA, the reference every configuration is compared with), single-segment masks of each
--also-k, and controls: LoRA at the same budget on the first / last / a random run of as many blocks as each
middle mask selects (`same_size_controls`), and full-parameter updates on whole blocks at early / middle /
late / random positions (as many blocks as best match the budget; the realised count is recorded). A control
that selects exactly the blocks of a configuration already in the sweep, for every seed, is not trained twice.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from sftscope.errors import SftscopeError
from sftscope.models.loading import load_config
from sftscope.models.refs import ModelRef
from sftscope.preflight import check_output_dir, check_tuning
from sftscope.results.rundir import RunDir
from sftscope.results.schema import Tables
from sftscope.tuning.blocks import BlockSpec, parse_block_spec, same_size_controls, segment_masks
from sftscope.tuning.config import SweepConfig, TuneConfig
from sftscope.tuning.pipeline import UNIT, cell_done, run_tune

REFERENCE = ("lora", "all")  # (method, blocks) every configuration is compared with


def default_masks(k: int) -> list[str]:
    """Single-segment masks of k, the middle runs 0 1^w 0.. for w = k-3, k-2 (01100, 01110 at k = 5), and all."""
    masks = [m for m in segment_masks(k) if m.count("1") == 1]
    masks += ["0" + "1" * w + "0" * (k - 1 - w) for w in (k - 3, k - 2) if w >= 2]
    return masks + ["all"]


@dataclass(frozen=True)
class SweepCell:
    """One cell of the sweep: its index, name, directory and the TuneConfig it runs."""

    index: int
    name: str
    role: str            # mask | reference | control:<name>
    path: Path
    config: TuneConfig = field(repr=False)


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", spec.replace("%", "pct"))


def configurations(cfg: SweepConfig, num_layers: int) -> list[tuple[str, str, str]]:
    """(role, method, spec) of every configuration, masks first, duplicates of the same blocks dropped."""
    wanted = [("reference" if m == "all" else "mask", "lora", m) for m in cfg.mask_list()]
    wanted += [("mask", "lora", m) for k in cfg.also_k for m in segment_masks(k) if m.count("1") == 1]
    middle = [m for m in cfg.mask_list() if BlockSpec.parse(m).is_middle]
    for control in cfg.controls:
        method, position = control.split("-", 1)
        if method == "full":
            wanted.append((f"control:{control}", "full", position))
            continue
        for mask in middle:
            same_size = same_size_controls(parse_block_spec(mask, num_layers))
            wanted.append((f"control:{control}", "lora", same_size[position]))
    kept, seen = [], set()
    for role, method, spec in wanted:
        # A LoRA configuration is identified by the blocks it selects under each seed (random specs vary).
        key = (method, spec) if method == "full" else \
            (method, tuple(parse_block_spec(spec, num_layers, s).layers for s in cfg.seeds))
        if key not in seen:
            seen.add(key)
            kept.append((role, method, spec))
    return kept


def expand_cells(cfg: SweepConfig, out: str | Path, num_layers: int | None = None) -> list[SweepCell]:
    """Every (configuration, seed) cell, seed-major (all of seed 0 first), with its own directory under out."""
    out = Path(out)
    if num_layers is None:
        num_layers = load_config(ModelRef.parse(cfg.base, "base"), cfg.trust_remote_code).num_hidden_layers
    cells = []
    for seed in cfg.seeds:
        for role, method, spec in configurations(cfg, num_layers):
            name = f"{method}-{_slug(spec)}-seed{seed}"
            config = cfg.cell_config(method, spec, seed, segments=BlockSpec.parse(spec).k,
                                     base_eval=str(out / "base"), name=name)
            cells.append(SweepCell(len(cells), name, role, out / "cells" / name, config))
    return cells


def tune_argv(cfg: TuneConfig, out: str | Path) -> list[str]:
    """The `sftscope tune` command line that rebuilds exactly `cfg` (what `sweep --list` prints)."""
    return ["sftscope", "tune", *cfg.to_argv(), "--out", str(out)]


def list_commands(cells: list[SweepCell]) -> list[str]:
    """One shell-quoted `sftscope tune ...` line per cell."""
    return [shlex.join(tune_argv(c.config, c.path)) for c in cells]


def run_sweep(cfg: SweepConfig, out: str | Path, progress: bool = True, echo=print) -> RunDir:
    """Run every unfinished cell (only `cfg.cell` if set; none with `summarize_only`), then summarise what is
    finished (not after a single `--cell`: other cells may still be running elsewhere). Returns the sweep RunDir.

    Raises:
        SftscopeError: `cfg.cell` out of range, nothing finished to summarise, or a different config in `out`.
    """
    check_output_dir(out)
    cells = expand_cells(cfg, out)
    if cfg.cell is not None and not 0 <= cfg.cell < len(cells):
        raise SftscopeError(f"--cell {cfg.cell} is out of range: this sweep has cells 0-{len(cells) - 1} "
                            "(see --list)")
    todo = [] if cfg.summarize_only else cells if cfg.cell is None else [cells[cfg.cell]]
    todo = [c for c in todo if not cell_done(RunDir(c.path))]
    check_tuning([c.config for c in todo])  # every cell's blocks and budget before the first one trains
    run = RunDir(out)
    run.bind_config("sweep", {**cfg.identity(), "masks": cfg.mask_list()})
    for c in todo:
        echo(f"[sweep] cell {c.index + 1}/{len(cells)}: {c.name}")
        run_tune(c.config, c.path, progress=progress)
    if cfg.cell is None:
        summarize_sweep(out, cells, plots=cfg.plots)
    return run


def summarize_sweep(out: str | Path, cells: list[SweepCell], plots: bool = True) -> RunDir:
    """Gather the finished cells' tables into the sweep directory and write sweep_summary (+ figures)."""
    from sftscope.tuning.summary import summarize
    run = RunDir(out)
    done = [c for c in cells if cell_done(RunDir(c.path))]
    if not done:
        raise SftscopeError(f"no finished cell under {Path(out) / 'cells'} yet: run the sweep (or its cells) first")
    for c in done:
        cell_run = RunDir(c.path)
        # a cell written before per-item scores existed has no tune_items: it is summarised over seeds only
        for table in (Tables.TUNING, Tables.TUNE_EVAL, Tables.TUNE_ITEMS):
            if not run.is_done(table, c.name) and (table != Tables.TUNE_ITEMS or cell_run.is_done(table, UNIT)):
                df = cell_run.read_table(table)
                run.write_unit(table, c.name, df[df["side"] == "tuned"].to_dict("records") if len(df) else [])
    base_run = RunDir(Path(out) / "base")
    run.write_unit(Tables.TUNE_EVAL, "base", base_run.read_table(Tables.TUNE_EVAL).to_dict("records"))
    if base_run.is_done(Tables.TUNE_ITEMS, "base"):
        run.write_unit(Tables.TUNE_ITEMS, "base", base_run.read_table(Tables.TUNE_ITEMS).to_dict("records"))
    evals, tuning = run.read_table(Tables.TUNE_EVAL), run.read_table(Tables.TUNING)
    items = run.read_table(Tables.TUNE_ITEMS) if (run.path / f"{Tables.TUNE_ITEMS}.parquet").exists() else None
    run.write_unit(Tables.SWEEP_SUMMARY, "summary", summarize(evals, tuning, items=items))
    if plots:
        from sftscope.report.plots.sweep import plot_sweep
        plot_sweep(run.read_table(Tables.SWEEP_SUMMARY), run.figures)
    return run


def demo_sweep_config(base: str, data_dir: str | None, quick: bool, organism: bool = True) -> SweepConfig:
    """The demo's sweep: single-segment masks + all-layer LoRA over seeds (quick: 2 masks, 2 seeds, fewer steps).

    On the organism: train organism-sft from its Base, score organism-qa and organism-mc, retention = organism-facts
    perplexity; k = min(5, L). Step counts were chosen to fit the demo's time budget on a 2-core CPU."""
    if organism:
        num_layers = load_config(ModelRef.parse(base, "base")).num_hidden_layers
        k = min(5, num_layers)
        singles = [m for m in segment_masks(k) if m.count("1") == 1]
        masks = [singles[1], singles[-1], "all"] if quick else singles + ["all"]
        return SweepConfig(base=base, train="organism-sft", lr=5e-3, max_steps=60 if quick else 80, batch_size=8,
                           max_length=128, warmup_ratio=0.1, tasks=["organism-qa", "organism-mc"],
                           eval_batch_size=32, retention=["organism-facts"], data_dir=data_dir, k=k, masks=masks,
                           seeds=[0, 1] if quick else [0, 1, 2], controls=[])
    # the user's own Base: GSM8K on a small budget (this is a demo, not the paper's protocol); scored 0-shot, the
    # format it was fine-tuned on (lm-eval's default for gsm8k is 5-shot)
    return SweepConfig(base=base, train="gsm8k", max_steps=20 if quick else 100, batch_size=4, tasks=["gsm8k"],
                       num_fewshot=0, limit=20 if quick else 100, data_dir=data_dir, train_limit=400, retention_limit=50, k=5,
                       masks=["01000", "00001", "all"] if quick else default_masks(5),
                       seeds=[0, 1] if quick else [0, 1, 2], controls=[])


def run_demo_sweep(base: str, data_dir: str | None, out: str | Path, quick: bool, organism: bool = True) -> Path:
    """Run and summarise the demo's sweep into out; returns the sweep_summary table path."""
    run = run_sweep(demo_sweep_config(base, data_dir, quick, organism), out, progress=False)
    return run.path / f"{Tables.SWEEP_SUMMARY}.parquet"
