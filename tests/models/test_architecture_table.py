"""Every entry of the architecture table against the real transformers classes: capture, weight-change roles,
LoRA target discovery. The role layouts below (`role_views`) are written independently of the table, from the
forward passes of the transformers modules, so the table is checked against them rather than against itself."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from sftscope.capture.batches import encode_texts, make_batches
from sftscope.capture.hooks import capture_all_layers
from sftscope.errors import SftscopeError
from sftscope.models.architectures import (ARCHITECTURES, ATTENTION_ROLES, MLP_ROLES, ROUTER, ModelParts,
                                           resolve_path)
from sftscope.models.loading import LoadedModel, ModelRef
from sftscope.tuning import TrainConfig, adapt_model
from sftscope.tuning.adapters import attach_lora
from sftscope.tuning.blocks import parse_block_spec
from sftscope.tuning.budget import lora_reference_count, match_budget
from sftscope.tuning.modules import find_target_modules, linear_shape
from sftscope.weights import weight_change
from tests.conftest import CONFIGS, build_tiny, make_tokenizer

ARCHS = list(ARCHITECTURES)
BLOCK = 1          # the block whose matrices are perturbed (rows at layer BLOCK + 1)
RANK = 8


def keyed(rows):
    """(layer, module, param, metric) -> value."""
    return {(r.layer, r.extra["module"], r.extra["param"], r.metric): r.value for r in rows}


def head_dim(cfg) -> int:
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


def role_views(arch: str, block: nn.Module, cfg) -> dict[str, tuple[str, torch.Tensor]]:
    """{row name -> (role, view of that matrix's weight)} for every attention, MLP and router matrix of a block,
    from the modules' forward passes (not from the table)."""
    def linear(module_path, role):
        return role, block.get_submodule(module_path).weight

    if arch == "gpt2":  # Conv1D [in, out]; c_attn(x).split(n_embd, dim=2) -> q, k, v
        d, c_attn = cfg.n_embd, block.attn.c_attn.weight
        return {"q_proj": ("q_proj", c_attn[:, :d]), "k_proj": ("k_proj", c_attn[:, d:2 * d]),
                "v_proj": ("v_proj", c_attn[:, 2 * d:]), "o_proj": linear("attn.c_proj", "o_proj"),
                "up_proj": linear("mlp.c_fc", "up_proj"), "down_proj": linear("mlp.c_proj", "down_proj")}
    if arch == "gpt_neox":  # qkv.view(..., heads, 3 * head_dim).chunk(3, dim=-1)
        w = block.attention.query_key_value.weight
        per_head = w.view(cfg.num_attention_heads, 3, head_dim(cfg), cfg.hidden_size)
        return {"q_proj": ("q_proj", per_head[:, 0]), "k_proj": ("k_proj", per_head[:, 1]),
                "v_proj": ("v_proj", per_head[:, 2]), "o_proj": linear("attention.dense", "o_proj"),
                "up_proj": linear("mlp.dense_h_to_4h", "up_proj"), "down_proj": linear("mlp.dense_4h_to_h", "down_proj")}
    if arch == "phi3":  # qkv[..., :H*hd], then K*hd keys, then K*hd values; gate_up(x).chunk(2, -1) -> gate, up
        q, kv = cfg.num_attention_heads * head_dim(cfg), cfg.num_key_value_heads * head_dim(cfg)
        qkv, gate_up, inter = block.self_attn.qkv_proj.weight, block.mlp.gate_up_proj.weight, cfg.intermediate_size
        return {"q_proj": ("q_proj", qkv[:q]), "k_proj": ("k_proj", qkv[q:q + kv]), "v_proj": ("v_proj", qkv[q + kv:]),
                "o_proj": linear("self_attn.o_proj", "o_proj"), "gate_proj": ("gate_proj", gate_up[:inter]),
                "up_proj": ("up_proj", gate_up[inter:]), "down_proj": linear("mlp.down_proj", "down_proj")}
    views = {role: linear(f"self_attn.{role}", role) for role in ATTENTION_ROLES}
    if arch == "mixtral":  # linear(x, gate_up_proj[e]).chunk(2, -1) -> gate, up; linear(h, down_proj[e])
        experts, inter = block.mlp.experts, cfg.intermediate_size
        for e in range(cfg.num_local_experts):
            views[f"experts.{e}.gate_proj"] = ("gate_proj", experts.gate_up_proj[e, :inter])
            views[f"experts.{e}.up_proj"] = ("up_proj", experts.gate_up_proj[e, inter:])
            views[f"experts.{e}.down_proj"] = ("down_proj", experts.down_proj[e])
        views["router"] = (ROUTER, block.mlp.gate.weight)
        return views
    views.update({role: linear(f"mlp.{role}", role) for role in MLP_ROLES})
    return views


def blocks_of(model) -> nn.ModuleList:
    return ModelParts(model).blocks


@pytest.fixture(scope="module")
def tiny():
    """One tiny random model per architecture (tests that change weights work on copies)."""
    cache = {}

    def get(arch):
        if arch not in cache:
            cache[arch] = build_tiny(arch)
        return cache[arch]
    return get


def test_every_table_entry_has_a_tiny_config():
    assert set(ARCHITECTURES) == set(CONFIGS), "add a tiny config to tests/conftest.py for every table entry"


# ---- the table against the installed transformers classes ------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_table_names_every_matrix_and_norm_of_the_real_block(arch, tiny):
    model = tiny(arch)
    spec = ARCHITECTURES[arch]
    block = blocks_of(model)[0]
    modules, params = dict(block.named_modules()), dict(block.named_parameters())
    covered = set()
    for projection in spec.projections:
        if projection.layout == "experts":
            assert projection.path in params and params[projection.path].dim() == 3
            covered.add(projection.path)
            continue
        module = modules[projection.path]
        assert (linear_shape(module) is not None) == projection.lora, projection.path
        expected_type = "Conv1D" if projection.layout == "conv1d" else None
        assert expected_type is None or type(module).__name__ == expected_type
        covered |= {f"{projection.path}.{n}" for n, _ in module.named_parameters()}
    for norm in spec.norms:
        covered |= {f"{norm}.{n}" for n, _ in modules[norm].named_parameters()}
    assert set(params) == covered, "every parameter of a block is a table projection or norm"
    linear = {path for path, m in modules.items() if path and linear_shape(m) is not None}
    assert linear == {p.path for p in spec.projections if p.lora}, "all-linear and the table agree"


@pytest.mark.parametrize("arch", ARCHS)
def test_role_views_cover_every_projection_weight(arch, tiny):
    """The independent layouts above account for every element of every attention/MLP/router weight."""
    model = tiny(arch)
    block = blocks_of(model)[0]
    views = role_views(arch, block, model.config)
    params = dict(block.named_parameters())
    weights = [params[p.path] if p.layout == "experts" else params[f"{p.path}.weight"]
               for p in ARCHITECTURES[arch].projections]
    assert sum(v.numel() for _, v in views.values()) == sum(w.numel() for w in weights)
    held = {role for role, _ in views.values()}
    assert held == {r for p in ARCHITECTURES[arch].projections for r in p.roles}


# ---- capture -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_capture_equals_hidden_states_and_head_reproduces_logits(arch, tiny):
    model, tokenizer = tiny(arch), make_tokenizer()
    loaded = LoadedModel(ModelRef("base", arch), model, tokenizer, ModelParts(model))
    texts = ["the question is what a of to", "answer A B C D the a of"]
    (batch,) = list(make_batches(encode_texts(["a", "b"], texts, tokenizer, None), 8, tokenizer.pad_token_id))
    layers = capture_all_layers(loaded, batch)
    with torch.no_grad():
        pos = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=pos,
                    output_hidden_states=True)
        logits = loaded.parts.logits_from_residual(layers[-1])
    valid = batch.attention_mask.bool()
    assert len(layers) == loaded.parts.num_layers + 1
    for layer in range(loaded.parts.num_layers):
        torch.testing.assert_close(layers[layer][valid], out.hidden_states[layer][valid], rtol=0, atol=1e-6)
    torch.testing.assert_close(logits[valid], out.logits[valid], rtol=1e-5, atol=1e-5)


# ---- weight change -----------------------------------------------------------------------------------------

def _copy(arch):
    return build_tiny(arch)   # same seed: an identical copy


@pytest.mark.parametrize("arch", ARCHS)
def test_each_matrix_shows_up_in_its_role_row_and_group_sum(arch, tiny):
    base = tiny(arch)
    layer = BLOCK + 1
    names = list(role_views(arch, blocks_of(base)[BLOCK], base.config))
    for i, name in enumerate(names):
        sft = _copy(arch)
        role, view = role_views(arch, blocks_of(sft)[BLOCK], sft.config)[name]
        delta = 0.01 * torch.randn(view.shape, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            view.add_(delta)
        rows = keyed(weight_change(base, sft, progress=False))
        size = (view.double() - role_views(arch, blocks_of(base)[BLOCK], base.config)[name][1].double()).norm().item()
        assert size > 0
        assert rows[(layer, name, "weight", "weight_delta_fro")] == pytest.approx(size, rel=1e-9), name
        changed = {k for k, v in rows.items() if v != 0 and k[3] in ("weight_delta_fro", "weight_delta_rel")}
        assert {k[:3] for k in changed} == {(layer, name, "weight")}, f"{name} leaked into {changed}"
        group = "attn_qkvo" if role in ATTENTION_ROLES else "mlp" if role in MLP_ROLES else None
        for other in ("attn_qkvo", "mlp"):
            value = rows.get((layer, other, "weight", f"{other}_delta_fro"), 0.0)
            assert value == (pytest.approx(size, rel=1e-9) if other == group else 0.0), (name, other)


@pytest.mark.parametrize("arch", ARCHS)
def test_group_sums_equal_the_sum_over_every_matrix(arch, tiny):
    base = tiny(arch)
    sft = _copy(arch)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(7)
        for p in sft.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen))
    rows = keyed(weight_change(base, sft, progress=False))
    for index, (b, s) in enumerate(zip(blocks_of(base), blocks_of(sft))):
        base_views, sft_views = role_views(arch, b, base.config), role_views(arch, s, sft.config)
        for group, roles in (("attn_qkvo", ATTENTION_ROLES), ("mlp", MLP_ROLES)):
            names = [n for n, (role, _) in base_views.items() if role in roles]
            delta = sum((sft_views[n][1].double() - base_views[n][1].double()).norm().item() for n in names)
            norm = sum(base_views[n][1].double().norm().item() for n in names)
            assert rows[(index + 1, group, "weight", f"{group}_delta_fro")] == pytest.approx(delta, rel=1e-9)
            assert rows[(index + 1, group, "weight", f"{group}_delta_rel")] == pytest.approx(delta / norm, rel=1e-9)


