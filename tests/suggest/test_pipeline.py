"""`sftscope suggest` end to end on tiny random models, and its one-pass lens accuracy against the probe's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sftscope.capture.batches import encode_texts, make_batches
from sftscope.capture.hooks import capture
from sftscope.cli import main
from sftscope.data.prepare import prepare_dataset
from sftscope.metrics.pair import cka
from sftscope.models.loading import ModelRef, load_model
from sftscope.probing.logit_lens import lens_batch
from sftscope.suggest.measure import LensAccuracy, dataset_profiles
from sftscope.results.schema import SUGGESTION_FILE
from sftscope.suggest.config import SuggestConfig
from sftscope.suggest.pipeline import read_suggestion, run_suggest
from sftscope.tuning.blocks import parse_block_spec
from tests.conftest import SHARED_DATA


@pytest.mark.integration
def test_one_pass_lens_accuracy_equals_probe(tiny_pair_dir):
    base = load_model(ModelRef("base", str(tiny_pair_dir("llama")[0])))
    texts = ["the answer is 4 and the question is what", "A B C D a of to", "w10 w11 w12 w13 w14 w15 w16"]
    batch = next(make_batches(encode_texts(["a", "b", "c"], texts, base.tokenizer, None), 3,
                              base.tokenizer.pad_token_id))
    lens = LensAccuracy(base, chunk=4)
    lens.start_batch(batch.input_ids, batch.attention_mask)
    capture(base, batch, lambda layer, hidden, mask, ids: lens.update(layer, hidden))
    correct, _, _, _, n = lens_batch(base, batch, chunk=5)
    np.testing.assert_allclose(lens.accuracy(), (correct / n).numpy(), rtol=0, atol=1e-12)
    # the per-sample counts behind the interval add up to the totals, sample by sample in token order
    per_sample = torch.cat(lens.per_sample, 1)
    np.testing.assert_allclose(per_sample.sum(1).numpy(), lens.correct, rtol=0, atol=0)
    assert torch.cat(lens.sample_tokens).tolist() == (batch.attention_mask.sum(1) - 1).double().tolist()
    low, high = lens.accuracy_interval(100, seed=0)
    assert np.all(low <= high) and np.all((0 <= low) & (high <= 1))


@pytest.mark.integration
def test_profiles_match_direct_computation(tiny_pair_dir):
    base_dir, sft_dir = tiny_pair_dir("llama")
    base, sft = (load_model(ModelRef(n, str(d))) for n, d in (("base", base_dir), ("sft", sft_dir)))
    prepared = prepare_dataset("gsm8k", SHARED_DATA, 0, 6, 6)
    got = dataset_profiles(base, prepared, 32, 4, sft, n_boot=50)
    # reference: pooled (masked-mean) states of every layer from one unbatched pass per sample
    def pooled(model):
        texts = [prepared.spec.render(r) for r in prepared.records]
        rows = {}
        for sample in sorted(encode_texts(prepared.ids, texts, model.tokenizer, 32), key=lambda e: e.id):
            batch = next(make_batches([sample], 1, model.tokenizer.pad_token_id))
            states = {}
            capture(model, batch, lambda l, h, m, ids: states.__setitem__(l, h[0].double().mean(0)))
            for l, v in states.items():
                rows.setdefault(l, []).append(v)
        return [torch.stack(rows[l]) for l in sorted(rows)]
    pb, ps = pooled(base), pooled(sft)
    want_layer = [cka(pb[i], pb[i + 1]) for i in range(len(pb) - 1)]
    np.testing.assert_allclose(got["layer_cka"], want_layer, atol=1e-5)
    np.testing.assert_allclose(got["variant_cka"], [cka(x, y) for x, y in zip(pb, ps)], atol=1e-5)
    assert got["effective_rank"].shape == (5,) and got["lens_accuracy"].shape == (5,)
    for name in ("lens_accuracy", "variant_cka"):
        ci = got[f"{name}_ci"]
        assert ci.shape == (2, 5) and np.all(ci[0] <= ci[1])


@pytest.mark.integration
def test_run_suggest_end_to_end_and_resume(tiny_pair_dir, tmp_path, capsys):
    base_dir, sft_dir = tiny_pair_dir("llama")
    out = tmp_path / "suggest"
    argv = ["suggest", "--base", str(base_dir), "--sft", str(sft_dir), "--data", "gsm8k", "--data-dir",
            str(SHARED_DATA), "--samples", "8", "--max-length", "32", "--k", "2", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / SUGGESTION_FILE).read_text())
    assert f"mask (k=2):  {record['mask']}" in printed and "evidence:" in printed
    layers = tuple(record["layers"])
    assert 0 <= layers[0] and layers[-1] < 4 and len(record["mask"]) == 2
    assert parse_block_spec(record["depth"], 4).layers == layers == parse_block_spec(record["layer_spec"], 4).layers
    table = __import__("pandas").read_parquet(out / "suggest.parquet")
    counts = table.groupby("metric").size().to_dict()
    assert counts == {"consecutive_layer_cka": 4, "effective_rank": 5, "lens_accuracy": 5, "cka": 5,
                      "block_delta_fro": 4}
    assert (table[table["metric"] == "block_delta_fro"]["value"] > 0).all()  # the SFT is perturbed everywhere
    with_ci = table[table["metric"].isin(["lens_accuracy", "cka"])]
    assert (with_ci["ci_low"] <= with_ci["ci_high"]).all()  # the intervals the late-region claims read
    again = read_suggestion(run_suggest(SuggestConfig(base=str(base_dir), sft=str(sft_dir), data=["gsm8k"],
                                                      data_dir=str(SHARED_DATA), samples=8, max_length=32, k=2), out))
    assert again.layers == layers  # resumed from the saved record


def test_config_validation():
    from sftscope.errors import SftscopeError
    with pytest.raises(SftscopeError, match="samples"):
        SuggestConfig(base="x", samples=2)
