"""Typed, validated configuration of `sftscope analyze` (the command line is generated from it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sftscope.config import PairRunConfig, PlotOptions, option
from sftscope.errors import SftscopeError

PRESETS = ("paper", "canonical")


@dataclass(kw_only=True)
class AnalyzeConfig(PlotOptions, PairRunConfig):
    """`sftscope analyze`: representation metrics per layer of the Base and each variant."""

    NOT_IDENTITY = PairRunConfig.NOT_IDENTITY | {"eigen_route"}  # routes agree to rounding: resume may change it

    preset: Literal["paper", "canonical", "both"] = option(
        "both", "metric formulas: paper (the authors' code), canonical (textbook definitions) or both")
    token_samples: int = option(100, "samples for token-level metrics (a prefix of the pooled draw)")
    pooled_samples: int = option(1000, "samples for pooled (data set level) metrics")
    mode: Literal["resident", "sequential"] = option(
        "resident", "resident: all models loaded together; sequential: one at a time (pairs that do not fit)")
    chat_template: bool = option(False, "render fine-tuned sides with their chat template")
    padding_side: Literal["left", "right"] = option("right", "where batches are padded")
    bootstrap: int = option(200, "replicates for 95% CIs of CKA/cosine/mean shift (0: off)")
    eigen_route: Literal["auto", "device", "host"] = option(
        "auto", "where prompt entropy's eigenvalue decompositions run when the model is on a GPU: auto (each "
                "layer's split between the GPU and CPU threads, from their measured speeds: as much on the CPU "
                "as it absorbs without holding up the forward passes), device or host; on a CPU always the CPU. "
                "Routes agree to ~1e-14 relative; pick one for bit-identical reruns")
    robustness_splits: int = option(20, "split-half test: Base-vs-SFT mean shift vs within-model resampling "
                                        "noise (0: off)")

    def check(self) -> None:
        super().check()
        if self.bootstrap < 0 or self.robustness_splits < 0 or self.robustness_splits == 1:
            raise SftscopeError("--bootstrap must be >= 0 and --robustness-splits 0 or >= 2")
        if min(self.token_samples, self.pooled_samples) < 1:
            raise SftscopeError("--token-samples and --pooled-samples must be at least 1")

    @property
    def presets(self) -> list[str]:
        return list(PRESETS) if self.preset == "both" else [self.preset]
