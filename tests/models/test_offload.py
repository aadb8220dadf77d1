"""Models spread by accelerate (--device-map with blocks offloaded to disk): analyze, probe and swap give the
in-memory run's numbers. accelerate's offload hooks load a disk block's weights just before it runs; sftscope's
capture hooks, the logit lens and the swap surgery work next to them."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sftscope.analysis.config import AnalyzeConfig
from sftscope.analysis.pipeline import run_analyze
from sftscope.config import LoadConfig
from sftscope.errors import SftscopeError
from sftscope.probing.config import ProbeConfig
from sftscope.probing.pipeline import run_probe
from sftscope.swapping.config import SwapConfig
from sftscope.swapping.pipeline import run_swap
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.integration
KEY = ["side", "dataset", "layer", "metric", "preset", "mode"]
# block 1 and the head on disk, block 3 in CPU memory through an offload hook, the rest in place
DEVICE_MAP = json.dumps({"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
                         "model.layers.2": "cpu", "model.layers.3": "disk", "model.norm": "cpu",
                         "model.rotary_emb": "cpu", "lm_head": "disk"})


def _common(pair, **kw):
    base, sft = pair
    return dict(base=str(base), sft=str(sft), data=["wikitext"], data_dir=str(SHARED_DATA), max_length=32,
                batch_size=4, plots=False, **kw)


def _table(run, table):
    df = run.read_table(table)
    keys = [k for k in KEY + ["hybrid"] if k in df.columns]
    return df.sort_values(keys).reset_index(drop=True), keys


@pytest.mark.parametrize("stage", ["analyze", "probe", "swap"])
def test_offloaded_run_equals_in_memory_run(stage, tiny_pair_dir, tmp_path):
    pair = tiny_pair_dir("llama")
    offload = dict(device_map=DEVICE_MAP, offload_folder=str(tmp_path / "offload"))
    if stage == "analyze":
        make, run, table = (lambda **kw: AnalyzeConfig(**_common(pair, token_samples=6, pooled_samples=12,
                                                                   bootstrap=20, robustness_splits=0), **kw)), \
            run_analyze, "metrics"
    elif stage == "probe":
        make, run, table = (lambda **kw: ProbeConfig(**_common(pair, samples=8), **kw)), run_probe, "probe"
    else:
        make, run, table = (lambda **kw: SwapConfig(**_common(pair, samples=6, segments=2, tasks=False), **kw)), \
            run_swap, "swap"
    memory, keys = _table(run(make(), tmp_path / "memory"), table)
    spread, _ = _table(run(make(**offload), tmp_path / "spread"), table)
    pd.testing.assert_frame_equal(memory[keys], spread[keys])
    assert (spread["value"] - memory["value"]).abs().max() <= 1e-9 * max(1.0, memory["value"].abs().max())


def test_device_map_and_memory_cap_options():
    cfg = LoadConfig(device_map='{"model.layers.0": "disk"}', max_memory="0=20GiB,cpu=64GiB")
    assert cfg.device_map_value() == {"model.layers.0": "disk"}
    assert cfg.max_memory_value() == {0: "20GiB", "cpu": "64GiB"}
    for bad, needle in [(dict(device_map="{oops"), "not valid JSON"), (dict(device_map="everywhere"), "use auto"),
                        (dict(device_map="auto", max_memory="20GiB"), "DEVICE=SIZE"),
                        (dict(max_memory="0=1GiB"), "--device-map auto")]:
        with pytest.raises(SftscopeError, match=needle):
            LoadConfig(**bad)
