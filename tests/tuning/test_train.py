"""train_cell on a tiny Llama: loss falls, only the selected blocks change, backward stops at the first
adapted block, runs are reproducible, step counting follows epochs / grad accumulation."""

import pytest
import torch

from sftscope.tuning.adapters import inspect_lora
from sftscope.tuning.config import TrainConfig
from sftscope.tuning.sequences import collate, encode_records, pad_id_of
from sftscope.tuning.train import adapt_model, train_cell

from ..conftest import make_tokenizer
from .conftest import tiny_decoder

TOK = make_tokenizer()
SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=8, num_attention_heads=4, num_key_value_heads=2)
RECORDS = [{"prompt": f"question : what is {a} + {b} ?", "completion": f"{a} + {b} # {(a + b) % 10}"}
           for a in range(6) for b in range(4)]


def small_model(seed=0):
    return tiny_decoder("llama", seed=seed, **SMALL).train()


def fixed_batch_loss(model):
    batch = collate(encode_records(TOK, RECORDS[:8], 64).examples, pad_id_of(TOK))
    with torch.no_grad():
        return float(model(**batch).loss)


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.integration
def test_lora_cell_learns_and_touches_only_selected_blocks():
    model = small_model()
    before = snapshot(model)
    config = TrainConfig(blocks="0110", lr=2e-2, max_steps=12, batch_size=8, max_length=64, warmup_ratio=0.0)
    # Loss of the untouched model equals the freshly wrapped one (LoRA B starts at zero).
    start_loss = fixed_batch_loss(model)
    result = train_cell(model, TOK, RECORDS, config, progress=False)
    assert result.steps == 12 and len(result.loss_curve) == 12
    assert fixed_batch_loss(result.model) < start_loss - 0.1
    assert result.layers == (2, 3, 4, 5) and result.trainable_count == result.reference_count
    base = {n.replace("base_model.model.", "").replace(".base_layer", ""): p
            for n, p in result.model.named_parameters() if "lora_" not in n}
    assert base.keys() == before.keys()
    assert all(torch.equal(base[n], before[n]) for n in before)  # frozen weights bit-identical
    changed_b = {int(n.split("layers.")[1].split(".")[0]) for n, p in result.model.named_parameters()
                 if "lora_B" in n and p.abs().sum() > 0}
    assert changed_b == {2, 3, 4, 5}
    assert set(inspect_lora(result.model).ranks) == set(result.plan["ranks"])


@pytest.mark.integration
def test_full_cell_changes_only_the_unfrozen_blocks():
    model = small_model()
    before = snapshot(model)
    config = TrainConfig(method="full", blocks="layers:5-6", lr=1e-3, max_steps=3, batch_size=8, max_length=64)
    result = train_cell(model, TOK, RECORDS, config, progress=False)
    after = dict(result.model.named_parameters())
    for name, old in before.items():
        selected = name.startswith(("model.layers.5.", "model.layers.6."))
        same = torch.equal(after[name], old)
        assert same != selected, name  # every selected tensor moved (Adam), every other one is bit-identical
    assert not torch.equal(after["model.layers.5.self_attn.q_proj.weight"], before["model.layers.5.self_attn.q_proj.weight"])
    assert result.plan["layers"] == [5, 6] and result.trainable_count == result.plan["realised_count"]


def test_backward_never_reaches_blocks_below_the_first_adapted_one():
    model = small_model()
    adapted = adapt_model(model, TrainConfig(blocks="layers:3-5"))
    needs_grad = {}
    layers = adapted.model.base_model.model.model.layers
    hooks = [layer.register_forward_hook(lambda m, i, o, k=k: needs_grad.__setitem__(k, o.requires_grad))
             for k, layer in enumerate(layers)]
    batch = collate(encode_records(TOK, RECORDS[:4], 64).examples, pad_id_of(TOK))
    adapted.model(**batch).loss.backward()
    for h in hooks:
        h.remove()
    # Blocks 0-2 run without autograd (their outputs need no grad); from block 3 up the graph is recorded.
    assert needs_grad == {0: False, 1: False, 2: False, 3: True, 4: True, 5: True, 6: True, 7: True}
    assert not adapted.model.get_input_embeddings().weight.requires_grad


@pytest.mark.integration
def test_same_seed_same_curve_other_seed_other_curve():
    config = TrainConfig(blocks="random:2", lr=1e-2, max_steps=4, batch_size=4, max_length=64, seed=1)
    a = train_cell(small_model(), TOK, RECORDS, config, progress=False)
    b = train_cell(small_model(), TOK, RECORDS, config, progress=False)
    c = train_cell(small_model(), TOK, RECORDS, TrainConfig(**{**config.as_dict(), "seed": 2}), progress=False)
    assert a.loss_curve == b.loss_curve and a.layers == b.layers
    assert a.loss_curve != c.loss_curve


@pytest.mark.integration
def test_epochs_and_accumulation_count_optimizer_steps():
    config = TrainConfig(blocks="all", epochs=2, batch_size=5, grad_accum=2, max_length=64, lr=1e-3)
    result = train_cell(small_model(), TOK, RECORDS, config, progress=False)
    assert result.steps == 2 * 3  # 24 records / 5 = 5 micro-batches -> ceil(5 / 2) = 3 optimizer steps an epoch
    rows = result.rows(run="r")
    assert [r.extra["step"] for r in rows if r.metric == "train_loss"] == list(range(1, 7))
    assert {r.metric for r in rows} >= {"trainable_params", "budget_rel_error", "train_truncated", "train_dropped"}
    assert all(r.as_dict()["blocks"] == "all" and r.as_dict()["preset"] == "" for r in rows)


def test_config_rejects_bad_settings():
    from sftscope.errors import SftscopeError
    for bad in [dict(method="qlora"), dict(rank=0), dict(alpha_policy="x"), dict(blocks="middle"),
                dict(blocks="01100", segments=3), dict(target_modules=[]), dict(max_length=2), dict(lr=0),
                dict(blocks="01200"), dict(max_grad_norm=-1.0)]:
        with pytest.raises(SftscopeError, match="invalid tuning config|must be one of|segment mask"):
            TrainConfig(**bad)
    assert TrainConfig(method="full", blocks="middle").blocks == "middle"


def test_chat_template_option_reaches_the_training_sequences():
    from sftscope.errors import SftscopeError
    from tests.tokenizer_families import make_family
    config = TrainConfig(blocks="all", lr=1e-3, max_steps=1, batch_size=4, max_length=96, chat_template=True)
    with pytest.raises(SftscopeError, match="no chat template"):
        train_cell(small_model(), TOK, RECORDS[:4], config, progress=False)
    tok = make_family("llama3", chat=True)
    model = tiny_decoder("llama", vocab_size=len(tok), **SMALL).train()
    result = train_cell(model, tok, RECORDS[:4], config, progress=False)
    assert result.steps == 1 and result.completion_tokens == sum(
        len(e.input_ids) - e.prompt_tokens for e in encode_records(tok, RECORDS[:4], 96, chat_template=True).examples)
