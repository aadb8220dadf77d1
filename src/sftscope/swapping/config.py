"""Configuration of `sftscope swap` (Base/SFT hybrids per segment)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sftscope.config import PairRunConfig, PlotOptions, option
from sftscope.errors import SftscopeError

Direction = Literal["base<-sft", "sft<-base"]
Head = Literal["original", "transferred"]
DIRECTIONS = {"base<-sft": ("base", "sft"), "sft<-base": ("sft", "base")}  # direction -> (receiver, donor)
HEADS = ("original", "transferred")


@dataclass(kw_only=True)
class SwapConfig(PlotOptions, PairRunConfig):
    """`sftscope swap`: each segment of one model replaced by the other's, scored per data set and task."""

    segments: int = option(5, "k equal segments (whole segments are swapped)")
    swap_depth: int | None = option(None, "swap only the last n blocks of each segment (default: whole segments)")
    directions: list[Direction] = option(factory=lambda: list(DIRECTIONS), help="base<-sft, sft<-base or both")
    heads: list[Head] = option(factory=lambda: list(HEADS), help="final norm + head kept (original) or moved "
                                                                  "with the blocks (transferred)")
    samples: int = option(200, "samples per data set")
    tasks: bool = option(True, "also score the data set's task (MMLU, organism-qa/mc) where one exists "
                               "(--no-tasks: skip)")
    task_limit: int | None = option(200, "items per task evaluation")

    def check(self) -> None:
        super().check()
        if self.variants:
            raise SftscopeError("swap compares the Base with one fine-tuned model: use --sft, not --variant")
        if self.swap_depth is not None and self.swap_depth < 1:
            raise SftscopeError("--swap-depth must be at least 1")
        if self.segments < 1 or self.samples < 1:
            raise SftscopeError("--segments and --samples must be at least 1")
