"""Mid-block tuning inside someone else's trainer: the budget-matched `peft.LoraConfig` of a model and a block spec.

TRL's SFTTrainer (and anything that takes a LoraConfig) trains with exactly the adapters `sftscope tune` would
attach: target modules and rank / alpha patterns keyed by full module names, planned on a weightless copy of the
model, so a 32B model needs no memory to plan.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from sftscope.errors import SftscopeError
from sftscope.tuning.adapters import build_lora_config
from sftscope.tuning.budget import RankPlan
from sftscope.tuning.config import TrainConfig


def budget_matched_lora_config(model: nn.Module, config: TrainConfig):
    """(peft.LoraConfig, RankPlan) for `model` (a real or meta-device model) and `config`'s blocks, rank budget,
    targets and alpha policy; the model is not changed.

    Raises:
        SftscopeError: `config.method` is not lora, or the blocks / targets / budget do not fit the model.
    """
    from sftscope.tuning.train import plan_adaptation

    if config.method != "lora":
        raise SftscopeError("a PEFT LoraConfig exists only for --method lora (full-block updates unfreeze weights)")
    plan, _ = plan_adaptation(model, config)
    assert isinstance(plan, RankPlan)
    return build_lora_config(plan, config.alpha, config.alpha_policy, config.lora_dropout), plan


def export_peft_config(config, path: str | Path) -> Path:
    """Write the budget-matched LoraConfig of `config.base` (a TuneConfig) as PEFT's adapter_config.json: to
    `path` if it ends in .json, else to `path`/adapter_config.json. Load it with
    `LoraConfig(**json.load(open(file)))` or `LoraConfig.from_pretrained(folder)`. Returns the file written.

    Raises:
        SftscopeError: the Base cannot be read, or the plan does not fit it.
    """
    from sftscope.models.loading import load_config
    from sftscope.models.refs import ModelRef
    from sftscope.results.rundir import _atomic_write
    from sftscope.tuning.modules import meta_model_from_config

    model_config = load_config(ModelRef.parse(config.base, "base"), config.trust_remote_code)
    lora, plan = budget_matched_lora_config(meta_model_from_config(model_config), config)
    path = Path(path).expanduser()
    target = path if path.suffix.lower() == ".json" else path / "adapter_config.json"
    record = lora.to_dict()
    record["target_modules"] = sorted(record["target_modules"])  # a set in memory: JSON wants a list
    record["base_model_name_or_path"] = config.base
    text = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    _atomic_write(target, lambda tmp: Path(tmp).write_text(text))
    return target
