"""Every command of the CLI as data: its config class, the pipeline it runs, where its results go.

`cli.py` builds one parser per entry from the config class's fields and calls `run(cfg, out)`; entries name
their modules as strings so that `sftscope --help` imports no pipeline (and no torch).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from sftscope.results.schema import SUGGESTION_FILE, Tables

REQUIRED = "<required>"   # --out must be given
POSITIONAL = "<run-dir>"  # the run directory is the positional RUN_DIR argument


@dataclass(frozen=True)
class Command:
    """One `sftscope <name>` command: `config` and `run` are 'module:attribute' paths, imported when used."""

    name: str
    help: str
    config: str
    run: str
    out: str | None = REQUIRED      # default run directory, REQUIRED or POSITIONAL
    out_help: str = "run directory (re-run the same command to resume)"
    results: tuple[str, ...] = ()   # files it writes into the run directory, printed when it finishes
    figures: bool = False

    def config_class(self):
        return _attribute(self.config)

    def runner(self):
        return _attribute(self.run)


def _attribute(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _table(name: str) -> str:
    return f"{name}.parquet"


COMMANDS: dict[str, Command] = {c.name: c for c in [
    Command("analyze", "layer-wise representation metrics of Base vs fine-tuned model(s)",
            "sftscope.analysis.config:AnalyzeConfig", "sftscope.analysis.pipeline:run_analyze",
            results=(_table(Tables.METRICS),), figures=True),
    Command("probe", "logit lens at every layer: next-token accuracy/loss, KL to final, agreement",
            "sftscope.probing.config:ProbeConfig", "sftscope.probing.pipeline:run_probe",
            results=(_table(Tables.PROBE),), figures=True),
    Command("swap", "Base/SFT hybrids per segment, evaluated on data sets and tasks",
            "sftscope.swapping.config:SwapConfig", "sftscope.swapping.pipeline:run_swap",
            results=(_table(Tables.SWAP),), figures=True),
    Command("weights", "per-block, per-module weight change, streamed from the checkpoint files",
            "sftscope.weights.config:WeightsConfig", "sftscope.weights.pipeline:run_weights",
            results=(_table(Tables.WEIGHTS),), figures=True),
    Command("correlate", "correlation of weight change with each representation metric across layers",
            "sftscope.stats.config:CorrelateConfig", "sftscope.stats.pipeline:run_correlate", out=POSITIONAL,
            out_help="a run directory holding both the weights and the metrics tables",
            results=(_table(Tables.CORRELATION),), figures=True),
    Command("evaluate", "registered tasks (gsm8k, mmlu, toxigen, ppl:*, organism-*) on models",
            "sftscope.evaluation.config:EvaluateConfig", "sftscope.evaluation.pipeline:run_evaluate",
            results=(_table(Tables.TASKS),)),
    Command("suggest", "training-free choice of the blocks to tune: mask, depth range, layer list",
            "sftscope.suggest.config:SuggestConfig", "sftscope.suggest.pipeline:run_suggest",
            out="sftscope-runs/suggest", out_help="directory for suggestion.json and the profiles",
            results=(SUGGESTION_FILE, _table(Tables.SUGGEST))),
    Command("tune", "Mid-Block Efficient Tuning: one cell (blocks x method x seed), trained and scored",
            "sftscope.tuning.config:TuneConfig", "sftscope.tuning.pipeline:run_tune", out=None,
            out_help="run directory of this cell (re-run to resume; not needed with --export-peft-config)",
            results=(_table(Tables.TUNE_EVAL), _table(Tables.TUNING))),
    Command("sweep", "masks x seeds x controls as independent tune cells, then a summary",
            "sftscope.tuning.config:SweepConfig", "sftscope.tuning.sweep:run_sweep",
            out_help="sweep directory (cells/<name>/ per cell; re-run to resume)",
            results=(_table(Tables.SWEEP_SUMMARY),), figures=True),
    Command("demo", "the main job: every stage on the built-in organism (or --base/--sft)",
            "sftscope.demo:DemoConfig", "sftscope.demo:run_demo", out=None,
            out_help="run directory (default sftscope-runs/demo[-quick]; resumable)"),
]}
