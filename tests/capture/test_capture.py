import pytest
import torch

from sftscope.capture.batches import encode_texts, make_batches
from sftscope.capture.hooks import capture, capture_all_layers
from sftscope.config import LoadConfig
from sftscope.models.loading import ModelRef, load_model
from tests.conftest import ALL_ARCHS

pytestmark = pytest.mark.integration  # loads tiny models from disk

TEXTS = ["the question is what a of to", "answer A", "the a of to and is in what question answer B C D the a"]


def _load(tiny_pair_dir, arch):
    base, _ = tiny_pair_dir(arch)
    return load_model(ModelRef("base", str(base)), LoadConfig(dtype="float32", device="cpu"))


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_layers_match_hidden_states_and_head_reproduces_logits(tiny_pair_dir, arch):
    loaded = _load(tiny_pair_dir, arch)
    enc = encode_texts(["a", "b", "c"], TEXTS, loaded.tokenizer, None)
    (batch,) = list(make_batches(enc, 8, loaded.tokenizer.pad_token_id))
    layers = capture_all_layers(loaded, batch)
    L = loaded.parts.num_layers
    assert len(layers) == L + 1
    with torch.no_grad():
        pos = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
        out = loaded.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=pos,
                           output_hidden_states=True)
    valid = batch.attention_mask.bool()
    for l in range(L):  # hidden_states[L] is after the final norm, so only 0..L-1 compare directly
        torch.testing.assert_close(layers[l][valid], out.hidden_states[l][valid], rtol=0, atol=1e-6)
    with torch.no_grad():
        logits = loaded.parts.logits_from_residual(layers[L])
    torch.testing.assert_close(logits[valid], out.logits[valid], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ALL_ARCHS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_equals_unpadded(tiny_pair_dir, arch, side):
    loaded = _load(tiny_pair_dir, arch)
    enc = encode_texts(["a", "b", "c"], TEXTS, loaded.tokenizer, None)
    pad = loaded.tokenizer.pad_token_id
    (batch,) = list(make_batches(enc, 8, pad, padding_side=side))
    padded = capture_all_layers(loaded, batch)
    for row, sample in enumerate(batch.sample_ids):
        (single,) = list(make_batches([e for e in enc if e.id == sample], 1, pad))
        alone = capture_all_layers(loaded, single)
        valid = batch.attention_mask[row].bool()
        for l in range(len(alone)):
            torch.testing.assert_close(padded[l][row][valid], alone[l][0], rtol=1e-5, atol=1e-5)


def test_consumer_gets_every_layer_once_with_mask(tiny_pair_dir):
    loaded = _load(tiny_pair_dir, "llama")
    enc = encode_texts(["a", "b"], TEXTS[:2], loaded.tokenizer, None)
    (batch,) = list(make_batches(enc, 8, loaded.tokenizer.pad_token_id))
    seen = []
    capture(loaded, batch, lambda l, h, m, ids: seen.append((l, tuple(h.shape), int(m.sum()), tuple(ids))))
    assert [s[0] for s in seen] == list(range(loaded.parts.num_layers + 1))
    assert all(s[2] == batch.num_tokens and s[3] == tuple(batch.sample_ids) for s in seen)


def test_truncation_is_flagged(tiny_pair_dir):
    loaded = _load(tiny_pair_dir, "llama")
    enc = encode_texts(["long", "short"], [TEXTS[2], "A"], loaded.tokenizer, 5)
    assert [e.truncated for e in enc] == [True, False]
    assert len(enc[0].input_ids) == 5
