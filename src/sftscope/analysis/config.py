"""Typed, validated configuration of `sftscope analyze`."""

from __future__ import annotations

from dataclasses import dataclass

from sftscope.config import PairRunConfig
from sftscope.errors import SftscopeError

PRESETS = ("paper", "canonical")


@dataclass
class AnalyzeConfig(PairRunConfig):
    preset: str = "both"
    token_samples: int = 100
    pooled_samples: int = 1000
    mode: str = "resident"  # resident: all models loaded at once; sequential: one model at a time
    chat_template: bool = False  # render the fine-tuned sides with their own chat template
    padding_side: str = "right"
    bootstrap: int = 200  # replicates for the alignment CIs (0: none)
    robustness_splits: int = 20  # split-half robustness test of the mean shift (0: none)

    def __post_init__(self):
        super().__post_init__()
        if self.preset not in PRESETS + ("both",):
            raise SftscopeError(f"--preset must be paper, canonical or both, not {self.preset!r}")
        if self.mode not in ("resident", "sequential"):
            raise SftscopeError(f"--mode must be resident or sequential, not {self.mode!r}")
        if self.bootstrap < 0 or self.robustness_splits < 0 or self.robustness_splits == 1:
            raise SftscopeError("--bootstrap must be >= 0 and --robustness-splits 0 or >= 2")
        if min(self.token_samples, self.pooled_samples) < 1:
            raise SftscopeError("--token-samples and --pooled-samples must be at least 1")

    @property
    def presets(self) -> list[str]:
        return list(PRESETS) if self.preset == "both" else [self.preset]
