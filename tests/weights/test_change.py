"""weight_change on tiny saved models: zero against itself, known perturbations recovered, every storage path."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sftscope.errors import SftscopeError
from sftscope.weights import tensor_distance, weight_change
from sftscope.weights.naming import Split
from tests.conftest import build_tiny

N_BLOCKS = 4  # tests.conftest tiny models


def keyed(rows):
    """(layer, module, param, metric) -> value."""
    out = {(r.layer, r.extra["module"], r.extra["param"], r.metric): r.value for r in rows}
    assert len(out) == len(rows), "row keys must be unique"
    return out


def save(model, path, **kw):
    model.save_pretrained(path, **kw)
    return path


def known_delta(shape, seed):
    return 0.01 * torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", ["llama", "qwen2", "olmo2", "gpt2"])
def test_model_against_itself_is_exactly_zero(arch, tmp_path):
    path = save(build_tiny(arch), tmp_path / "m")
    rows = weight_change(path, path, progress=False)
    assert rows and all(r.value == 0.0 for r in rows)
    layers = {r.layer for r in rows}
    assert layers == set(range(N_BLOCKS + 2)), "0 = embeddings, 1..L blocks, L+1 = final norm / head"


@pytest.mark.parametrize("arch", ["llama", "qwen2", "olmo2"])
def test_known_perturbation_is_recovered(arch, tmp_path):
    base = build_tiny(arch)
    sft = build_tiny(arch)
    q = sft.model.layers[2].self_attn.q_proj.weight   # block 3 (1-based)
    down = sft.model.layers[0].mlp.down_proj.weight   # block 1
    dq, dd = known_delta(q.shape, 1), known_delta(down.shape, 2)
    with torch.no_grad():
        q.add_(dq)
        down.add_(dd)
    rows = keyed(weight_change(save(base, tmp_path / "b"), save(sft, tmp_path / "s"), progress=False))
    q_norm = base.model.layers[2].self_attn.q_proj.weight.double().norm().item()
    assert rows[(3, "q_proj", "weight", "weight_delta_fro")] == pytest.approx(dq.double().norm().item(), rel=1e-6)
    assert rows[(3, "q_proj", "weight", "weight_delta_rel")] == pytest.approx(dq.double().norm().item() / q_norm,
                                                                              rel=1e-6)
    assert rows[(1, "down_proj", "weight", "weight_delta_fro")] == pytest.approx(dd.double().norm().item(), rel=1e-6)
    assert rows[(3, "attn_qkvo", "weight", "attn_qkvo_delta_fro")] == pytest.approx(dq.double().norm().item(),
                                                                                    rel=1e-6)
    attn = base.model.layers[2].self_attn
    base_sum = sum(getattr(attn, m).weight.double().norm().item() for m in ("q_proj", "k_proj", "v_proj", "o_proj"))
    assert rows[(3, "attn_qkvo", "weight", "attn_qkvo_delta_rel")] == pytest.approx(
        dq.double().norm().item() / base_sum, rel=1e-6)
    assert rows[(1, "block", "all", "block_delta_fro")] == pytest.approx(dd.double().norm().item(), rel=1e-6)
    touched = {(3, "q_proj", "weight"), (1, "down_proj", "weight"), (3, "attn_qkvo", "weight"),
               (1, "mlp", "weight"), (3, "block", "all"), (1, "block", "all")}
    assert all(v == 0.0 for k, v in rows.items() if k[:3] not in touched)


def test_attention_sum_adds_the_four_projection_distances(tmp_path):
    base, sft = build_tiny("llama"), build_tiny("llama")
    attn = sft.model.layers[1].self_attn
    deltas = {}
    with torch.no_grad():
        for i, m in enumerate(("q_proj", "k_proj", "v_proj", "o_proj")):
            deltas[m] = known_delta(getattr(attn, m).weight.shape, 10 + i)
            getattr(attn, m).weight.add_(deltas[m])
    rows = keyed(weight_change(base, sft, progress=False))
    expected = sum(d.double().norm().item() for d in deltas.values())
    assert rows[(2, "attn_qkvo", "weight", "attn_qkvo_delta_fro")] == pytest.approx(expected, rel=1e-6)


def test_gpt2_fused_c_attn_is_split_into_q_k_v(tmp_path):
    base, sft = build_tiny("gpt2"), build_tiny("gpt2")
    c_attn = sft.transformer.h[1].attn.c_attn.weight   # Conv1D [in, 3*out]: columns q | k | v
    d = c_attn.shape[0]
    dk = known_delta((d, d), 3)
    with torch.no_grad():
        c_attn[:, d:2 * d].add_(dk)
    rows = keyed(weight_change(save(base, tmp_path / "b"), save(sft, tmp_path / "s"), progress=False))
    assert rows[(2, "k_proj", "weight", "weight_delta_fro")] == pytest.approx(dk.double().norm().item(), rel=1e-6)
    assert rows[(2, "q_proj", "weight", "weight_delta_fro")] == 0.0
    assert rows[(2, "v_proj", "weight", "weight_delta_fro")] == 0.0
    base_k = base.transformer.h[1].attn.c_attn.weight[:, d:2 * d].double().norm().item()
    assert rows[(2, "k_proj", "weight", "weight_delta_rel")] == pytest.approx(dk.double().norm().item() / base_k,
                                                                              rel=1e-6)


def test_gpt_neox_fused_qkv_split_per_head(tmp_path):
    base, sft = build_tiny("gpt_neox"), build_tiny("gpt_neox")
    w = sft.gpt_neox.layers[0].attention.query_key_value.weight   # [3*hidden, hidden]
    heads = sft.config.num_attention_heads
    hidden = w.shape[1]
    dv = known_delta((heads, hidden // heads, hidden), 4)
    with torch.no_grad():
        w.view(heads, 3, hidden // heads, hidden)[:, 2].add_(dv)   # the value rows of every head
    rows = keyed(weight_change(save(base, tmp_path / "b"), save(sft, tmp_path / "s"), progress=False))
    assert rows[(1, "v_proj", "weight", "weight_delta_fro")] == pytest.approx(dv.double().norm().item(), rel=1e-6)
    assert rows[(1, "q_proj", "weight", "weight_delta_fro")] == 0.0
    assert rows[(1, "k_proj", "weight", "weight_delta_fro")] == 0.0


def test_sharded_safetensors_equal_unsharded(tmp_path):
    base, sft = build_tiny("llama", seed=0), build_tiny("llama", seed=1)
    whole = weight_change(save(base, tmp_path / "b"), save(sft, tmp_path / "s"), progress=False)
    sharded_dir = save(sft, tmp_path / "s_sharded", max_shard_size="40KB")
    index = json.loads((sharded_dir / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert keyed(weight_change(tmp_path / "b", sharded_dir, progress=False)) == keyed(whole)


def test_bin_checkpoint_equals_safetensors(tmp_path):
    base, sft = build_tiny("qwen2", seed=0), build_tiny("qwen2", seed=1)
    expected = keyed(weight_change(save(base, tmp_path / "b"), save(sft, tmp_path / "s"), progress=False))
    bin_dir = tmp_path / "s_bin"
    bin_dir.mkdir()
    torch.save(sft.state_dict(), bin_dir / "pytorch_model.bin")
    (bin_dir / "config.json").write_text((tmp_path / "s" / "config.json").read_text())
    assert keyed(weight_change(tmp_path / "b", bin_dir, progress=False)) == expected


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gpt_neox"])
def test_in_memory_equals_file_path(arch, tmp_path):
    base, sft = build_tiny(arch, seed=0), build_tiny(arch, seed=1)
    from_files = keyed(weight_change(save(base, tmp_path / "b"), save(sft, tmp_path / "s"), progress=False))
    in_memory = keyed(weight_change(base, sft, progress=False))
    assert in_memory.keys() == from_files.keys()
    assert all(in_memory[k] == pytest.approx(v, rel=1e-12, abs=0) for k, v in from_files.items())


def test_tied_head_uses_the_embedding_and_says_so(tmp_path):
    base, sft = build_tiny("gpt2", seed=0), build_tiny("gpt2", seed=1)
    rows = weight_change(save(base, tmp_path / "b"), save(sft, tmp_path / "s"), progress=False)
    values = keyed(rows)
    head = values[(N_BLOCKS + 1, "lm_head", "weight", "weight_delta_fro")]
    assert head == values[(0, "embed_tokens", "weight", "weight_delta_fro")] > 0
    head_row = next(r for r in rows if r.extra["module"] == "lm_head")
    assert "tied" in head_row.extra["note"] and head_row.extra["tensor"] == "transformer.wte.weight"


def test_head_tied_on_one_side_only_compares_with_the_embedding():
    sft = build_tiny("llama")
    sft_sd = {k: v.clone() for k, v in sft.state_dict().items()}
    base_sd = {k: v for k, v in sft_sd.items() if k != "lm_head.weight"}   # Base ties its head
    delta = sft_sd["lm_head.weight"].double() - sft_sd["model.embed_tokens.weight"].double()
    rows = keyed(weight_change(base_sd, sft_sd, progress=False))
    assert rows[(N_BLOCKS + 1, "lm_head", "weight", "weight_delta_fro")] == pytest.approx(delta.norm().item(), rel=1e-9)


def test_renamed_prefixes_still_match():
    model = build_tiny("gpt2")
    with_prefix = model.state_dict()
    without = {k.removeprefix("transformer."): v for k, v in with_prefix.items()}
    rows = weight_change(with_prefix, without, progress=False)
    assert rows and all(r.value == 0.0 for r in rows)


def test_mixed_dtypes_compare_by_value(tmp_path):
    base = build_tiny("llama")
    bf16 = {k: v.to(torch.bfloat16) for k, v in base.state_dict().items()}
    rows = keyed(weight_change(base.state_dict(), bf16, progress=False))
    w = base.model.layers[0].self_attn.q_proj.weight.detach()
    expected = (w.to(torch.bfloat16).double() - w.double()).norm().item()
    assert rows[(1, "q_proj", "weight", "weight_delta_fro")] == pytest.approx(expected, rel=1e-9) and expected > 0


def test_shape_mismatch_names_the_tensor():
    base = build_tiny("llama").state_dict()
    sft = dict(base)
    sft["model.layers.1.mlp.up_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(SftscopeError, match=r"model\.layers\.1\.mlp\.up_proj\.weight"):
        weight_change(base, sft, progress=False)


def test_missing_tensor_is_named_or_skipped():
    base = build_tiny("llama").state_dict()
    sft = {k: v for k, v in base.items() if k != "model.layers.2.self_attn.v_proj.weight"}
    with pytest.raises(SftscopeError, match=r"model\.layers\.2\.self_attn\.v_proj\.weight"):
        weight_change(base, sft, progress=False)
    with pytest.warns(UserWarning, match="v_proj"):
        rows = weight_change(base, sft, progress=False, strict=False)
    assert (3, "v_proj", "weight", "weight_delta_fro") not in keyed(rows)


def test_unmerged_lora_is_refused():
    sd = build_tiny("llama").state_dict()
    lora = dict(sd, **{"model.layers.0.self_attn.q_proj.lora_A.default.weight": torch.zeros(2, 32)})
    with pytest.raises(SftscopeError, match="merge_and_unload"):
        weight_change(sd, lora, progress=False)


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(SftscopeError, match="no model weights"):
        weight_change(tmp_path, tmp_path, progress=False)


@pytest.mark.parametrize("split", [None, Split(axis=0, sizes=(2, 2, 2), parts=("a", "b", "c")),
                                   Split(axis=1, sizes=(5, 5, 5), parts=("a", "b", "c")),
                                   Split(axis=0, sizes=(6, 3, 3), parts=("a", "b", "c"))])   # uneven (GQA)
def test_chunked_equals_one_shot(split):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, 15, generator=gen), torch.randn(12, 15, generator=gen)
    read_x, read_y = (lambda a, b: x[a:b]), (lambda a, b: y[a:b])
    one_shot = tensor_distance(read_x, read_y, (12, 15), split, chunk_elements=10**6)
    chunked = tensor_distance(read_x, read_y, (12, 15), split, chunk_elements=16)   # one row per chunk
    for part, dist in one_shot.items():
        assert chunked[part].delta_sq == pytest.approx(dist.delta_sq, rel=1e-12)
        assert chunked[part].numel == dist.numel
    if split is None:
        assert math.isclose(one_shot[""].fro, (y.double() - x.double()).norm().item(), rel_tol=1e-12)
    elif split.axis == 1:
        assert one_shot["b"].fro == pytest.approx((y[:, 5:10].double() - x[:, 5:10].double()).norm().item())
        assert one_shot["b"].numel == 12 * 5
    elif split.sizes[0] == 6:
        assert one_shot["a"].fro == pytest.approx((y[:6].double() - x[:6].double()).norm().item())
        assert one_shot["c"].fro == pytest.approx((y[9:].double() - x[9:].double()).norm().item())
        assert one_shot["c"].numel == 3 * 15


def test_stacked_experts_split_per_expert_and_role_in_sub_row_chunks():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 8, 5, generator=gen), torch.randn(3, 8, 5, generator=gen)   # [E, gate | up, in]
    split = Split(axis=1, sizes=(4, 4), parts=("gate_proj", "up_proj"), experts=3)
    read_x, read_y = (lambda a, b: x[a:b]), (lambda a, b: y[a:b])
    for chunk in (10**6, 7):   # 7 < one expert's 40 values: each expert is compared in slices
        dist = tensor_distance(read_x, read_y, (3, 8, 5), split, chunk_elements=chunk)
        assert list(dist) == [f"experts.{e}.{p}" for e in range(3) for p in ("gate_proj", "up_proj")]
        for e in range(3):
            for p, rows in (("gate_proj", slice(0, 4)), ("up_proj", slice(4, 8))):
                expected = (y[e, rows].double() - x[e, rows].double()).norm().item()
                assert dist[f"experts.{e}.{p}"].fro == pytest.approx(expected, rel=1e-12)
                assert dist[f"experts.{e}.{p}"].numel == 20


def test_single_weight_file_and_bad_reference(tmp_path):
    path = save(build_tiny("llama"), tmp_path / "m")
    rows = weight_change(path / "model.safetensors", path, progress=False)
    assert rows and all(r.value == 0.0 for r in rows)
    with pytest.raises(SftscopeError, match="neither an existing path nor a Hugging Face hub id"):
        weight_change(tmp_path / "does" / "not" / "exist", path, progress=False)
