"""The exported budget-matched LoraConfig builds exactly the adapters `sftscope tune` plans (any PEFT trainer)."""

from __future__ import annotations

import json

import pytest
from peft import LoraConfig, get_peft_model

from sftscope import cli
from sftscope.tuning.adapters import verify_lora
from sftscope.tuning.config import TrainConfig, TuneConfig
from sftscope.tuning.export import budget_matched_lora_config, export_peft_config
from sftscope.tuning.modules import count_trainable, meta_model_from_config
from tests.conftest import build_tiny, save_tiny


@pytest.mark.parametrize("blocks,policy", [("0110", "constant-scale"), ("layers:1-2", "rslora"), ("all", "fixed")])
def test_exported_config_builds_the_planned_adapters(tmp_path, blocks, policy):
    base = save_tiny("llama", tmp_path / "base")
    cfg = TuneConfig(base=str(base), blocks=blocks, rank=4, alpha_policy=policy, tasks=["mmlu"], retention=[])
    path = export_peft_config(cfg, tmp_path / "mid.json")
    record = json.loads(path.read_text())
    assert record["rank_pattern"] and all(k.startswith("model.layers.") for k in record["rank_pattern"])
    model = build_tiny("llama")
    _, plan = budget_matched_lora_config(model, cfg)  # the plan on the real model equals the meta-model plan
    peft_model = get_peft_model(model, LoraConfig(**record))
    check = verify_lora(peft_model, plan)
    assert check.trainable_count == count_trainable(peft_model) == plan.realised_count
    assert abs(plan.rel_error) <= cfg.budget_tolerance
    assert set(record["target_modules"]) == set(plan.ranks)


def test_meta_model_plans_like_the_real_model():
    real, _ = budget_matched_lora_config(build_tiny("gpt2"), TrainConfig(blocks="01", rank=8))
    meta, _ = budget_matched_lora_config(meta_model_from_config(build_tiny("gpt2").config), TrainConfig(blocks="01",
                                                                                                       rank=8))
    assert real.rank_pattern == meta.rank_pattern and set(real.target_modules) == set(meta.target_modules)


@pytest.mark.integration
def test_cli_export_needs_no_out_and_trains_nothing(tmp_path, capsys):
    base = save_tiny("llama", tmp_path / "base")
    rc = cli.main(["tune", "--base", str(base), "--blocks", "01", "--tasks", "none", "--retention", "none",
                   "--export-peft-config", str(tmp_path / "lora")])
    assert rc == 2  # no task at all is still a bad cell
    rc = cli.main(["tune", "--base", str(base), "--blocks", "01", "--tasks", "mmlu", "--retention", "none",
                   "--export-peft-config", str(tmp_path / "lora")])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "lora" / "adapter_config.json").exists()
    assert LoraConfig.from_pretrained(tmp_path / "lora").rank_pattern
    assert cli.main(["tune", "--base", str(base), "--tasks", "mmlu", "--retention", "none"]) == 2
    assert "--out DIR" in capsys.readouterr().err
