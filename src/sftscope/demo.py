"""`sftscope demo`: every analysis stage on the built-in organism (or on --base/--sft), into one run directory."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sftscope.errors import SftscopeError

ORGANISM_DATA = ["organism-qa", "organism-facts", "organism-mc"]


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


def _stage_analyze(plan: DemoPlan) -> str:
    from sftscope.analysis.config import AnalyzeConfig
    from sftscope.analysis.pipeline import run_analyze

    cfg = AnalyzeConfig(base=plan.base, sft=plan.sft, data=plan.data, data_dir=plan.data_dir,
                        token_samples=plan.token_samples, pooled_samples=plan.pooled_samples, max_length=256,
                        batch_size=16, seed=plan.seed)
    run = run_analyze(cfg, plan.out)
    return str(run.path / "metrics.parquet")


def _stage_weights(plan: DemoPlan) -> str:
    from sftscope.weights.pipeline import run_weights

    return str(run_weights(plan.base, {"sft": plan.sft}, plan.out).path / "weights.parquet")


def _stage_correlate(plan: DemoPlan) -> str:
    from sftscope.stats.pipeline import run_correlate

    return str(run_correlate(plan.out).path / "correlation.parquet")


def _stage_probe(plan: DemoPlan) -> str:
    from sftscope.probing.pipeline import ProbeConfig, run_probe

    cfg = ProbeConfig(base=plan.base, sft=plan.sft, data=plan.data, data_dir=plan.data_dir, max_length=256,
                      batch_size=16, seed=plan.seed, samples=plan.token_samples * 2)
    return str(run_probe(cfg, plan.out).path / "probe.parquet")


def _stage_swap(plan: DemoPlan) -> str:
    from sftscope.swapping.pipeline import SwapConfig, run_swap

    cfg = SwapConfig(base=plan.base, sft=plan.sft, data=plan.data[:2], data_dir=plan.data_dir, max_length=256,
                     batch_size=16, seed=plan.seed, samples=plan.token_samples, segments=min(5, plan.num_layers),
                     task_limit=40 if plan.quick else 100)
    return str(run_swap(cfg, plan.out).path / "swap.parquet")


def _stage_suggest(plan: DemoPlan) -> str:
    from sftscope.suggest.pipeline import SUGGESTION_FILE, SuggestConfig, run_suggest

    cfg = SuggestConfig(base=plan.base, sft=plan.sft, data=plan.data, data_dir=plan.data_dir,
                        samples=plan.token_samples * 2, max_length=256, batch_size=16, seed=plan.seed)
    run, _ = run_suggest(cfg, plan.out)
    return str(run.path / SUGGESTION_FILE)


def _stage_sweep(plan: DemoPlan) -> str:
    from sftscope.tuning.sweep import run_demo_sweep

    # The organism's Base is the pretrained model the sweep tunes; its SFT model is only the reference.
    return str(run_demo_sweep(plan.base, plan.data_dir, plan.out / "sweep", plan.quick, plan.organism))


def _stage_report(plan: DemoPlan) -> str:
    from sftscope.report.build import write_report

    return str(write_report([plan.out], plan.out / "report.html"))


# Each later stage (tuning sweep, report) appends itself here.
STAGES: list[tuple[str, Callable[[DemoPlan], str]]] = [
    ("analyze", _stage_analyze), ("weights", _stage_weights), ("correlate", _stage_correlate),
    ("probe", _stage_probe), ("swap", _stage_swap),
    ("suggest", _stage_suggest), ("sweep", _stage_sweep),
    ("report", _stage_report),  # the report reads every table: keep it last
]


def plan_demo(out: str | Path | None, quick: bool, base: str | None, sft: str | None, data: list[str] | None,
              data_dir: str | None, seed: int) -> DemoPlan:
    if (base is None) != (sft is None):
        raise SftscopeError("give both --base and --sft to run the demo on your own models (or neither)")
    out = Path(out) if out else Path("sftscope-runs") / ("demo-quick" if quick else "demo")
    if base is not None:
        return DemoPlan(base, sft, data or ["gsm8k", "mmlu"], data_dir, out, quick, seed, organism=False)
    from sftscope.organism import build_organism

    paths = build_organism(seed=seed, size="test" if quick else "default")
    return DemoPlan(str(paths.base_dir), str(paths.sft_dir), data or ORGANISM_DATA, str(paths.data_dir), out,
                    quick, seed)


def run_demo(plan: DemoPlan, stages: list[str] | None = None, echo: Callable[[str], None] = print) -> DemoPlan:
    """Run the chosen (default: all) stages in order; each stage is resumable on its own."""
    for name, stage in STAGES:
        if stages and name not in stages:
            continue
        started = time.perf_counter()
        echo(f"[demo] {name} ...")
        where = stage(plan)
        plan.done.append((name, where))
        echo(f"[demo] {name} done in {time.perf_counter() - started:.0f}s -> {where}")
    return plan
