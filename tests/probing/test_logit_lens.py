import pytest
import torch

from sftscope.capture.batches import encode_texts, make_batches
from sftscope.config import LoadConfig
from sftscope.models.loading import ModelRef, load_model
from sftscope.probing.logit_lens import lens_batch
from sftscope.probing.pipeline import ProbeConfig, probe_dataset

pytestmark = pytest.mark.integration  # loads tiny models from disk

TEXTS = ["the question is what a of to", "answer A B", "the a of to and is in what question answer B C D the a"]


def _load(path, name="base"):
    return load_model(ModelRef(name, str(path)), LoadConfig(dtype="float32", device="cpu"))


@pytest.mark.parametrize("arch", ["llama", "olmo2", "gpt2", "gemma2", "olmo"])  # olmo: norm without parameters
@pytest.mark.parametrize("chunk", [3, 1000])
def test_last_layer_equals_models_own_accuracy_and_loss(tiny_pair_dir, arch, chunk):
    loaded = _load(tiny_pair_dir(arch)[0])
    enc = encode_texts(["a", "b", "c"], TEXTS, loaded.tokenizer, None)
    (batch,) = list(make_batches(enc, 8, loaded.tokenizer.pad_token_id, padding_side="left"))
    correct, loss, kl, top1, n = lens_batch(loaded, batch, chunk=chunk)
    with torch.no_grad():
        pos = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
        logits = loaded.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=pos).logits
    valid = batch.attention_mask[:, :-1].bool() & batch.attention_mask[:, 1:].bool()
    labels = batch.input_ids[:, 1:][valid]
    logp = torch.log_softmax(logits[:, :-1][valid].double(), -1)
    assert n == labels.numel() == sum(len(e.input_ids) - 1 for e in enc)
    torch.testing.assert_close(loss[-1] / n, -logp.gather(-1, labels[:, None]).mean(), rtol=1e-5, atol=1e-6)
    assert correct[-1] == (logp.argmax(-1) == labels).sum()
    assert kl[-1].abs() < 1e-9 and (kl[:-1] >= -1e-6).all()


def test_agreement_with_itself_is_one_and_rows_complete(tiny_pair_dir):
    base = _load(tiny_pair_dir("llama")[0])
    same = _load(tiny_pair_dir("llama")[0], "sft")
    cfg = ProbeConfig(base="b", sft="s", batch_size=2)
    rows = probe_dataset([base, same], TEXTS, ["a", "b", "c"], "d", cfg)
    agree = [r for r in rows if r.metric == "lens_top1_agreement"]
    assert len(agree) == 5 and all(r.value == 1.0 for r in agree)
    for metric in ("lens_accuracy", "lens_loss", "lens_kl_to_final"):
        base_vals = [r.value for r in rows if r.metric == metric and r.side == "base"]
        assert base_vals == [r.value for r in rows if r.metric == metric and r.side == "sft"]


def test_lens_accuracy_interval_resamples_whole_samples(tiny_pair_dir):
    """The interval of the last layer equals a cluster bootstrap of per-sample counts computed independently
    (each text alone through the model): positions are mapped to their own sample across batches."""
    import numpy as np

    from sftscope.stats.uncertainty import cluster_ratio_interval

    base = _load(tiny_pair_dir("llama")[0])
    texts = TEXTS * 3
    ids = [f"s{i}" for i in range(len(texts))]
    cfg = ProbeConfig(base="b", sft="s", batch_size=4, bootstrap=100, seed=3)
    rows = probe_dataset([base], texts, ids, "d", cfg)
    acc = {r.layer: r for r in rows if r.metric == "lens_accuracy"}
    correct, tokens = [], []
    for sample in encode_texts(ids, texts, base.tokenizer, None):
        with torch.no_grad():
            logits = base.model(input_ids=torch.tensor([sample.input_ids])).logits[0]
        correct.append(float((logits[:-1].argmax(-1) == torch.tensor(sample.input_ids[1:])).sum()))
        tokens.append(len(sample.input_ids) - 1)
    last = max(acc)
    assert acc[last].value == pytest.approx(sum(correct) / sum(tokens))
    low, high = cluster_ratio_interval(np.array([correct]), np.array(tokens, dtype=float), 100, seed=3)
    assert (acc[last].extra["ci_low"], acc[last].extra["ci_high"]) == pytest.approx((low[0], high[0]))
    assert all(r.extra["ci_low"] <= r.value <= r.extra["ci_high"] for r in acc.values())
    assert acc[last].extra["samples"] == len(texts)
