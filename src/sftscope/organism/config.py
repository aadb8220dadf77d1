"""Configuration of `sftscope organism build` (the built-in tiny Base/SFT model pair)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sftscope.config import StageConfig, option


@dataclass(kw_only=True)
class OrganismBuildConfig(StageConfig):
    """`sftscope organism build`: world, tokenizer, Base, SFT and card, cached once built."""

    seed: int = option(0, "seed of the world, the corpus and both trainings")
    size: Literal["default", "test"] = option("default", "default (the demo's pair) or test (smaller, faster)")
    force: bool = option(False, "rebuild even if a complete build exists")
