"""Configuration of `sftscope probe` (the logit lens at every layer)."""

from __future__ import annotations

from dataclasses import dataclass

from sftscope.config import PairRunConfig, PlotOptions, option
from sftscope.errors import SftscopeError


@dataclass(kw_only=True)
class ProbeConfig(PlotOptions, PairRunConfig):
    """`sftscope probe`: logit-lens accuracy, loss, KL to the final layer and Base-vs-variant agreement per layer."""

    samples: int = option(200, "samples per data set")
    chunk: int = option(256, "positions per head application (memory: chunk x vocabulary)")
    bootstrap: int = option(200, "replicates for 95% CIs of lens accuracy, resampling samples (0: off)")

    def check(self) -> None:
        super().check()
        if self.samples < 1 or self.chunk < 1:
            raise SftscopeError("--samples and --chunk must be at least 1")
        if self.bootstrap < 0:
            raise SftscopeError("--bootstrap must be >= 0")
