"""Configuration of `sftscope suggest` (a training-free choice of the blocks to tune)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sftscope.config import PairRunConfig, option
from sftscope.errors import SftscopeError


@dataclass(kw_only=True)
class SuggestConfig(PairRunConfig):
    """`sftscope suggest`: layer profiles of the Base (and the SFT model if given) -> blocks to tune."""

    needs_variant: ClassVar[bool] = False  # the Base alone is enough; a fine-tuned model adds evidence

    samples: int = option(200, "samples per data set")
    k: int = option(5, "segments of the printed mask")
    bootstrap: int = option(200, "replicates for 95% CIs of lens accuracy and Base-vs-SFT CKA, which decide "
                                 "the late region (0: off, the profiles are read as exact)")

    def check(self) -> None:
        super().check()
        if self.bootstrap < 0:
            raise SftscopeError("--bootstrap must be >= 0")
        if self.samples < 4:
            raise SftscopeError("--samples must be at least 4 (CKA needs several samples per layer)")
        if self.k < 1:
            raise SftscopeError("--k must be at least 1")
        if self.variants:
            raise SftscopeError("suggest takes one fine-tuned model: use --sft, not --variant")
