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


PHI3 = {"model_type": "phi3", "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 32}


def test_phi3_qkv_proj_splits_by_gqa_sizes_from_the_config():
    role = classify("model.layers.0.self_attn.qkv_proj.weight", (64, 32), PHI3)
    assert role.module == "qkv" and role.roles == ("q_proj", "k_proj", "v_proj")
    assert role.split.axis == 0 and role.split.sizes == (32, 16, 16)   # 4 query heads, 2 kv heads of 8 dims
    assert role.split.part_ids(0, 64).tolist() == [0] * 32 + [1] * 16 + [2] * 16
    gate_up = classify("model.layers.0.mlp.gate_up_proj.weight", (128, 32), PHI3)
    assert gate_up.module == "gate_up" and gate_up.split.sizes == (64, 64)
    assert gate_up.split.parts == ("gate_proj", "up_proj")


def test_gqa_split_without_head_counts_stays_fused_and_counted():
    role = classify("model.layers.0.self_attn.qkv_proj.weight", (64, 32), None)
    assert role.split is None and "not split" in role.note and role.roles == ("q_proj", "k_proj", "v_proj")


@pytest.mark.parametrize("config", [{"model_type": "mixtral"}, None])
def test_mixtral_checkpoint_expert_names_map_to_roles(config):
    for leaf, module in (("w1", "gate_proj"), ("w3", "up_proj"), ("w2", "down_proj")):
        role = classify(f"model.layers.2.block_sparse_moe.experts.5.{leaf}.weight", (64, 32), config)
        assert (role.block, role.module, role.expert, role.label) == (2, module, 5, f"experts.5.{module}")
    router = classify("model.layers.2.block_sparse_moe.gate.weight", (8, 32), config)
    assert router.module == "router" and router.roles == ("router",)


def test_mixtral_stacked_experts_split_per_expert_and_role():
    role = classify("model.layers.0.mlp.experts.gate_up_proj", (2, 128, 32), {"model_type": "mixtral"})
    assert role.param == "weight" and role.split.axis == 1 and role.split.sizes == (64, 64)
    assert role.split.labels == ("experts.0.gate_proj", "experts.0.up_proj", "experts.1.gate_proj",
                                 "experts.1.up_proj")
    down = classify("model.layers.0.mlp.experts.down_proj", (2, 32, 64), {"model_type": "mixtral"})
    assert down.split.labels == ("experts.0.down_proj", "experts.1.down_proj")


def test_ambiguous_bare_name_gets_no_role():
    """'c_proj' without its parent is GPT-2's attention output or its MLP down projection: no guess."""
    role = classify("h.0.c_proj.weight", (4, 4))
    assert role.module == "c_proj" and role.roles == ()
