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


def parse_block_spec(spec: str, num_layers: int, seed: int = 0) -> BlockSelection:
    """Resolve a block spec (grammar in the module docstring) against a model with `num_layers` blocks."""
    if num_layers < 1:
        raise SftscopeError(f"model has {num_layers} layers; nothing to select")
    text = str(spec).strip()
    prefix, _, body = text.partition(":") if ":" in text else ("", "", text)
    prefix = prefix.strip().lower()
    k = None
    if text.lower() == "all":
        kind, layers = "all", tuple(range(num_layers))
    elif prefix in ("random", "random-layers"):
        kind, layers = prefix, _random_layers(prefix, body, text, num_layers, seed)
    elif prefix == "mask" or (not prefix and body and set(body) <= {"0", "1"}):
        mask = body.strip()
        if not mask or not set(mask) <= {"0", "1"}:
            raise SftscopeError(f"bad mask {text!r}; a mask uses only 0 and 1, e.g. 01100")
        kind, layers, k = "mask", _mask_layers(mask, num_layers), len(mask)
    elif prefix == "depth" or (not prefix and "%" in body):
        kind, layers = "depth", _depth_layers(body, text, num_layers)
    elif not prefix and body.isdigit() and len(body) > 1 and body[0] == "0":
        raise SftscopeError(f"{text!r} looks like a segment mask but a mask uses only 0 and 1 (e.g. 01100); "
                            f"for a single layer write layers:{int(body)}")
    elif prefix == "layers" or (not prefix and re.fullmatch(r"[\d,\-\s]+", body or "x")):
        kind, layers = "layers", _list_layers(body, text, num_layers)
    else:
        raise SftscopeError(f"cannot read block spec {text!r}; use all, a mask like 01100, a depth range like "
                            "20%-80%, a layer list like 8-12,15, random:N or random-layers:N")
    if not layers:
        raise SftscopeError(f"block spec {text!r} selects no layer of {num_layers}; widen it")
    return BlockSelection(layers=layers, kind=kind, spec=text, num_layers=num_layers, k=k)


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
