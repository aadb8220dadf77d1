import pytest
import torch

from sftscope.errors import SftscopeError
from sftscope.config import LoadConfig
from sftscope.models.loading import ModelRef, load_model
from sftscope.swapping.surgery import segment_layers, transplant


def _load(path, name):
    return load_model(ModelRef(name, str(path)), LoadConfig(dtype="float32", device="cpu"))


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_segments_cover_every_block_once():
    assert segment_layers(16, 5) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11], [12, 13, 14, 15]]
    for L, k in [(10, 3), (40, 10), (7, 7)]:
        segs = segment_layers(L, k)
        assert sorted(i for s in segs for i in s) == list(range(L)) and all(segs)
    with pytest.raises(SftscopeError):
        segment_layers(4, 5)


@pytest.mark.integration
@pytest.mark.parametrize("arch,head", [("llama", False), ("llama", True), ("gpt2", True), ("qwen2", True)])
def test_swap_changes_exactly_the_swapped_parts_and_restores_bit_identically(tiny_pair_dir, arch, head):
    base_dir, sft_dir = tiny_pair_dir(arch)
    base, sft = _load(base_dir, "base"), _load(sft_dir, "sft")
    before = _snapshot(base.model)
    prefix = base.parts.block_prefix
    with transplant(base, sft, [1, 2], head=head):
        inside = base.model.state_dict()
        for name, tensor in inside.items():
            swapped = name.startswith((f"{prefix}.1.", f"{prefix}.2."))
            if swapped:
                assert torch.equal(tensor, sft.model.state_dict()[name]), name
            elif not head:
                assert torch.equal(tensor, before[name]), name
    after = base.model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)


@pytest.mark.integration
def test_restores_when_evaluation_raises(tiny_pair_dir):
    base_dir, sft_dir = tiny_pair_dir("llama")
    base, sft = _load(base_dir, "base"), _load(sft_dir, "sft")
    before = _snapshot(base.model)
    with pytest.raises(RuntimeError, match="boom"):
        with transplant(base, sft, [0, 3], head=True):
            raise RuntimeError("boom")
    assert all(torch.equal(base.model.state_dict()[k], v) for k, v in before.items())


@pytest.mark.integration
def test_swapped_model_computes_like_the_donor_when_everything_is_swapped(tiny_pair_dir):
    base_dir, sft_dir = tiny_pair_dir("llama")
    base, sft = _load(base_dir, "base"), _load(sft_dir, "sft")
    ids = torch.randint(3, 200, (2, 7))
    with torch.no_grad():
        want = sft.model(ids).logits
        with transplant(base, sft, range(4), head=True):
            with torch.no_grad():
                base.model.model.embed_tokens.weight.copy_(sft.model.model.embed_tokens.weight)
            got = base.model(ids).logits
    torch.testing.assert_close(got, want)


@pytest.mark.integration
def test_after_restore_the_models_share_no_storage(tiny_pair_dir):
    base_dir, sft_dir = tiny_pair_dir("llama")
    base, sft = _load(base_dir, "base"), _load(sft_dir, "sft")
    with transplant(base, sft, [0, 1, 2, 3], head=True):
        pass
    donor_ptrs = {t.data_ptr() for t in sft.model.state_dict().values()}
    assert not donor_ptrs & {t.data_ptr() for t in base.model.state_dict().values()}
    with torch.no_grad():
        sft.model.model.layers[1].self_attn.q_proj.weight.add_(1.0)
    assert not torch.equal(base.model.model.layers[1].self_attn.q_proj.weight,
                           sft.model.model.layers[1].self_attn.q_proj.weight)


@pytest.mark.integration
def test_tied_head_swap_restores_the_shared_embedding(tiny_pair_dir):
    base_dir, sft_dir = tiny_pair_dir("gpt2")  # GPT-2 ties lm_head to the token embedding
    base, sft = _load(base_dir, "base"), _load(sft_dir, "sft")
    assert base.model.lm_head.weight is base.model.transformer.wte.weight
    before = _snapshot(base.model)
    with transplant(base, sft, [], head=True):
        assert torch.equal(base.model.transformer.wte.weight, sft.model.transformer.wte.weight)
    assert base.model.lm_head.weight is base.model.transformer.wte.weight
    assert all(torch.equal(base.model.state_dict()[k], v) for k, v in before.items())
