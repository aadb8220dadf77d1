"""`sftscope sweep`: masks x seeds x controls expanded into independent tuning cells, then summarised.

Layout of a sweep directory:
    config.json, sweep_summary.parquet/.csv, tune_eval / tuning (every finished cell's rows gathered), figures/
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from sftscope.errors import SftscopeError
from sftscope.models.loading import ModelRef, load_config
from sftscope.results.rundir import RunDir
from sftscope.tuning.blocks import parse_block_spec, same_size_controls, segment_masks
from sftscope.tuning.pipeline import EVAL, TUNING, TuneCell, cell_done, run_tune

CONTROLS = ("lora-early", "lora-late", "lora-random", "lora-random-layers",
            "full-early", "full-middle", "full-late", "full-random", "full-random-layers")
DEFAULT_CONTROLS = ("lora-early", "lora-late", "lora-random", "full-early", "full-middle", "full-late", "full-random")
REFERENCE = ("lora", "all")  # (method, spec) every configuration is compared with


def default_masks(k: int) -> list[str]:
    """Single-segment masks of k, the middle runs 0 1^w 0.. for w = k-3, k-2 (01100, 01110 at k = 5), and all."""
    masks = [m for m in segment_masks(k) if m.count("1") == 1]
    masks += ["0" + "1" * w + "0" * (k - 1 - w) for w in (k - 3, k - 2) if w >= 2]
    return masks + ["all"]


def is_middle(mask: str) -> bool:
    """A mask that leaves the first and the last segment out (01000, 01110, ...)."""
    return set(mask) <= {"0", "1"} and "1" in mask and mask[0] == "0" and mask[-1] == "0"


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep; `template` holds everything shared by the cells (its blocks/method/seed are replaced)."""

    template: TuneCell
    k: int = 5
    masks: tuple[str, ...] | None = None          # None: default_masks(k)
    seeds: tuple[int, ...] = (0, 1, 2)
    controls: tuple[str, ...] = DEFAULT_CONTROLS
    also_k: tuple[int, ...] = ()

    def __post_init__(self):
        for name in ("masks", "seeds", "controls", "also_k"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))
        unknown = [c for c in self.controls if c not in CONTROLS]
        if unknown:
            raise SftscopeError(f"unknown control(s) {', '.join(unknown)}; use any of {', '.join(CONTROLS)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise SftscopeError(f"--seeds needs distinct seeds, got {list(self.seeds)}")
        bad = [m for m in self.mask_list() if m != "all" and not (set(m) <= {"0", "1"} and "1" in m)]
        if bad:
            raise SftscopeError(f"bad mask(s) {', '.join(bad)}: a mask is 0s and 1s with at least one 1, e.g. 01100")

    def mask_list(self) -> list[str]:
        return list(self.masks) if self.masks is not None else default_masks(self.k)

    def as_dict(self) -> dict:
        return {**asdict(self), "template": self.template.as_dict(), "masks": self.mask_list()}


@dataclass(frozen=True)
class SweepCell:
    """One cell of the sweep: its index, name, directory and the TuneCell it runs."""

    index: int
    name: str
    role: str            # mask | reference | control:<name>
    path: Path
    cell: TuneCell = field(repr=False)


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", spec.replace("%", "pct"))


def configurations(cfg: SweepConfig, num_layers: int) -> list[tuple[str, str, str]]:
    """(role, method, spec) of every configuration, masks first, duplicates of the same blocks dropped."""
    wanted = [("reference" if m == "all" else "mask", "lora", m) for m in cfg.mask_list()]
    wanted += [("mask", "lora", m) for k in cfg.also_k for m in segment_masks(k) if m.count("1") == 1]
    middle = [m for m in cfg.mask_list() if is_middle(m)]
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
        num_layers = load_config(ModelRef.parse(cfg.template.base, "base"),
                                 cfg.template.load.trust_remote_code).num_hidden_layers
    cells = []
    for seed in cfg.seeds:
        for role, method, spec in configurations(cfg, num_layers):
            name = f"{method}-{_slug(spec)}-seed{seed}"
            k = len(spec) if set(spec) <= {"0", "1"} else None
            config = replace(cfg.template.config, method=method, blocks=spec, segments=k, seed=seed)
            cell = replace(cfg.template, config=config, base_eval=str(out / "base"), name=name)
            cells.append(SweepCell(len(cells), name, role, out / "cells" / name, cell))
    return cells


def tune_argv(cell: TuneCell, out: str | Path) -> list[str]:
    """The `sftscope tune` arguments that rebuild exactly `cell` (what `sweep --list` prints)."""
    c = cell.config
    targets = c.target_modules if isinstance(c.target_modules, str) else ",".join(c.target_modules)
    argv = ["sftscope", "tune", "--base", cell.base, "--train", cell.train, "--method", c.method, "--blocks",
            c.blocks, "--seed", str(c.seed), "--rank", str(c.rank), "--alpha", repr(c.alpha), "--alpha-policy",
            c.alpha_policy, "--target-modules", targets, "--full-scope", c.full_scope,
            "--tasks", ",".join(c.eval_tasks) or "none", "--retention", ",".join(cell.retention) or "none",
            "--epochs", str(c.epochs), "--lr", repr(c.lr), "--batch-size", str(c.batch_size), "--grad-accum",
            str(c.grad_accum), "--max-length", str(c.max_length), "--warmup-ratio", repr(c.warmup_ratio),
            "--lr-scheduler", c.lr_scheduler, "--mixed-precision", c.mixed_precision,
            "--eval-batch-size", str(c.eval_batch_size), "--dtype", cell.load.dtype, "--device", cell.load.device]
    optional = {"--segments": c.segments, "--max-steps": c.max_steps, "--limit": c.eval_limit,
                "--retention-limit": cell.retention_limit, "--train-limit": cell.train_limit,
                "--data-dir": cell.data_dir, "--device-map": cell.load.device_map, "--base-eval": cell.base_eval,
                "--name": cell.name}
    argv += [a for flag, v in optional.items() if v is not None for a in (flag, str(v))]
    if cell.load.trust_remote_code:
        argv.append("--trust-remote-code")
    return argv + ["--out", str(out)]


def list_commands(cells: list[SweepCell]) -> list[str]:
    """One shell-quoted `sftscope tune ...` line per cell."""
    return [shlex.join(tune_argv(c.cell, c.path)) for c in cells]


def run_sweep(cfg: SweepConfig, out: str | Path, only: int | None = None, progress: bool = True,
              echo=print) -> tuple[RunDir, list[SweepCell]]:
    """Run every unfinished cell (or only cell `only`) in order; returns the sweep RunDir and its cells."""
    run = RunDir(out)
    run.bind_config("sweep", cfg.as_dict())
    cells = expand_cells(cfg, out)
    if only is not None and not 0 <= only < len(cells):
        raise SftscopeError(f"--cell {only} is out of range: this sweep has cells 0-{len(cells) - 1} (see --list)")
    for c in cells if only is None else [cells[only]]:
        if cell_done(RunDir(c.path)):
            continue
        echo(f"[sweep] cell {c.index + 1}/{len(cells)}: {c.name}")
        run_tune(c.cell, c.path, progress=progress)
    return run, cells


def summarize_sweep(out: str | Path, cells: list[SweepCell], plots: bool = True) -> RunDir:
    """Gather the finished cells' tables into the sweep directory and write sweep_summary (+ figures)."""
    from sftscope.tuning.summary import SUMMARY, summarize
    run = RunDir(out)
    done = [c for c in cells if cell_done(RunDir(c.path))]
    if not done:
        raise SftscopeError(f"no finished cell under {Path(out) / 'cells'} yet: run the sweep (or its cells) first")
    for c in done:
        cell_run = RunDir(c.path)
        for table in (TUNING, EVAL):
            if not run.is_done(table, c.name):
                df = cell_run.read_table(table)
                run.write_unit(table, c.name, df[df["side"] == "tuned"].to_dict("records"))
    base = RunDir(Path(out) / "base").read_table(EVAL)
    run.write_unit(EVAL, "base", base.to_dict("records"))
    evals, tuning = run.read_table(EVAL), run.read_table(TUNING)
    run.write_unit(SUMMARY, "summary", summarize(evals, tuning))
    if plots:
        from sftscope.report.plots.sweep import plot_sweep
        plot_sweep(run.read_table(SUMMARY), run.figures)
    return run


def demo_sweep_config(base: str, data_dir: str | None, quick: bool, organism: bool = True) -> SweepConfig:
    """The demo's sweep: single-segment masks + all-layer LoRA over seeds (quick: 2 masks, 2 seeds, fewer steps).

    On the organism: train organism-sft from its Base, score organism-qa and organism-mc, retention = organism-facts
    perplexity; k = min(5, L). Step counts were chosen to fit the demo's time budget on a 2-core CPU."""
    from sftscope.tuning.config import TuneConfig
    if organism:
        num_layers = load_config(ModelRef.parse(base, "base")).num_hidden_layers
        k = min(5, num_layers)
        singles = [m for m in segment_masks(k) if m.count("1") == 1]
        masks = [singles[1], singles[-1], "all"] if quick else singles + ["all"]
        config = TuneConfig(lr=5e-3, max_steps=60 if quick else 80, batch_size=8, max_length=128, warmup_ratio=0.1,
                            eval_tasks=("organism-qa", "organism-mc"), eval_batch_size=32)
        template = TuneCell(base, "organism-sft", config, retention=("organism-facts",), data_dir=data_dir)
    else:  # the user's own Base: GSM8K on a small budget (this is a demo, not the paper's protocol)
        k, masks = 5, ["01000", "00001", "all"] if quick else default_masks(5)
        config = TuneConfig(max_steps=20 if quick else 100, batch_size=4, eval_tasks=("gsm8k",),
                            eval_limit=20 if quick else 100)
        template = TuneCell(base, "gsm8k", config, data_dir=data_dir, train_limit=400, retention_limit=50)
    return SweepConfig(template, k=k, masks=tuple(masks), seeds=(0, 1) if quick else (0, 1, 2), controls=())


def run_demo_sweep(base: str, data_dir: str | None, out: str | Path, quick: bool, organism: bool = True) -> Path:
    """Run and summarise the demo's sweep into out; returns the sweep_summary table path."""
    from sftscope.tuning.summary import SUMMARY
    cfg = demo_sweep_config(base, data_dir, quick, organism)
    _, cells = run_sweep(cfg, out, progress=False)  # CPU threads: sftscope.runtime, set by the CLI
    run = summarize_sweep(out, cells)
    return run.path / f"{SUMMARY}.parquet"
