"""`sftscope correlate RUN_DIR`: weight change vs every representation metric across layers."""

from __future__ import annotations

from pathlib import Path

from sftscope import distributed
from sftscope.results.rundir import RunDir
from sftscope.results.schema import Tables
from sftscope.stats.config import CorrelateConfig
from sftscope.stats.correlate import correlate

TABLE = Tables.CORRELATION


def _run_correlate(cfg: CorrelateConfig, out: str | Path) -> RunDir:
    from sftscope.report.plots.correlation import (
        plot_correlation,  # the figure layer sits above the stages
    )

    run = RunDir(out)
    corr = correlate(run.read_table(Tables.WEIGHTS), run.read_table(Tables.METRICS), method=tuple(cfg.method),
                     weight_metric=cfg.weight_metric)
    run.write_unit(TABLE, cfg.weight_metric, corr.to_dict("records"))
    plot_correlation(corr, run.figures / f"correlation_{cfg.weight_metric}.png")
    return run


def run_correlate(cfg: CorrelateConfig, out: str | Path) -> RunDir:
    """Correlate the `weights` and `metrics` tables of run directory `out` (sftscope weights / analyze with the
    same --out); writes the `correlation` table and its heatmap there.

    Raises:
        SftscopeError: a table is missing.

    Under torchrun / accelerate launch rank 0 does the work (nothing here splits across processes)."""
    return distributed.on_main(lambda: _run_correlate(cfg, out))
