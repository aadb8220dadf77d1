"""Training-free choice of the blocks to tune, from layer profiles that need no training.

Indexing: a model has L blocks (0-based, as tuning block specs count them) and L + 1 representation layers
(0 = embeddings, l = output of block l - 1). Block b therefore moves layer b to layer b + 1.

The rule (Mid-Block Efficient Tuning's reading of the paper): tune the stable middle of the network,
    - after the early transition: blocks whose change of geometry (1 - CKA between the states before and after
      the block) or of effective rank is well above the typical block's,
    - before the late region: from the block where logit-lens predictions emerge, where Base-vs-variant CKA falls
      off its plateau, or where weight change rises toward the top (whichever starts first).
The stable middle is the longest run of stable blocks before the late region (single unstable blocks bridged).
The three late-region signals are claims decided by sftscope.stats.claims (the report uses the same rules): with
the profiles' intervals where they were measured, as exact values where they were not (stated in the evidence).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from sftscope.stats.claims import DROP, EMERGENCE, RISE, LayerCurve, curve_drop, curve_emergence, magnitude_rise
from sftscope.suggest.curves import below_typical, bridge_gaps, longest_run
from sftscope.tuning.blocks import format_layers, segment_bounds

TRANSFORM_FLOOR = 0.02   # 1 - CKA below this is "no change" whatever the median (tiny or very smooth models)
RANK_FLOOR = 0.05        # relative effective-rank change below this is "stable"


@dataclass
class LayerProfiles:
    """Per-depth measurements of a Base (and optionally one variant); arrays are float64, indexed as above."""

    layer_cka: np.ndarray                     # [L]   CKA(layer b, layer b+1) of the Base's pooled states
    effective_rank: np.ndarray                # [L+1] effective rank of the Base's pooled states per layer
    lens_accuracy: np.ndarray | None = None   # [L+1] logit-lens next-token accuracy of the Base per layer
    variant_cka: np.ndarray | None = None     # [L+1] Base-vs-variant CKA per layer
    weight_change: np.ndarray | None = None   # [L]   weight change of block b (Frobenius, all tensors)
    lens_accuracy_ci: np.ndarray | None = None  # [2, L+1] 95% interval (low, high) of lens_accuracy
    variant_cka_ci: np.ndarray | None = None    # [2, L+1] 95% interval (low, high) of variant_cka

    def __post_init__(self):
        L = len(np.asarray(self.layer_cka).reshape(-1))
        want = {"layer_cka": L, "effective_rank": L + 1, "lens_accuracy": L + 1, "variant_cka": L + 1,
                "weight_change": L}
        for name, size in want.items():
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
            if arr.size != size:
                raise ValueError(f"{name} has {arr.size} entries; a model with {L} blocks needs {size}")
            setattr(self, name, arr)
        for name in ("lens_accuracy_ci", "variant_cka_ci"):
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, dtype=np.float64)
            if arr.shape != (2, L + 1):
                raise ValueError(f"{name} has shape {arr.shape}; a model with {L} blocks needs (2, {L + 1})")
            setattr(self, name, arr)
        if L < 1:
            raise ValueError("need at least one block")

    @property
    def num_blocks(self) -> int:
        return len(self.layer_cka)


@dataclass
class Suggestion:
    """The chosen contiguous blocks [start, stop) of `num_blocks`, as a mask of k segments, a depth range and
    a layer list (each a block spec `sftscope tune` reads), with the evidence behind the choice."""

    start: int
    stop: int
    num_blocks: int
    k: int
    mask: str
    depth: str
    layer_spec: str
    early_end: int                      # first block after the early transition
    late_start: int                     # first block of the late region (num_blocks if none found)
    late_sources: dict[str, int] = field(default_factory=dict)  # which profile put the late region where
    evidence: list[str] = field(default_factory=list)

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(range(self.start, self.stop))

    def as_dict(self) -> dict:
        return {**asdict(self), "layers": list(self.layers)}

    @classmethod
    def from_dict(cls, data: dict) -> "Suggestion":
        """Rebuild from an as_dict() record (extra keys such as the data names are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def text(self) -> str:
        """Human-readable summary: the three block specs and the evidence."""
        lines = [f"suggested blocks: {format_layers(self.layers)} of 0-{self.num_blocks - 1} "
                 f"({len(self.layers)} of {self.num_blocks})",
                 f"  mask (k={self.k}):  {self.mask}", f"  depth range:   {self.depth}",
                 f"  layer list:    {self.layer_spec}", "evidence:"]
        return "\n".join(lines + [f"  - {e}" for e in self.evidence])


def mask_for(start: int, stop: int, num_blocks: int, k: int) -> str:
    """k-digit segment mask selecting the segments at least half covered by blocks [start, stop) (at least one)."""
    bounds = segment_bounds(num_blocks, k)
    overlap = [max(0, min(stop, hi) - max(start, lo)) / (hi - lo) for lo, hi in bounds]
    bits = ["1" if o >= 0.5 else "0" for o in overlap]
    if "1" not in bits:
        bits[int(np.argmax(overlap))] = "1"
    return "".join(bits)


def depth_spec(start: int, stop: int, num_blocks: int) -> str:
    """'a%-b%' depth range that parse_block_spec resolves to exactly blocks [start, stop) (integer percents)."""
    return f"{math.ceil(100 * start / num_blocks)}%-{math.floor(100 * stop / num_blocks)}%"


def _curve(values: np.ndarray, ci: np.ndarray | None) -> LayerCurve:
    return LayerCurve(np.arange(len(values)), values, *(ci if ci is not None else (None, None)))


def _late_region(p: LayerProfiles) -> tuple[int, dict[str, int], list[str]]:
    """First block of the late region, the block each profile points to, and the evidence lines (the claims'
    statements, sftscope.stats.claims)."""
    L, sources, evidence = p.num_blocks, {}, []
    if p.lens_accuracy is not None:
        claim = curve_emergence(_curve(p.lens_accuracy, p.lens_accuracy_ci), exact=p.lens_accuracy_ci is None,
                                what="logit-lens accuracy")
        if claim.kind == EMERGENCE:
            sources["lens_emergence"] = max(claim.at - 1, 1)  # layer l is the output of block l - 1
        evidence.append(f"{claim.kind}: {claim.statement}")
    if p.variant_cka is not None:
        claim = curve_drop(_curve(p.variant_cka, p.variant_cka_ci), exact=p.variant_cka_ci is None,
                           what="Base-vs-variant CKA")
        if claim.kind == DROP:
            sources["variant_cka_drop"] = max(claim.at - 1, 1)
        evidence.append(f"{claim.kind}: {claim.statement}")
    if p.weight_change is not None:
        claim = magnitude_rise(np.arange(L), p.weight_change, what="weight change per block")
        if claim.kind == RISE:
            sources["weight_rise"] = max(claim.at, 1)
        evidence.append(f"{claim.kind}: {claim.statement}")
    return (min(sources.values()) if sources else L), sources, evidence


def suggest_blocks(p: LayerProfiles, k: int = 5) -> Suggestion:
    """Pick the stable middle blocks of a model from its profiles (rule in the module docstring)."""
    L = p.num_blocks
    k = max(1, min(k, L))
    transform = 1.0 - p.layer_cka
    rank = p.effective_rank
    rank_change = np.abs(np.diff(rank)) / np.maximum(np.abs(rank[:-1]), 1e-12)
    stable = below_typical(transform, floor=TRANSFORM_FLOOR) & below_typical(rank_change, floor=RANK_FLOOR)
    late_start, sources, evidence = _late_region(p)
    stable = bridge_gaps(stable[:late_start])
    run = longest_run(stable)
    if run is None or run[1] - run[0] < 1:
        # nothing stable before the late region: fall back to the middle 60% of what precedes it
        span = max(late_start, 1)
        run = (int(0.2 * span), max(int(math.ceil(0.8 * span)), int(0.2 * span) + 1))
        evidence.append("no stable run of blocks found: fell back to the middle 60% before the late region")
    start, stop = run
    early = start
    evidence.insert(0, f"stable blocks (1 - consecutive-layer CKA <= max(2 x median {np.median(transform):.4f}, "
                       f"{TRANSFORM_FLOOR}) and effective rank change <= max(2 x median, {RANK_FLOOR})): "
                       f"{format_layers(np.flatnonzero(stable).tolist()) or 'none'}")
    evidence.insert(1, f"early transition ends at block {early}; late region starts at block {late_start}"
                       + (f" ({', '.join(f'{k_}: {v}' for k_, v in sources.items())})" if sources else
                          " (no late region found)"))
    return Suggestion(start=start, stop=stop, num_blocks=L, k=k, mask=mask_for(start, stop, L, k),
                      depth=depth_spec(start, stop, L), layer_spec=f"layers:{format_layers(range(start, stop))}",
                      early_end=early, late_start=late_start, late_sources=sources, evidence=evidence)