@pytest.mark.integration
@pytest.mark.parametrize("arch", ARCHS)
def test_checkpoint_files_classify_like_the_loaded_model(arch, tiny, tmp_path):
    """Files use checkpoint names (Mixtral: block_sparse_moe.experts.N.w1/w3/w2); the rows must not change."""
    base, sft = tiny(arch), build_tiny(arch, seed=1)
    base.save_pretrained(tmp_path / "b")
    sft.save_pretrained(tmp_path / "s")
    from_files = keyed(weight_change(tmp_path / "b", tmp_path / "s", progress=False))
    in_memory = keyed(weight_change(base, sft, progress=False))
    assert from_files.keys() == in_memory.keys()
    assert all(from_files[k] == pytest.approx(v, rel=1e-9, abs=1e-12) for k, v in in_memory.items())


def test_phi3_attention_sum_counts_the_fused_qkv_proj(tiny):
    """Regression: attn_qkvo_delta_fro summed only o_proj on Phi-3 (qkv_proj was not counted), mlp_delta_fro
    only down_proj (gate_up_proj was not counted)."""
    base, sft = tiny("phi3"), _copy("phi3")
    block = sft.model.layers[0]
    dqkv = 0.01 * torch.randn(block.self_attn.qkv_proj.weight.shape, generator=torch.Generator().manual_seed(0))
    dgu = 0.01 * torch.randn(block.mlp.gate_up_proj.weight.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        block.self_attn.qkv_proj.weight.add_(dqkv)
        block.mlp.gate_up_proj.weight.add_(dgu)
    rows = keyed(weight_change(base, sft, progress=False))
    dqkv = block.self_attn.qkv_proj.weight.double() - base.model.layers[0].self_attn.qkv_proj.weight.double()
    dgu = block.mlp.gate_up_proj.weight.double() - base.model.layers[0].mlp.gate_up_proj.weight.double()
    q = base.config.num_attention_heads * head_dim(base.config)
    kv = base.config.num_key_value_heads * head_dim(base.config)
    assert kv < q  # GQA: the three parts differ in size
    expected = sum(p.norm().item() for p in (dqkv[:q], dqkv[q:q + kv], dqkv[q + kv:]))
    assert rows[(1, "attn_qkvo", "weight", "attn_qkvo_delta_fro")] == pytest.approx(expected, rel=1e-9)
    assert rows[(1, "q_proj", "weight", "weight_delta_fro")] == pytest.approx(dqkv[:q].norm().item(), rel=1e-9)
    inter = base.config.intermediate_size
    assert rows[(1, "mlp", "weight", "mlp_delta_fro")] == pytest.approx(
        dgu[:inter].norm().item() + dgu[inter:].norm().item(), rel=1e-9)


# ---- LoRA target discovery ---------------------------------------------------------------------------------

def _cost(module: nn.Module, layout: str) -> int:
    """in + out of a module from its weight: [out, in], or [in, out] for GPT-2's Conv1D."""
    out, inp = module.weight.shape if layout != "conv1d" else module.weight.shape[::-1]
    return inp + out


@pytest.mark.parametrize("arch", ARCHS)
def test_default_targets_are_found_in_every_block_and_budgeted(arch, tiny):
    model, spec = tiny(arch), ARCHITECTURES[arch]
    found = find_target_modules(model, spec.lora_targets)
    holders = [p for p in spec.projections if set(p.roles) & set(ATTENTION_ROLES)]
    prefix = resolve_path(model, spec.layers)[0]
    blocks = blocks_of(model)
    expected = [f"{prefix}.{i}.{p.path}" for i in range(len(blocks)) for p in spec.projections if p in holders]
    assert sorted(m.name for m in found) == sorted(expected)
    assert len(found) == len({m.name for m in found}), "a fused module is adapted once"
    hand = sum(RANK * _cost(block.get_submodule(p.path), p.layout) for block in blocks for p in holders)
    assert lora_reference_count(found, RANK) == hand
    assert find_target_modules(model, ["default"]) == found == find_target_modules(model, ["attention"])


@pytest.mark.parametrize("arch", ARCHS)
def test_roles_resolve_to_their_module(arch, tiny):
    model, spec = tiny(arch), ARCHITECTURES[arch]
    for projection in spec.projections:
        if not projection.lora:
            with pytest.raises(SftscopeError, match="not a linear module"):
                find_target_modules(model, projection.roles)
            continue
        found = find_target_modules(model, projection.roles)
        assert {m.path for m in found} == {projection.path} and len(found) == len(blocks_of(model))
        assert all(m.roles == projection.roles for m in found)
        if projection.fused:
            with pytest.raises(SftscopeError, match="fused module"):
                find_target_modules(model, projection.roles[:1])
        # the module path itself, and its last part where that is unique, name the same module
        assert find_target_modules(model, [projection.path]) == found
        leaf = projection.path.rsplit(".", 1)[-1]
        if sum(p.path.rsplit(".", 1)[-1] == leaf for p in spec.projections) == 1:
            assert find_target_modules(model, [leaf]) == found
    lora = {p.path for p in spec.projections if p.lora}
    assert {m.path for m in find_target_modules(model, "all-linear")} == lora
    grouped = [p for p in spec.projections if set(p.roles) & set(ATTENTION_ROLES + MLP_ROLES)]
    if all(p.lora for p in grouped):
        assert {m.path for m in find_target_modules(model, ["attention", "mlp"])} == {p.path for p in grouped}
    else:   # Mixtral: the experts are stacked 3-D parameters, not modules PEFT can adapt by name
        with pytest.raises(SftscopeError, match="not a linear module"):
            find_target_modules(model, ["mlp"])


@pytest.mark.parametrize("arch", ARCHS)
def test_default_lora_attaches_with_the_planned_count(arch, tiny):
    model = build_tiny(arch)
    spec = ARCHITECTURES[arch]
    plan = match_budget(model, parse_block_spec("all", len(blocks_of(model))), spec.lora_targets, RANK)
    _, check = attach_lora(model, plan)   # raises unless PEFT built exactly the planned modules and count
    assert check.trainable_count == plan.reference_count


def test_gpt2_attention_only_lora():
    """Regression: on GPT-2 `c_attn,attn.c_proj` was refused and `c_attn,c_proj` silently added the MLP's
    c_proj (2,816 trainable parameters per block at rank 8 instead of 1,536)."""
    cfg = CONFIGS["gpt2"]()
    d, blocks = cfg.n_embd, cfg.n_layer
    per_block = RANK * ((d + 3 * d) + (d + d))   # c_attn [d -> 3d], attn.c_proj [d -> d]
    assert per_block == 1536
    for targets in (("c_attn", "attn.c_proj"), ("q_proj", "k_proj", "v_proj", "o_proj"), ("attention",)):
        adapted = adapt_model(build_tiny("gpt2"), TrainConfig(target_modules=list(targets), rank=RANK))
        assert adapted.trainable_count == adapted.reference_count == blocks * per_block
    with pytest.raises(SftscopeError, match=r"ambiguous.*attn\.c_proj \(o_proj\), mlp\.c_proj \(down_proj\)"):
        find_target_modules(build_tiny("gpt2"), ["c_attn", "c_proj"])


def test_unknown_model_type_falls_back_to_generic_names(tiny):
    """A model_type outside the table: paths are matched against the whole table where unambiguous."""
    model = tiny("llama")
    model.config.model_type = "my_llama"
    try:
        found = find_target_modules(model, ["attention"])
        assert {m.path for m in found} == {f"self_attn.{r}" for r in ATTENTION_ROLES}
        rows = keyed(weight_change(model, _copy("llama"), progress=False))
        assert (2, "attn_qkvo", "weight", "attn_qkvo_delta_fro") in rows and (2, "mlp", "weight", "mlp_delta_fro") in rows
    finally:
        model.config.model_type = "llama"


def test_listing_shows_roles_and_default_targets():
    from sftscope.listing import listing

    text = listing("architectures")
    assert re.search(r"^gpt2 .* q_proj,k_proj,v_proj,o_proj -> attn\.c_attn attn\.c_proj$", text, re.M)
    assert re.search(r"^phi3 +self_attn\.qkv_proj +q_proj\|k_proj\|v_proj +linear, gqa ", text, re.M)
    assert re.search(r"^mixtral +mlp\.experts\.down_proj +down_proj +experts, no LoRA +"
                     r"block_sparse_moe\.experts\.\{expert\}\.w2=down_proj$", text, re.M)


def test_generic_matches_use_the_models_own_module_paths():
    from sftscope.tuning.modules import block_projections, resolve_targets

    paths = ["attention.q_proj", "attention.k_proj", "attn.c_proj", "mlp.c_proj", "fc1"]
    found = block_projections(None, paths)
    assert {p: found[p].roles for p in found} == {"attention.q_proj": ("q_proj",), "attention.k_proj": ("k_proj",),
                                                  "attn.c_proj": ("o_proj",), "mlp.c_proj": ("down_proj",),
                                                  "fc1": ("up_proj",)}
    assert all(found[p].path == p for p in found)
    assert resolve_targets(["attention"], paths, found, "custom") == ["attention.q_proj", "attention.k_proj",
                                                                      "attn.c_proj"]
