"""Configuration of `sftscope correlate` (weight change vs representation metrics across layers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sftscope.config import StageConfig, option
from sftscope.errors import SftscopeError


@dataclass(kw_only=True)
class CorrelateConfig(StageConfig):
    """`sftscope correlate RUN_DIR`: Pearson / Spearman across layers of weight change with every metric."""

    weight_metric: str = option("attn_qkvo_delta_fro", "per-block weight-change metric of the weights table")
    method: list[Literal["pearson", "spearman"]] = option(factory=lambda: ["pearson", "spearman"],
                                                          help="correlation coefficients")

    def check(self) -> None:
        super().check()
        if not self.method:
            raise SftscopeError("--method needs pearson, spearman or both")
