"""`sftscope weights`: streamed weight change of each variant against the Base, written as a tidy table."""

from __future__ import annotations

from pathlib import Path

from sftscope.models.loading import ModelRef
from sftscope.results.rundir import RunDir
from sftscope.weights.change import weight_change

TABLE = "weights"


def run_weights(base: str, variants: dict[str, str], out: str | Path, strict: bool = True,
                plots: bool = True) -> RunDir:
    """variants: side name -> model id/path (ID@REV pins a revision). Neither model is loaded whole."""
    run = RunDir(out)
    run.bind_config("weights", {"base": base, "variants": variants, "strict": strict})
    base_ref = ModelRef.parse(base, "base")
    run.write_environment(None, [{"name": "base", "id": base_ref.id, "revision": base_ref.revision}] +
                          [{"name": side, "id": ModelRef.parse(v, side).id} for side, v in variants.items()])
    for side, spec in variants.items():
        if run.is_done(TABLE, side):
            continue
        ref = ModelRef.parse(spec, side)
        rows = weight_change(base_ref.id, ref.id, revision=(base_ref.revision, ref.revision), side=side,
                             strict=strict)
        run.write_unit(TABLE, side, rows)
    if plots:
        from sftscope.report.plots.stages import plot_weights
        plot_weights(run.read_table(TABLE), run.figures)
    return run
