"""`sftscope correlate RUN_DIR`: weight change vs every representation metric across layers."""

from __future__ import annotations

from pathlib import Path

from sftscope.results.rundir import RunDir
from sftscope.stats.correlate import correlate

TABLE = "correlation"


def run_correlate(run_dir: str | Path, weight_metric: str = "attn_qkvo_delta_fro",
                  methods: tuple[str, ...] = ("pearson", "spearman")) -> RunDir:
    """Needs the run's `weights` and `metrics` tables (sftscope weights / analyze with the same --out)."""
    from sftscope.report.plots.correlation import plot_correlation  # the figure layer sits above the stages

    run = RunDir(run_dir)
    corr = correlate(run.read_table("weights"), run.read_table("metrics"), method=methods,
                     weight_metric=weight_metric)
    run.write_unit(TABLE, weight_metric, corr.to_dict("records"))
    plot_correlation(corr, run.figures / f"correlation_{weight_metric}.png")
    return run
