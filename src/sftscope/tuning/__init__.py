"""Mid-Block Efficient Tuning: block specs -> budget-matched LoRA or full-block controls -> accelerate training."""

from sftscope.tuning.adapters import ALPHA_POLICIES, attach_lora, build_lora_config, inspect_lora, verify_lora
from sftscope.tuning.blocks import BlockSelection, BlockSpec, parse_block_spec, same_size_controls, segment_bounds, segment_masks
from sftscope.tuning.budget import RankPlan, lora_reference_count, match_budget
from sftscope.tuning.config import SweepConfig, TrainConfig, TuneConfig
from sftscope.tuning.full_blocks import FullBlockPlan, plan_full_blocks, unfreeze_blocks
from sftscope.tuning.modules import ALL_LINEAR, ATTENTION_QKVO, find_target_modules, meta_model_from_config
from sftscope.tuning.train import AdaptedModel, TrainResult, adapt_model, train_cell

__all__ = [
    "ALL_LINEAR", "ALPHA_POLICIES", "ATTENTION_QKVO", "AdaptedModel", "BlockSelection", "FullBlockPlan", "RankPlan",
    "TrainResult", "TrainConfig", "TuneConfig", "SweepConfig", "BlockSpec", "adapt_model", "attach_lora", "build_lora_config", "find_target_modules",
    "inspect_lora", "lora_reference_count", "match_budget", "meta_model_from_config", "parse_block_spec",
    "plan_full_blocks", "same_size_controls", "segment_bounds", "segment_masks", "train_cell", "unfreeze_blocks",
    "verify_lora",
]
