"""Figures of the probe, swap and weights stages: one readable PNG per data set / metric, drawn without pyplot
and without touching the caller's matplotlib backend (a notebook keeps its inline plots)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from sftscope.report.plots.stages import plot_probe, plot_swap, plot_weights  # noqa: F401  (also drawn in a subprocess)

pytestmark = pytest.mark.integration  # draws figures (seconds)

LAYERS = 5


def _probe() -> pd.DataFrame:
    rows = [dict(run="r", side=side, dataset=dataset, layer=layer, metric=metric, preset="", mode="value",
                 value=layer / LAYERS + (0.1 if side == "sft" else 0.0), n=20)
            for dataset in ("gsm8k", "mmlu") for side in ("base", "sft") for layer in range(LAYERS + 1)
            for metric in ("lens_accuracy", "lens_loss", "lens_kl_to_final", "lens_top1_agreement")]
    return pd.DataFrame(rows)


def _swap() -> pd.DataFrame:
    rows = [dict(hybrid=ref, segment=-1, head="original", dataset="organism-facts", metric="token_accuracy",
                 value=value) for ref, value in (("base", 0.60), ("sft", 0.70))]
    for direction in ("base<-sft", "sft<-base"):
        for segment in range(3):
            for head in ("original", "transferred"):
                rows.append(dict(hybrid=f"{direction} seg{segment} head={head}", segment=segment, head=head,
                                 dataset="organism-facts", metric="token_accuracy", value=0.6 + 0.02 * segment))
    return pd.DataFrame(rows)


def _weights() -> pd.DataFrame:
    rows = [dict(side="sft", layer=layer, module=module, metric=f"{module}_delta_{kind}", value=layer * scale)
            for layer in range(1, LAYERS + 1) for module in ("attn_qkvo", "mlp", "block")
            for kind, scale in (("fro", 1.0), ("rel", 0.01))]
    rows.append(dict(side="sft", layer=0, module="embed", metric="embed_delta_fro", value=9.0))  # not a block
    return pd.DataFrame(rows)


def test_stage_figures_are_written_without_pyplot_or_a_backend_switch(tmp_path):
    """Drawn in a fresh interpreter whose user chose another backend (svg here, inline in a notebook)."""
    tables = {"probe": _probe(), "swap": _swap(), "weights": _weights()}
    for name, df in tables.items():
        df.to_parquet(tmp_path / f"{name}.parquet")
    (tmp_path / "figures").mkdir()  # a run directory's figures/ exists (RunDir.figures makes it)
    code = f"""
import json, sys
import matplotlib
matplotlib.use("svg")
import pandas as pd
from pathlib import Path
from sftscope.report.plots.stages import plot_probe, plot_swap, plot_weights  # noqa: F401  (also drawn in a subprocess)
root = Path({str(tmp_path)!r})
paths = [p for name, draw in (("probe", plot_probe), ("swap", plot_swap), ("weights", plot_weights))
         for p in draw(pd.read_parquet(root / (name + ".parquet")), root / "figures")]
print(json.dumps({{"paths": [str(p) for p in paths], "backend": matplotlib.get_backend(),
                  "pyplot": "matplotlib.pyplot" in sys.modules}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "svg" and not result["pyplot"]
    paths = [Path(p) for p in result["paths"]]
    assert sorted(p.name for p in paths) == ["probe_gsm8k.png", "probe_mmlu.png",
                                             "swap_organism-facts_token_accuracy.png", "weights.png"]
    for path in paths:
        image = imread(path)
        assert image.shape[0] > 300 and image.shape[1] > 600
        assert np.ptp(image[..., :3]) > 0  # not a blank canvas


def test_weights_without_block_rows_draws_nothing(tmp_path):
    assert plot_weights(_weights().query("module == 'embed'"), tmp_path) == []
