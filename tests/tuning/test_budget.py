"""Budget matching: the planned LoRA count equals the all-layer rank-r reference within 0.5%, by closed form."""

import pytest

from sftscope.errors import SftscopeError
from sftscope.tuning.blocks import parse_block_spec, segment_masks
from sftscope.tuning.budget import lora_reference_count, match_budget
from sftscope.tuning.modules import find_target_modules, meta_model_from_config

from .conftest import SHAPE, TUNING_CONFIGS, shared_decoder as tiny_decoder

D, KV = SHAPE["hidden_size"], SHAPE["num_key_value_heads"] * SHAPE["hidden_size"] // SHAPE["num_attention_heads"]
FF, L = SHAPE["intermediate_size"], SHAPE["num_hidden_layers"]
QKVO_COST = {"q_proj": 2 * D, "k_proj": D + KV, "v_proj": D + KV, "o_proj": 2 * D}  # in + out per module
SPECS = segment_masks(5) + segment_masks(10)[:10] + ["20%-80%", "8-12,15", "random:3", "random-layers:5", "layers:7"]


def planned_count(plan):
    """Independent recount: sum of r * (in + out) from the module's short name."""
    return sum(r * QKVO_COST[name.rsplit(".", 1)[-1]] for name, r in plan.ranks.items())


def test_reference_count_closed_form(arch):
    modules = find_target_modules(tiny_decoder(arch), ["q_proj", "k_proj", "v_proj", "o_proj"])
    assert KV < D  # GQA: k and v are narrower than q and o
    assert lora_reference_count(modules, 8) == 8 * L * sum(QKVO_COST.values())


def test_all_layers_gives_rank_r_exactly(arch):
    plan = match_budget(tiny_decoder(arch), parse_block_spec("all", L), rank=8)
    assert set(plan.ranks.values()) == {8} and plan.rel_error == 0 and len(plan.ranks) == 4 * L


@pytest.mark.parametrize("spec", SPECS)
def test_every_spec_matches_within_half_a_percent(arch, spec):
    model = tiny_decoder(arch)
    sel = parse_block_spec(spec, L, seed=2)
    plan = match_budget(model, sel, rank=8)
    assert plan.reference_count == 8 * L * sum(QKVO_COST.values())
    assert plan.realised_count == planned_count(plan)
    assert abs(plan.rel_error) <= 0.005
    assert {int(n.split(".")[2]) for n in plan.ranks} == set(sel.layers)  # only selected blocks
    assert len(plan.ranks) == 4 * len(sel.layers)
    ranks = set(plan.ranks.values())
    assert max(ranks) - min(ranks) <= 1 and min(ranks) >= 8  # an integer rank mix r_lo / r_lo + 1


def test_plan_names_are_real_module_names(arch):
    model = tiny_decoder(arch)
    plan = match_budget(model, parse_block_spec("01000", L))
    names = dict(model.named_modules())
    assert all(n in names for n in plan.ranks)


def test_all_linear_targets_include_mlp(arch):
    model = tiny_decoder(arch)
    plan = match_budget(model, parse_block_spec("00100", L), target_modules="all-linear")
    kinds = {n.rsplit(".", 1)[-1] for n in plan.ranks}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    per_layer = sum(QKVO_COST.values()) + 3 * (D + FF)
    assert plan.reference_count == 8 * L * per_layer
    assert abs(plan.rel_error) <= 0.005


def test_meta_model_plans_like_the_real_one(arch):
    spec = parse_block_spec("0110", L)
    real = match_budget(tiny_decoder(arch), spec)
    meta = match_budget(meta_model_from_config(TUNING_CONFIGS[arch]()), spec)
    assert real.ranks == meta.ranks and real.realised_count == meta.realised_count


def test_exact_match_when_the_remainder_is_reachable():
    # 16 layers, mask 01000 -> 3 layers; reference 8*16 = 128 rank-units per module -> 42 and 2/3 per module.
    plan = match_budget(tiny_decoder("llama"), parse_block_spec("01000", L))
    assert plan.rank_histogram() == {42: 4, 43: 8} and plan.realised_count == plan.reference_count


def test_budget_below_rank_one_and_bad_targets_raise():
    model = tiny_decoder("llama")
    with pytest.raises(SftscopeError, match="below rank 1"):
        match_budget(model, parse_block_spec("all", L), reference_count=100)
    with pytest.raises(SftscopeError, match="no linear module named qkv"):
        match_budget(model, parse_block_spec("all", L), target_modules=["qkv"])
    with pytest.raises(SftscopeError, match="made for 32 layers"):
        match_budget(model, parse_block_spec("all", 32))
    with pytest.raises(SftscopeError, match="within"):
        match_budget(model, parse_block_spec("all", L), reference_count=8 * L * sum(QKVO_COST.values()) + 7,
                     tolerance=1e-9)
