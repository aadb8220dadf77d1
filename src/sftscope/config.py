"""Options shared by every stage that loads a Base and its variants and streams data through them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar

from sftscope.errors import SftscopeError
from sftscope.models.loading import LoadOptions, ModelRef


@dataclass
class PairRunConfig:
    needs_variant: ClassVar[bool] = True  # False for stages that can run on the Base alone (suggest)

    base: str
    sft: str | None = None
    variants: list[str] = field(default_factory=list)  # "NAME=ID[@REV]"
    data: list[str] = field(default_factory=lambda: ["gsm8k"])
    data_dir: str | None = None
    text_field: str = "text"
    max_length: int = 512
    batch_size: int = 8
    seed: int = 0
    dtype: str = "auto"
    device: str = "auto"
    device_map: str | None = None
    trust_remote_code: bool = False

    def __post_init__(self):
        if self.needs_variant and self.sft is None and not self.variants:
            raise SftscopeError("give a fine-tuned model to compare with the Base: --sft ID or --variant NAME=ID")
        for name in ("max_length", "batch_size"):
            if getattr(self, name) < 1:
                raise SftscopeError(f"--{name.replace('_', '-')} must be at least 1")
        if not self.data:
            raise SftscopeError("--data needs at least one data set name or file")
        self.refs()  # parse model specs now: bad specs fail before anything is written

    def refs(self) -> list[ModelRef]:
        refs = [ModelRef.parse(self.base, "base")]
        if refs[0].name != "base":
            raise SftscopeError("the Base model is always named 'base': pass --base ID")
        if self.sft:
            refs.append(ModelRef.parse(self.sft, "sft"))
        refs += [ModelRef.parse(v, f"variant{i + 1}") for i, v in enumerate(self.variants)]
        return refs

    def load_options(self) -> LoadOptions:
        return LoadOptions(self.dtype, self.device, self.device_map, self.trust_remote_code)

    def as_dict(self) -> dict:
        return asdict(self)
