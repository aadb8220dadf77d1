"""Configuration of `sftscope weights` (weight change streamed from the checkpoint files)."""

from __future__ import annotations

from dataclasses import dataclass

from sftscope.config import ModelPairOptions, PlotOptions, option


@dataclass(kw_only=True)
class WeightsConfig(PlotOptions, ModelPairOptions):
    """`sftscope weights`: per-block, per-module weight change of each variant against the Base."""

    strict: bool = option(True, "tensors present on one side only are an error (--no-strict: skip them)")

    def variant_specs(self) -> dict[str, str]:
        """side name -> ID[@REV] of every fine-tuned model."""
        return {r.name: r.spec() for r in self.refs()[1:]}
