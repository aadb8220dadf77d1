"""Attaching LoRA through PEFT: exactly the planned modules and ranks, scalings per alpha policy, and the
check catches configs PEFT silently misreads (the paper's integer rank_pattern keys)."""

import math
from dataclasses import replace

import pytest
import torch
from peft import LoraConfig, get_peft_model

from sftscope.errors import SftscopeError
from sftscope.tuning.adapters import attach_lora, build_lora_config, inspect_lora, verify_lora
from sftscope.tuning.blocks import parse_block_spec
from sftscope.tuning.budget import match_budget

from .conftest import SHAPE, tiny_decoder

L = SHAPE["num_hidden_layers"]


@pytest.mark.parametrize("spec", ["01000", "0000000100", "20%-80%"])
def test_attached_lora_matches_plan_per_module(arch, spec):
    model = tiny_decoder(arch)
    plan = match_budget(model, parse_block_spec(spec, L))
    peft_model, check = attach_lora(model, plan, seed=0)
    assert check.ranks == plan.ranks  # read back from lora_A weight shapes [r, in]
    assert check.trainable_count == plan.realised_count == sum(
        p.numel() for n, p in peft_model.named_parameters() if p.requires_grad and "lora_" in n)
    assert set(check.scaling.values()) == {16 / 8}  # constant-scale: alpha_m / r_m = alpha / reference rank


@pytest.mark.parametrize("policy", ["rslora", "fixed"])
def test_alpha_policies_give_their_scaling(policy):
    model = tiny_decoder("llama")
    plan = match_budget(model, parse_block_spec("01000", L))  # ranks 42 and 43
    _, check = attach_lora(model, plan, alpha=16.0, policy=policy)
    for name, r in plan.ranks.items():
        want = 16 / math.sqrt(r) if policy == "rslora" else 16 / r
        assert check.scaling[name] == pytest.approx(want)


def test_lora_init_is_seeded():
    plan = match_budget(tiny_decoder("llama"), parse_block_spec("0110", L))
    a1, _ = attach_lora(tiny_decoder("llama"), plan, seed=5)
    a2, _ = attach_lora(tiny_decoder("llama"), plan, seed=5)
    w1 = {n: p for n, p in a1.named_parameters() if "lora_A" in n}
    w2 = dict(a2.named_parameters())
    assert all(torch.equal(p, w2[n]) for n, p in w1.items())


@pytest.mark.filterwarnings("ignore:The following .* keys did not match")
def test_paper_style_integer_rank_keys_are_caught():
    # The authors keyed rank_pattern by layer index: PEFT matches keys as name patterns, so 3 -> 40 never applies.
    model = tiny_decoder("llama")
    plan = match_budget(model, parse_block_spec("01000", L))  # layers 3-5
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                        layers_to_transform=list(plan.layers), rank_pattern={3: 43, 4: 43, 5: 42})
    with pytest.raises(SftscopeError, match="wrong rank"):
        verify_lora(get_peft_model(model, config), plan)


@pytest.mark.filterwarnings("ignore:The following .* keys did not match")
def test_misspelled_rank_key_is_caught():
    model = tiny_decoder("llama")
    plan = match_budget(model, parse_block_spec("01000", L))
    config = build_lora_config(plan)
    bad = next(n for n, r in plan.ranks.items() if r != config.r)  # a module off the default rank
    config.rank_pattern = {(n.replace("layers", "layer") if n == bad else n): r for n, r in config.rank_pattern.items()}
    peft_model = get_peft_model(model, config)
    assert inspect_lora(peft_model).ranks[bad] == config.r  # PEFT fell back to the default rank
    with pytest.raises(SftscopeError, match="wrong rank"):
        verify_lora(peft_model, plan)


@pytest.mark.filterwarnings("ignore:The following .* keys did not match")
def test_missing_or_extra_modules_are_caught():
    model = tiny_decoder("llama")
    plan = match_budget(model, parse_block_spec("01000", L))
    config = build_lora_config(plan)
    config.target_modules = set(config.target_modules) | {"model.layers.0.self_attn.q_proj"}
    with pytest.raises(SftscopeError, match="unplanned modules"):
        verify_lora(get_peft_model(model, config), plan)
    config = build_lora_config(plan)
    config.target_modules = sorted(config.target_modules)[1:]
    with pytest.raises(SftscopeError, match="got no LoRA"):
        verify_lora(get_peft_model(tiny_decoder("llama"), config), plan)


def test_pattern_keys_do_not_leak_to_longer_layer_numbers():
    # A key for layer 1 must not also match layer 11 (PEFT matches keys as regex suffixes after a dot).
    model = tiny_decoder("llama")
    plan = match_budget(model, parse_block_spec("layers:1,11", L))
    layer1, layer11 = "model.layers.1.self_attn.q_proj", "model.layers.11.self_attn.q_proj"
    ranks = {**plan.ranks, layer1: plan.ranks[layer1] + 3}
    plan = replace(plan, ranks=ranks, realised_count=plan.realised_count + 3 * 2 * SHAPE["hidden_size"])
    _, check = attach_lora(model, plan)
    assert check.ranks[layer1] == plan.ranks[layer11] + 3 and check.ranks[layer11] == plan.ranks[layer11]
