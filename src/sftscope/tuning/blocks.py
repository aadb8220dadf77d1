"""Which decoder blocks a tuning run adapts: segment masks, depth ranges, layer lists, seeded random blocks.

Grammar of a block spec (L = number of decoder blocks, indices 0-based):

    all                 every block
    01100 / mask:01100  segment mask over k = len(mask) equal segments; segment i covers
                        blocks [floor(i*L/k), floor((i+1)*L/k)). An unprefixed string of only 0s and 1s is
                        ALWAYS a mask, so write single layers 0, 1, 10, 11 as "layers:10".
    20%-80%             depth range: blocks b with floor(a*L/100) <= b < ceil(b*L/100), a < b in [0, 100]
                        (16 layers: 3..12; 32 layers: 6..25). Also "depth:20%-80%".
    8-12,15             explicit list of inclusive ranges and single indices. Also "layers:8-12,15".
    random:4            a seeded random contiguous run of 4 blocks (start uniform over 0..L-4)
    random-layers:4     4 distinct blocks drawn without replacement (seeded), sorted
    early / middle / late / random / random-layers
                        (only with --method full) where whole blocks go; their count comes from the budget
A spec is read once (`BlockSpec.parse`, syntax only, before any model loads) and resolved against a model's
depth later (`BlockSpec.resolve`); tables carry its canonical text in one column, `blocks`.
The seed only matters for the random kinds; the same (spec, L, seed) always gives the same blocks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from sftscope.errors import SftscopeError

KINDS = ("all", "mask", "depth", "layers", "random", "random-layers")
_DEPTH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*-\s*(\d+(?:\.\d+)?)\s*%\s*$")
_LAYER_ITEM = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


@dataclass(frozen=True)
class BlockSelection:
    """The chosen blocks: `layers` sorted 0-based indices; `k` the segment count of a mask, else None."""

    layers: tuple[int, ...]
    kind: str
    spec: str
    num_layers: int
    k: int | None = None

    def __contains__(self, layer: int) -> bool:
        return layer in self.layers

    def describe(self) -> str:
        return f"{self.spec} -> blocks {format_layers(self.layers)} of {self.num_layers}"


def segment_bounds(num_layers: int, k: int) -> list[tuple[int, int]]:
    """Half-open block ranges [floor(i*L/k), floor((i+1)*L/k)) of the k segments, i = 0..k-1."""
    if k < 1 or k > num_layers:
        raise SftscopeError(f"cannot split {num_layers} layers into {k} segments; use 1 <= k <= {num_layers}")
    return [(i * num_layers // k, (i + 1) * num_layers // k) for i in range(k)]


def segment_masks(k: int, include_full: bool = True) -> list[str]:
    """Every mask of k segments whose ones form one contiguous run (singles first, then longer runs)."""
    if k < 1:
        raise SftscopeError(f"segment count must be >= 1, got {k}")
    masks = []
    for width in range(1, k + 1):
        if width == k and not include_full:
            continue
        for start in range(k - width + 1):
            masks.append("0" * start + "1" * width + "0" * (k - start - width))
    return masks


def format_layers(layers) -> str:
    """Compact '3-7,9' form of sorted block indices."""
    parts, layers = [], sorted(layers)
    i = 0
    while i < len(layers):
        j = i
        while j + 1 < len(layers) and layers[j + 1] == layers[j] + 1:
            j += 1
        parts.append(str(layers[i]) if i == j else f"{layers[i]}-{layers[j]}")
        i = j + 1
    return ",".join(parts)


def _mask_layers(mask: str, num_layers: int) -> tuple[int, ...]:
    if len(mask) > num_layers:
        raise SftscopeError(f"mask {mask!r} has {len(mask)} segments but the model has only {num_layers} layers; "
                            f"use at most {num_layers} digits")
    if "1" not in mask:
        raise SftscopeError(f"mask {mask!r} selects no segment; put a 1 where the adapters should go")
    bounds = segment_bounds(num_layers, len(mask))
    return tuple(b for bit, (lo, hi) in zip(mask, bounds) if bit == "1" for b in range(lo, hi))


def _depth_layers(body: str, spec: str, num_layers: int) -> tuple[int, ...]:
    m = _DEPTH.match(body)
    if not m:
        raise SftscopeError(f"bad depth range {spec!r}; write it like 20%-80%")
    lo_pct, hi_pct = Fraction(m.group(1)), Fraction(m.group(2))
    if not (0 <= lo_pct < hi_pct <= 100):
        raise SftscopeError(f"depth range {spec!r} needs 0% <= start < end <= 100%")
    # Exact fractions: 20% of 16 layers is 3.2 -> block 3, never 3.1999 -> 3 by luck of rounding.
    lo = math.floor(lo_pct * num_layers / 100)
    hi = math.ceil(hi_pct * num_layers / 100)
    return tuple(range(lo, hi))


def _list_layers(body: str, spec: str, num_layers: int) -> tuple[int, ...]:
    chosen: set[int] = set()
    for item in body.split(","):
        m = _LAYER_ITEM.match(item)
        if not m:
            raise SftscopeError(f"bad layer list {spec!r} at {item!r}; write 0-based indices and inclusive "
                                "ranges like 8-12,15")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise SftscopeError(f"reversed range {item.strip()!r} in {spec!r}; write it as {hi}-{lo}")
        if hi >= num_layers:
            raise SftscopeError(f"layer {hi} in {spec!r} is out of range: the model has layers 0-{num_layers - 1}")
        chosen.update(range(lo, hi + 1))
    return tuple(sorted(chosen))


def _random_layers(kind: str, body: str, spec: str, num_layers: int, seed: int) -> tuple[int, ...]:
    if not body.strip().isdigit() or int(body) < 1:
        raise SftscopeError(f"bad random spec {spec!r}; write {kind}:N with N >= 1 blocks")
    n = int(body)
    if n > num_layers:
        raise SftscopeError(f"{spec!r} asks for {n} blocks but the model has {num_layers}; use N <= {num_layers}")
    rng = np.random.default_rng(seed)
    if kind == "random":
        start = int(rng.integers(0, num_layers - n + 1))
        return tuple(range(start, start + n))
    return tuple(sorted(int(x) for x in rng.choice(num_layers, size=n, replace=False)))


POSITIONS = ("early", "middle", "late", "random", "random-layers")  # where `--method full` places whole blocks
_MASK_PREFIX, _MASK_DIGITS = "mask:", frozenset("01")


@dataclass(frozen=True)
class BlockSpec:
    """A block spec read once (grammar in the module docstring), before any model is known.

    `text` is the canonical form every table column and command line carries (`mask:01100` -> `01100`);
    `kind` is one of KINDS or "position" (a full-update placement: early / middle / late / random /
    random-layers). Syntax errors are raised here; what depends on the model's depth waits for `resolve`.
    """

    text: str
    kind: str
    body: str

    @classmethod
    def parse(cls, spec: "str | BlockSpec") -> "BlockSpec":
        """Read a spec string (or return a BlockSpec as is).

        Raises:
            SftscopeError: the text is not a block spec (the message shows the accepted forms).
        """
        if isinstance(spec, BlockSpec):
            return spec
        text = str(spec).strip()
        lowered = text.lower()
        prefix, _, body = text.partition(":") if ":" in text else ("", "", text)
        prefix, body = prefix.strip().lower(), body.strip()
        if lowered == "all":
            return cls("all", "all", "")
        if not prefix and lowered in POSITIONS:
            return cls(lowered, "position", lowered)
        if prefix in ("random", "random-layers"):
            if not body.isdigit() or int(body) < 1:
                raise SftscopeError(f"bad random spec {text!r}; write {prefix}:N with N >= 1 blocks")
            return cls(f"{prefix}:{int(body)}", prefix, str(int(body)))
        if prefix == "mask" or (not prefix and body and set(body) <= _MASK_DIGITS):
            if not body or not set(body) <= _MASK_DIGITS:
                raise SftscopeError(f"bad mask {text!r}; a mask uses only 0 and 1, e.g. 01100")
            if "1" not in body:
                raise SftscopeError(f"mask {body!r} selects no segment; put a 1 where the adapters should go")
            return cls(body, "mask", body)
        if prefix == "depth" or (not prefix and "%" in body):
            m = _DEPTH.match(body)
            if not m:
                raise SftscopeError(f"bad depth range {text!r}; write it like 20%-80%")
            if not 0 <= Fraction(m.group(1)) < Fraction(m.group(2)) <= 100:
                raise SftscopeError(f"depth range {text!r} needs 0% <= start < end <= 100%")
            return cls(body.replace(" ", ""), "depth", body)
        if not prefix and body.isdigit() and len(body) > 1 and body[0] == "0":
            raise SftscopeError(f"{text!r} looks like a segment mask but a mask uses only 0 and 1 (e.g. 01100); "
                                f"for a single layer write layers:{int(body)}")
        if prefix == "layers" or (not prefix and re.fullmatch(r"[\d,\-\s]+", body or "x")):
            for item in body.split(","):
                m = _LAYER_ITEM.match(item)
                if not m:
                    raise SftscopeError(f"bad layer list {text!r} at {item!r}; write 0-based indices and inclusive "
                                        "ranges like 8-12,15")
                if m.group(2) is not None and int(m.group(2)) < int(m.group(1)):
                    raise SftscopeError(f"reversed range {item.strip()!r} in {text!r}; write it as "
                                        f"{m.group(2)}-{m.group(1)}")
            return cls(f"layers:{body.replace(' ', '')}", "layers", body)
        raise SftscopeError(f"cannot read block spec {text!r}; use all, a mask like 01100, a depth range like "
                            "20%-80%, a layer list like 8-12,15, random:N or random-layers:N"
                            f" (for --method full also {', '.join(POSITIONS)})")

    def __str__(self) -> str:
        return self.text

    @property
    def k(self) -> int | None:
        """Segment count of a mask (its number of digits), else None."""
        return len(self.body) if self.kind == "mask" else None

    @property
    def segment(self) -> int:
        """Index of the one selected segment of a single-segment mask (01000 -> 1), else -1."""
        return self.body.index("1") if self.kind == "mask" and self.body.count("1") == 1 else -1

    @property
    def is_middle(self) -> bool:
        """A mask that leaves the first and the last segment out (01000, 01110, ...)."""
        return self.kind == "mask" and self.body[0] == "0" and self.body[-1] == "0"

    @property
    def is_position(self) -> bool:
        """A full-update placement (early / middle / late / random / random-layers), resolved by the budget."""
        return self.kind == "position"

    def resolve(self, num_layers: int, seed: int = 0) -> BlockSelection:
        """The blocks this spec selects in a model with `num_layers` blocks (seed: the random kinds).

        Raises:
            SftscopeError: the spec does not fit the model (too many segments or layers, out of range), or it
                is a full-update position (placed by the budget, see tuning.full_blocks).
        """
        if num_layers < 1:
            raise SftscopeError(f"model has {num_layers} layers; nothing to select")
        k = None
        if self.kind == "all":
            layers = tuple(range(num_layers))
        elif self.kind == "position":
            raise SftscopeError(f"blocks={self.text!r} is a full-update position; for LoRA give a block spec "
                                "(e.g. layers:0-5 or random:6)")
        elif self.kind in ("random", "random-layers"):
            layers = _random_layers(self.kind, self.body, self.text, num_layers, seed)
        elif self.kind == "mask":
            layers, k = _mask_layers(self.body, num_layers), len(self.body)
        elif self.kind == "depth":
            layers = _depth_layers(self.body, self.text, num_layers)
        else:
            layers = _list_layers(self.body, self.text, num_layers)
        if not layers:
            raise SftscopeError(f"block spec {self.text!r} selects no layer of {num_layers}; widen it")
        return BlockSelection(layers=layers, kind=self.kind, spec=self.text, num_layers=num_layers, k=k)


def parse_block_spec(spec: "str | BlockSpec", num_layers: int, seed: int = 0) -> BlockSelection:
    """Resolve a block spec (grammar in the module docstring) against a model with `num_layers` blocks."""
    return BlockSpec.parse(spec).resolve(num_layers, seed)


def same_size_controls(selection: BlockSelection) -> dict[str, str]:
    """Specs selecting as many blocks as `selection` at the bottom, the top, a random run, random layers.

    Resolve them with parse_block_spec(spec, L, seed): the random ones depend on the seed given there."""
    n, L = len(selection.layers), selection.num_layers
    return {
        "early": f"layers:0-{n - 1}",
        "late": f"layers:{L - n}-{L - 1}",
        "random": f"random:{n}",
        "random-layers": f"random-layers:{n}",
    }
