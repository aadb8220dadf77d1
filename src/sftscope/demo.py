"""`sftscope demo`: every analysis stage on the built-in organism (or on --base/--sft), into one run directory."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sftscope import distributed
from sftscope.config import StageConfig, option
from sftscope.errors import SftscopeError
from sftscope.results.rundir import RunDir, check_output_dir
from sftscope.results.schema import SUGGESTION_FILE, Tables

ORGANISM_DATA = ["organism-qa", "organism-facts", "organism-mc"]


@dataclass(kw_only=True)
class DemoConfig(StageConfig):
    """`sftscope demo`: the main job, every stage into one run directory."""

    quick: bool = option(False, "small organism and sample counts (about 3 minutes on CPU)")
    base: str | None = option(None, "run on your own Base instead of the organism (with --sft)")
    sft: str | None = option(None, "your own fine-tuned model (with --base)")
    data: list[str] | None = option(None, "data sets (default: the organism's, or gsm8k,mmlu)")
    data_dir: str | None = option(None, "folder with local copies (else $SFTSCOPE_DATA_DIR, else the hub)")
    seed: int = option(0, "seed of every stage")
    stages: list[str] | None = option(None, "only these stages (comma-separated, in demo order)")

    def check(self) -> None:
        super().check()
        if (self.base is None) != (self.sft is None):
            raise SftscopeError("give both --base and --sft to run the demo on your own models (or neither)")
        known = [name for name, _ in STAGES]
        unknown = [s for s in self.stages or [] if s not in known]
        if unknown:
            raise SftscopeError(f"unknown demo stage(s) {', '.join(unknown)}; stages: {', '.join(known)}")

    def default_out(self) -> Path:
        return Path("sftscope-runs") / ("demo-quick" if self.quick else "demo")


@dataclass
class DemoPlan:
    """What the demo runs on; sizes shrink with --quick so the whole demo fits a few CPU minutes."""

    base: str
    sft: str
    data: list[str]
    data_dir: str | None
    out: Path
    quick: bool
    seed: int = 0
    organism: bool = True
    done: list[tuple[str, str]] = field(default_factory=list)  # (stage, where its results are)

    @property
    def num_layers(self) -> int:
        from sftscope.models.loading import ModelRef, load_config
        return load_config(ModelRef("base", self.base)).num_hidden_layers

    @property
    def token_samples(self) -> int:
        return 24 if self.quick else 100

    @property
    def pooled_samples(self) -> int:
        return 96 if self.quick else 400


def _table(run, table: str) -> str:
    return str(run.path / f"{table}.parquet")


def _stage_analyze(plan: DemoPlan) -> str:
    from sftscope.analysis.config import AnalyzeConfig
    from sftscope.analysis.pipeline import run_analyze

    cfg = AnalyzeConfig(base=plan.base, sft=plan.sft, data=plan.data, data_dir=plan.data_dir,
                        token_samples=plan.token_samples, pooled_samples=plan.pooled_samples, max_length=256,
                        batch_size=16, seed=plan.seed)
    return _table(run_analyze(cfg, plan.out), Tables.METRICS)


def _stage_weights(plan: DemoPlan) -> str:
    from sftscope.weights.config import WeightsConfig
    from sftscope.weights.pipeline import run_weights

    return _table(run_weights(WeightsConfig(base=plan.base, sft=plan.sft), plan.out), Tables.WEIGHTS)


def _stage_correlate(plan: DemoPlan) -> str:
    from sftscope.stats.config import CorrelateConfig
    from sftscope.stats.pipeline import run_correlate

    return _table(run_correlate(CorrelateConfig(), plan.out), Tables.CORRELATION)


def _stage_probe(plan: DemoPlan) -> str:
    from sftscope.probing.config import ProbeConfig
    from sftscope.probing.pipeline import run_probe

    cfg = ProbeConfig(base=plan.base, sft=plan.sft, data=plan.data, data_dir=plan.data_dir, max_length=256,
                      batch_size=16, seed=plan.seed, samples=plan.token_samples * 2)
    return _table(run_probe(cfg, plan.out), Tables.PROBE)


def _stage_swap(plan: DemoPlan) -> str:
    from sftscope.swapping.config import SwapConfig
    from sftscope.swapping.pipeline import run_swap

    cfg = SwapConfig(base=plan.base, sft=plan.sft, data=plan.data[:2], data_dir=plan.data_dir, max_length=256,
                     batch_size=16, seed=plan.seed, samples=plan.token_samples, segments=min(5, plan.num_layers),
                     task_limit=40 if plan.quick else 100)
    return _table(run_swap(cfg, plan.out), Tables.SWAP)


def _stage_suggest(plan: DemoPlan) -> str:
    from sftscope.suggest.config import SuggestConfig
    from sftscope.suggest.pipeline import run_suggest

    cfg = SuggestConfig(base=plan.base, sft=plan.sft, data=plan.data, data_dir=plan.data_dir,
                        samples=plan.token_samples * 2, max_length=256, batch_size=16, seed=plan.seed)
    return str(run_suggest(cfg, plan.out).path / SUGGESTION_FILE)


def _stage_sweep(plan: DemoPlan) -> str:
    from sftscope.tuning.sweep import run_demo_sweep

    # The organism's Base is the pretrained model the sweep tunes; its SFT model is only the reference.
    return str(run_demo_sweep(plan.base, plan.data_dir, plan.out / "sweep", plan.quick, plan.organism))


def _stage_report(plan: DemoPlan) -> str:
    from sftscope.report.build import write_report

    return str(distributed.on_main(lambda: write_report([plan.out], plan.out / "report.html")))


# Each later stage (tuning sweep, report) appends itself here.
STAGES: list[tuple[str, Callable[[DemoPlan], str]]] = [
    ("analyze", _stage_analyze), ("weights", _stage_weights), ("correlate", _stage_correlate),
    ("probe", _stage_probe), ("swap", _stage_swap),
    ("suggest", _stage_suggest), ("sweep", _stage_sweep),
    ("report", _stage_report),  # the report reads every table: keep it last
]


def plan_demo(cfg: DemoConfig, out: str | Path | None = None) -> DemoPlan:
    """What the demo runs on: the organism (built once, then cached) or the user's --base / --sft."""
    out = Path(out) if out else cfg.default_out()
    check_output_dir(out)  # before the organism is built (minutes the first time)
    if cfg.base is not None:
        return DemoPlan(cfg.base, cfg.sft, cfg.data or ["gsm8k", "mmlu"], cfg.data_dir, out, cfg.quick, cfg.seed,
                        organism=False)
    from sftscope.organism import build_organism

    paths = distributed.on_main(lambda: build_organism(seed=cfg.seed, size="test" if cfg.quick else "default"))
    return DemoPlan(str(paths.base_dir), str(paths.sft_dir), cfg.data or ORGANISM_DATA, str(paths.data_dir), out,
                    cfg.quick, cfg.seed)


def run_demo(cfg: DemoConfig, out: str | Path | None = None, echo: Callable[[str], None] = print) -> RunDir:
    """Run the chosen (default: all) stages in order into `out` (default sftscope-runs/demo[-quick]); each stage
    is resumable on its own. `echo` gets the progress and, at the end, where each stage's results are.

    Raises:
        SftscopeError: from any stage (the finished ones keep their results).
    """
    plan = plan_demo(cfg, out)
    for name, stage in STAGES:
        if cfg.stages and name not in cfg.stages:
            continue
        started = time.perf_counter()
        echo(f"[demo] {name} ...")
        where = stage(plan)
        plan.done.append((name, where))
        echo(f"[demo] {name} done in {time.perf_counter() - started:.0f}s -> {where}")
    echo(f"\nsftscope demo finished: results in {plan.out.resolve()}")
    for name, where in plan.done:
        echo(f"  {name:<10} {where}")
    echo(f"  figures    {plan.out.resolve() / 'figures'}")
    return RunDir(plan.out)
