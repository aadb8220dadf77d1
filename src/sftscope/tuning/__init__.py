"""Mid-Block Efficient Tuning: block specs -> budget-matched LoRA or full-block controls -> accelerate training.

Names are re-exported lazily: `import sftscope.tuning.blocks` (block specs, format_layers) loads no torch.
"""

from sftscope._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "adapters": ("ALPHA_POLICIES", "attach_lora", "build_lora_config", "inspect_lora", "verify_lora"),
    "blocks": ("BlockSelection", "BlockSpec", "parse_block_spec", "same_size_controls", "segment_bounds", "segment_masks"),
    "budget": ("RankPlan", "lora_reference_count", "match_budget"),
    "config": ("SweepConfig", "TrainConfig", "TuneConfig"),
    "full_blocks": ("FullBlockPlan", "plan_full_blocks", "unfreeze_blocks"),
    "modules": ("ALL_LINEAR", "ATTENTION_QKVO", "find_target_modules", "meta_model_from_config"),
    "train": ("AdaptedModel", "TrainResult", "adapt_model", "train_cell"),
})
