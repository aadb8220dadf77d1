"""`sftscope weights`: streamed weight change of each variant against the Base, written as a tidy table."""

from __future__ import annotations

from pathlib import Path

from sftscope import distributed
from sftscope.errors import SftscopeError
from sftscope.models.refs import looks_local
from sftscope.preflight import check_output_dir
from sftscope.results.rundir import RunDir
from sftscope.results.schema import Tables
from sftscope.weights.change import weight_change
from sftscope.weights.config import WeightsConfig
from sftscope.weights.sources import open_source

TABLE = Tables.WEIGHTS


def _run_weights(cfg: WeightsConfig, out: str | Path) -> RunDir:
    check_output_dir(out)
    refs = cfg.refs()
    for ref in refs:  # local checkpoints: headers and shard lists are read now (cheap); hub ones are fetched later
        if looks_local(ref.id):
            if not Path(ref.id).expanduser().exists():
                raise SftscopeError(f"model path {ref.id!r} ({ref.name}) does not exist")
            open_source(ref.id)
    run = RunDir(out)
    run.bind_config("weights", cfg.identity())
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


def run_weights(cfg: WeightsConfig, out: str | Path) -> RunDir:
    """Weight change of every variant against the Base into `out`; neither model is loaded whole.

    Raises:
        SftscopeError: unreadable checkpoints, tensors of different shapes, or (strict) unmatched tensor names.

    Under torchrun / accelerate launch rank 0 does the work (nothing here splits across processes)."""
    return distributed.on_main(lambda: _run_weights(cfg, out))
