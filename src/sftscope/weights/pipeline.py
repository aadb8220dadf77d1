"""`sftscope weights`: streamed weight change of each variant against the Base, written as a tidy table."""

from __future__ import annotations

from pathlib import Path

from sftscope.results.rundir import RunDir
from sftscope.results.schema import Tables
from sftscope.weights.change import weight_change
from sftscope.weights.config import WeightsConfig

TABLE = Tables.WEIGHTS


def run_weights(cfg: WeightsConfig, out: str | Path) -> RunDir:
    """Weight change of every variant against the Base into `out`; neither model is loaded whole.

    Raises:
        SftscopeError: unreadable checkpoints, tensors of different shapes, or (strict) unmatched tensor names.
    """
    run = RunDir(out)
    run.bind_config("weights", cfg.identity())
    refs = cfg.refs()
    base = refs[0]
    run.write_environment(None, [{"name": r.name, "id": r.id, "revision": r.revision} for r in refs])
    for ref in refs[1:]:
        if run.is_done(TABLE, ref.name):
            continue
        rows = weight_change(base.id, ref.id, revision=(base.revision, ref.revision), side=ref.name,
                             strict=cfg.strict)
        run.write_unit(TABLE, ref.name, rows)
    if cfg.plots:
        from sftscope.report.plots.stages import plot_weights
        plot_weights(run.read_table(TABLE), run.figures)
    return run
