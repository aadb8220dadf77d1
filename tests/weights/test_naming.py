"""Tensor-name classification across architectures, and the fused-qkv split layouts."""

import pytest
import torch

from sftscope.weights.naming import canonical_name, classify, is_buffer


@pytest.mark.parametrize("name, block, module, param, region", [
    ("model.layers.3.self_attn.q_proj.weight", 3, "q_proj", "weight", "block"),
    ("layers.3.self_attn.k_proj.bias", 3, "k_proj", "bias", "block"),            # LlamaModel / Qwen2 bias
    ("model.layers.0.self_attn.q_norm.weight", 0, "q_norm", "weight", "block"),  # OLMo2
    ("model.layers.1.post_feedforward_layernorm.weight", 1, "post_feedforward_layernorm", "weight", "block"),
    ("model.layers.2.mlp.gate_proj.weight", 2, "gate_proj", "weight", "block"),
    ("transformer.h.5.attn.c_proj.weight", 5, "o_proj", "weight", "block"),     # GPT-2
    ("h.5.mlp.c_proj.weight", 5, "down_proj", "weight", "block"),
    ("transformer.h.5.mlp.c_fc.bias", 5, "up_proj", "bias", "block"),
    ("transformer.h.0.ln_1.weight", 0, "ln_1", "weight", "block"),
    ("gpt_neox.layers.7.attention.dense.weight", 7, "o_proj", "weight", "block"),
    ("gpt_neox.layers.7.mlp.dense_h_to_4h.weight", 7, "up_proj", "weight", "block"),
    ("gpt_neox.layers.7.mlp.dense_4h_to_h.bias", 7, "down_proj", "bias", "block"),
    ("model.embed_tokens.weight", None, "embed_tokens", "weight", "embedding"),
    ("transformer.wte.weight", None, "embed_tokens", "weight", "embedding"),
    ("transformer.wpe.weight", None, "embed_positions", "weight", "embedding"),
    ("gpt_neox.embed_in.weight", None, "embed_tokens", "weight", "embedding"),
    ("model.norm.weight", None, "final_norm", "weight", "final"),
    ("transformer.ln_f.bias", None, "final_norm", "bias", "final"),
    ("gpt_neox.final_layer_norm.weight", None, "final_norm", "weight", "final"),
    ("lm_head.weight", None, "lm_head", "weight", "final"),
    ("embed_out.weight", None, "lm_head", "weight", "final"),
    ("score.weight", None, "score", "weight", "other"),
])
def test_classify_table(name, block, module, param, region):
    role = classify(name, (4, 4))
    assert (role.block, role.module, role.param, role.region) == (block, module, param, region)


def test_canonical_name_strips_wrappers():
    assert canonical_name("base_model.model.model.layers.0.mlp.up_proj.weight") == "layers.0.mlp.up_proj.weight"
    assert canonical_name("transformer.h.2.attn.c_attn.weight") == "h.2.attn.c_attn.weight"
    assert canonical_name("lm_head.weight") == "lm_head.weight"


def test_buffers_are_not_parameters():
    assert is_buffer("transformer.h.0.attn.bias") and is_buffer("h.0.attn.masked_bias")
    assert is_buffer("model.layers.0.self_attn.rotary_emb.inv_freq")
    assert not is_buffer("transformer.h.0.attn.c_attn.bias") and not is_buffer("model.layers.0.self_attn.q_proj.bias")


def test_gpt2_c_attn_splits_columns_into_q_k_v():
    role = classify("transformer.h.0.attn.c_attn.weight", (8, 24))
    assert role.split.axis == 1 and role.split.parts == ("q_proj", "k_proj", "v_proj")
    assert role.split.part_ids(0, 24).tolist() == [0] * 8 + [1] * 8 + [2] * 8
    bias = classify("transformer.h.0.attn.c_attn.bias", (24,))
    assert bias.split.axis == 0 and bias.split.part_ids(0, 24).tolist() == [0] * 8 + [1] * 8 + [2] * 8


def test_neox_split_follows_the_per_head_layout_of_the_forward_pass():
    heads, head_dim, hidden = 2, 3, 6
    role = classify("gpt_neox.layers.0.attention.query_key_value.weight", (3 * hidden, hidden),
                    {"num_attention_heads": heads})
    ids = role.split.part_ids(0, 3 * hidden)
    # GPTNeoXAttention: qkv.view(..., heads, 3 * head_dim).chunk(3, dim=-1) -> q, k, v
    expected = torch.arange(3 * hidden).view(heads, 3 * head_dim).chunk(3, dim=-1)
    for part, rows in enumerate(expected):
        assert sorted(rows.flatten().tolist()) == torch.nonzero(ids == part).flatten().tolist()


def test_neox_without_head_count_stays_fused():
    role = classify("gpt_neox.layers.0.attention.query_key_value.weight", (18, 6), None)
    assert role.module == "qkv" and role.split is None and "not split" in role.note
