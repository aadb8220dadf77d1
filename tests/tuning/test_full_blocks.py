"""Full-block control: block count nearest the LoRA budget, placement, exact unfreezing, recorded mismatch."""

import pytest

from sftscope.tuning.blocks import parse_block_spec
from sftscope.tuning.budget import lora_reference_count
from sftscope.tuning.full_blocks import plan_full_blocks, unfreeze_blocks
from sftscope.tuning.modules import count_trainable, find_target_modules

from .conftest import SHAPE, tiny_decoder

L = SHAPE["num_hidden_layers"]


def block_size(model):
    return sum(p.numel() for p in model.model.layers[0].parameters())


@pytest.mark.parametrize("position,expected_start", [("early", 0), ("middle", None), ("late", None)])
def test_positions_use_the_block_count_nearest_the_budget(position, expected_start):
    model = tiny_decoder("llama")
    reference = 5 * block_size(model) + 10  # nearest whole-block count: 5
    plan = plan_full_blocks(model, position, reference)
    assert len(plan.layers) == 5 and plan.realised_count == 5 * block_size(model)
    assert plan.rel_error == pytest.approx(-10 / reference)
    start = {"early": 0, "middle": (L - 5) // 2, "late": L - 5}[position]
    assert plan.layers == tuple(range(start, start + 5))


def test_tiny_budget_still_trains_one_block_and_records_mismatch():
    model = tiny_decoder("llama")
    reference = lora_reference_count(find_target_modules(model), 1)
    plan = plan_full_blocks(model, "random", reference, seed=3)
    assert len(plan.layers) == 1 and plan.rel_error > 0


def test_unfreeze_exactly_the_planned_blocks(arch):
    model = tiny_decoder(arch)
    plan = plan_full_blocks(model, parse_block_spec("01000", L), reference_count=1000)
    assert unfreeze_blocks(model, plan) == plan.realised_count == count_trainable(model)
    for name, p in model.named_parameters():
        in_plan = any(name.startswith(f"model.layers.{i}.") for i in plan.layers)
        assert p.requires_grad == in_plan, name  # embeddings, final norm, head stay frozen


def test_targets_scope_unfreezes_only_attention_projections():
    model = tiny_decoder("qwen2")  # q/k/v have biases: counted too
    plan = plan_full_blocks(model, "layers:4", 1, scope="targets")
    unfreeze_blocks(model, plan)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"model.layers.4.self_attn.{m}.{t}" for m in ("q_proj", "k_proj", "v_proj", "o_proj")
                         for t in ("weight", "bias") if not (m == "o_proj" and t == "bias")}
