"""Claims decided by uncertainty: the one place that says "drop", "rise", "emergence", "better", "no change" or
"inconclusive", used by the report's findings and by `suggest`'s late-region decisions.

Every claim carries its evidence: where (the layers or blocks outside the reference band), how large, its
interval, and what it rests on (samples, seeds x items). The rules:

Layer curves (`curve_drop`, `curve_emergence`) read per-layer values with their intervals (the bootstrap CIs
the analyze and probe stages write as ci_low / ci_high). A value's standard errors are read off its interval,
se = half-width / z, separately below and above the value (bootstrap intervals are not symmetric). Covariance
between layers is ignored; the layers are measured on the same samples, so it is positive and ignoring it
makes every difference's interval wider than it is (conservative).
  * Drop below the plateau (Base-vs-variant CKA): the plateau is the median of the block outputs (layers 1..L;
    layer 0, the embeddings, is no block's output), its band the medians of their interval bounds. A layer is
    below the plateau when the upper bound of (value - plateau) is below 0, with Bonferroni-simultaneous
    intervals over the layers tested, so the chance of naming any layer falsely stays at 1 - level, unless
    that interval lies entirely within `margin` of the plateau (a real but negligible fall is no change). Layers
    below it before the first layer on the plateau are an early dip; the drop is the first run below it after
    that layer, whether or not the curve comes back later (a rebound at the last layer does not hide a drop).
    "No change" needs every layer after the plateau starts to lie within `margin` below it (lower bounds of the
    differences above -margin); anything else is "inconclusive", with the reason.
  * Emergence (logit-lens accuracy): the gain of the last layer over layer 0 must exclude 0 (one interval at
    `level`) and not lie within +-margin; the emergence layer is the first layer reaching `fraction` of that gain, and the layers whose
    intervals are compatible with that threshold are given with it. "No change" when the gain's interval lies
    within +-margin (or below 0: accuracy falls), else "inconclusive".
  * Rise of an exact magnitude (weight change per block, which has no sampling noise): blocks at least
    `min_ratio` times the median block; the rise is the first such run after the first typical block. Stated as
    exact, without an interval.
Curves without intervals: the report says "inconclusive (no interval recorded)"; `suggest` may pass
`exact=True` to treat the values as exact (zero-width intervals; its own profiles carry intervals).

Score comparisons (`compare`): "no difference" when the interval of the difference lies within +-margin (even
if it excludes 0: the difference is negligible), else "better" / "worse" only when it excludes 0, else
"inconclusive". The intervals come from sftscope.stats.scores
(items and seeds crossed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from sftscope.tuning.blocks import format_layers

DROP, RISE, EMERGENCE, NO_CHANGE = "drop", "rise", "emergence", "no change"
BETTER, WORSE, NO_DIFFERENCE, INCONCLUSIVE = "better", "worse", "no difference", "inconclusive"
LEVEL = 0.95
# Equivalence margins: differences smaller than these are "no change" when the interval says so (same units as
# the metric: CKA and accuracies in [0, 1]).
MARGINS = {"cka": 0.02, "lens_accuracy": 0.02, "proportion": 0.02}


def _fmt(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.3g}"


def _signed(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:+.3g}"


def _z(p: float) -> float:
    """Standard normal quantile (statistics.NormalDist: no scipy call per claim)."""
    return NormalDist().inv_cdf(p)


def _layer_word(layers, word: str = "layer") -> str:
    """'layer 3' or 'layers 3-5,8'."""
    layers = list(layers)
    return f"{word}{'s' if len(layers) > 1 else ''} {format_layers(layers)}"


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [start, stop) index runs of True in a boolean array."""
    out, start = [], None
    for i, flag in enumerate(list(flags) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            out.append((start, i))
            start = None
    return out


@dataclass(frozen=True)
class Claim:
    """A decided (or undecided) statement with its evidence.

    kind: one of DROP, RISE, EMERGENCE, NO_CHANGE, BETTER, WORSE, NO_DIFFERENCE, INCONCLUSIVE.
    statement: the sentence a reader sees (what, where, how large, interval, what it rests on).
    layers: layers (or blocks) where the change lies outside the reference band.
    at: the landmark (first layer of the drop, emergence layer, first block of the rise), None if none.
    size, low, high: the effect (largest difference from the reference, gain, score difference) and its
    interval at `level` (simultaneous over the layers tested for a drop); NaN where not defined.
    basis: what it rests on ("116 samples", "3 seeds x 116 items", "exact").
    reason: why it is inconclusive, or a caveat.
    """

    kind: str
    statement: str
    layers: tuple[int, ...] = ()
    at: int | None = None
    size: float = math.nan
    low: float = math.nan
    high: float = math.nan
    level: float = LEVEL
    basis: str = ""
    reason: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def decided(self) -> bool:
        return self.kind != INCONCLUSIVE

    def evidence(self) -> str:
        """Short evidence line: 'size [low, high], basis'."""
        parts = []
        if np.isfinite(self.size):
            parts.append(_signed(self.size) + (f" [{_fmt(self.low)}, {_fmt(self.high)}]"
                                               if np.isfinite(self.low) and np.isfinite(self.high) else ""))
        if self.basis:
            parts.append(self.basis)
        return ", ".join(parts)


@dataclass
class LayerCurve:
    """A metric per layer with its interval: layers [n] (ascending), values [n], low / high [n] (None: no
    interval recorded) at `level`, and the number of samples behind each value (None: unknown).

    Raises:
        ValueError: lengths that differ, no layer, non-finite values, or layers not ascending.
    """

    layers: np.ndarray
    values: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    level: float = LEVEL
    n: int | None = None

    def __post_init__(self):
        self.layers = np.asarray(self.layers, dtype=int).reshape(-1)
        self.values = np.asarray(self.values, dtype=np.float64).reshape(-1)
        if self.layers.size != self.values.size or self.layers.size == 0:
            raise ValueError(f"need one value per layer, got {self.layers.size} layers and {self.values.size} values")
        if not np.all(np.isfinite(self.values)):
            raise ValueError(f"need finite values, got {self.values!r}")
        if np.any(np.diff(self.layers) <= 0):
            raise ValueError(f"layers must be ascending and distinct, got {self.layers!r}")
        for name in ("low", "high"):
            bound = getattr(self, name)
            if bound is not None:
                bound = np.asarray(bound, dtype=np.float64).reshape(-1)
                if bound.size != self.values.size:
                    raise ValueError(f"{name} has {bound.size} entries for {self.values.size} values")
                setattr(self, name, bound)

    @property
    def has_intervals(self) -> bool:
        return self.low is not None and self.high is not None and bool(
            np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high)))

    def standard_errors(self, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(se below, se above) [n] from the interval half-widths / z_{(1+level)/2}; zeros when `exact`.

        Raises:
            ValueError: no interval and not `exact`.
        """
        if not self.has_intervals:
            if exact:
                return np.zeros_like(self.values), np.zeros_like(self.values)
            raise ValueError("this curve has no intervals")
        z = _z((1 + self.level) / 2)
        below = np.clip(self.values - self.low, 0, None) / z
        above = np.clip(self.high - self.values, 0, None) / z
        return below, above

    def samples(self) -> str:
        return f"{self.n} samples per layer" if self.n else ""


def _no_interval(curve: LayerCurve, what: str) -> Claim:
    return Claim(INCONCLUSIVE, f"{what}: inconclusive (no interval recorded for this curve)",
                 basis=curve.samples(), reason="no interval recorded: rerun the stage with bootstrap > 0")


def curve_drop(curve: LayerCurve, margin: float = MARGINS["cka"], first_layer: int = 1, exact: bool = False,
               what: str = "CKA") -> Claim:
    """Does the curve fall below its plateau after the plateau starts? (rule in the module docstring)

    Returns a Claim of kind DROP (layers = every layer below the plateau after it starts, at = the first
    layer of the first such run, size = the largest fall with its simultaneous interval), NO_CHANGE or
    INCONCLUSIVE. extra holds 'plateau' (level, low, high), 'early' (layers of an early dip), 'rebound' (layers
    after the last run below the plateau, not below it) and 'diff' / 'diff_low' / 'diff_high' per tested layer
    (the simultaneous bounds).
    """
    if not curve.has_intervals and not exact:
        return _no_interval(curve, f"{what} drop")
    keep = curve.layers >= first_layer
    layers, v = curve.layers[keep], curve.values[keep]
    if layers.size < 3:
        return Claim(INCONCLUSIVE, f"{what} drop: inconclusive (fewer than 3 layers after layer {first_layer})",
                     basis=curve.samples(), reason="too few layers")
    se_below, se_above = (s[keep] for s in curve.standard_errors(exact))
    plateau = float(np.median(v))
    lo_b = curve.low[keep] if curve.has_intervals else v
    hi_b = curve.high[keep] if curve.has_intervals else v
    band = (float(np.median(lo_b)), float(np.median(hi_b)))
    z = _z((1 + curve.level) / 2)
    ref_below, ref_above = max(plateau - band[0], 0) / z, max(band[1] - plateau, 0) / z
    m = layers.size
    z_sim = _z(1 - (1 - curve.level) / (2 * m))  # Bonferroni over the layers tested
    diff = v - plateau
    upper = diff + z_sim * np.hypot(se_above, ref_below)   # the layer at its highest, the plateau at its lowest
    lower = diff - z_sim * np.hypot(se_below, ref_above)
    below = (upper < 0) & (lower <= -margin)  # surely below, and not surely within the margin (negligible)
    on_plateau = np.flatnonzero(~below)
    extra = {"plateau": (plateau, *band), "diff": dict(zip(layers.tolist(), diff.tolist())),
             "diff_low": dict(zip(layers.tolist(), lower.tolist())),
             "diff_high": dict(zip(layers.tolist(), upper.tolist())), "early": [], "rebound": []}
    basis = "exact values" if not curve.has_intervals else curve.samples()
    top = int(curve.layers.max())
    level_text = f"plateau {plateau:.3g} [{band[0]:.3g}, {band[1]:.3g}] (median of layers {layers[0]}-{layers[-1]})"
    if on_plateau.size == 0:
        return Claim(INCONCLUSIVE, f"{what}: inconclusive (every layer differs from the median: no plateau)",
                     basis=basis, reason="no plateau", extra=extra)
    start = on_plateau[0]
    early = layers[:start][below[:start]].tolist()
    extra["early"] = early
    late_runs = [(a, b) for a, b in _runs(below) if a > start]
    early_text = f"; below it before the plateau at {_layer_word(early)} (early dip)" if early else ""
    if late_runs:
        flagged = np.concatenate([np.arange(a, b) for a, b in late_runs])
        worst = flagged[np.argmin(diff[flagged])]
        after = np.arange(late_runs[-1][1], m)
        rebound = layers[after].tolist()  # after the last run below the plateau: not below it any more
        extra["rebound"] = rebound
        rebound_text = (f"; not below it again at {_layer_word(rebound)} "
                        f"({', '.join(f'{v[i]:.3g}' for i in after)})" if rebound else "")
        drop_layers = layers[flagged].tolist()
        return Claim(DROP, f"{what} falls below its {level_text} at {_layer_word(drop_layers)} of {top}; "
                           f"largest fall {diff[worst]:+.3g} [{lower[worst]:+.3g}, {upper[worst]:+.3g}] at layer "
                           f"{layers[worst]} ({v[worst]:.3g}){rebound_text}{early_text}",
                     layers=tuple(drop_layers), at=int(layers[late_runs[0][0]]), size=float(diff[worst]),
                     low=float(lower[worst]), high=float(upper[worst]), level=curve.level, basis=basis, extra=extra)
    tail = np.arange(start, m)
    worst = tail[np.argmin(lower[tail])]
    if np.all(lower[tail] > -margin):
        return Claim(NO_CHANGE, f"{what} stays on its {level_text}: no layer from {layers[start]} to {top} is more "
                                f"than {margin:g} below it (lowest bound {lower[worst]:+.3g} at layer "
                                f"{layers[worst]}){early_text}",
                     size=float(diff[worst]), low=float(lower[worst]), high=float(upper[worst]), level=curve.level,
                     basis=basis, extra=extra)
    wide = layers[tail][lower[tail] <= -margin].tolist()
    return Claim(INCONCLUSIVE, f"{what}: no layer is surely below its {level_text}, but "
                               f"{_layer_word(wide)} may be more than {margin:g} below it "
                               f"(e.g. layer {layers[worst]}: {diff[worst]:+.3g} [{lower[worst]:+.3g}, "
                               f"{upper[worst]:+.3g}]){early_text}",
                 size=float(diff[worst]), low=float(lower[worst]), high=float(upper[worst]), level=curve.level,
                 basis=basis, reason=f"intervals at {_layer_word(wide)} too wide to tell", extra=extra)


def curve_emergence(curve: LayerCurve, fraction: float = 0.5, margin: float = MARGINS["lens_accuracy"],
                    exact: bool = False, what: str = "logit-lens accuracy") -> Claim:
    """Where does the curve reach `fraction` of its gain from the first to the last layer? (module docstring)

    Returns a Claim of kind EMERGENCE (at = the first layer reaching the threshold, layers = the layers whose
    intervals are compatible with reaching it first, size = the gain with its interval), NO_CHANGE or
    INCONCLUSIVE; extra holds 'threshold'.
    """
    if not curve.has_intervals and not exact:
        return _no_interval(curve, f"{what} emergence")
    if curve.layers.size < 2:
        return Claim(INCONCLUSIVE, f"{what}: inconclusive (one layer)", reason="one layer")
    se_below, se_above = curve.standard_errors(exact)
    v = curve.values
    z = _z((1 + curve.level) / 2)
    gain = float(v[-1] - v[0])
    low = gain - z * math.hypot(se_below[-1], se_above[0])
    high = gain + z * math.hypot(se_above[-1], se_below[0])
    basis = "exact values" if not curve.has_intervals else curve.samples()
    first, last = int(curve.layers[0]), int(curve.layers[-1])
    gain_text = f"gain of layer {last} over layer {first}: {gain:+.3g} [{low:+.3g}, {high:+.3g}]"
    negligible = -margin < low and high < margin
    if (low > 0 or (exact and not curve.has_intervals and gain > 0)) and not negligible:
        threshold = float(v[0] + fraction * gain)
        i = int(np.argmax(v >= threshold))
        hi_b = curve.high if curve.has_intervals else v
        lo_b = curve.low if curve.has_intervals else v
        earliest = int(np.argmax(hi_b >= threshold))
        latest = int(np.argmax(lo_b >= threshold)) if np.any(lo_b >= threshold) else len(v) - 1
        compatible = curve.layers[min(earliest, i):max(latest, i) + 1].tolist()
        interval = f" [{lo_b[i]:.3g}, {hi_b[i]:.3g}]" if curve.has_intervals else ""
        span = (f"; {_layer_word(compatible)} are compatible with the threshold"
                if len(compatible) > 1 else "")
        return Claim(EMERGENCE, f"{what} reaches {fraction:g} of its final gain ({threshold:.3g}) at layer "
                                f"{curve.layers[i]} of {last}: {v[i]:.3g}{interval}{span}; {gain_text}",
                     layers=tuple(compatible), at=int(curve.layers[i]), size=gain, low=low, high=high,
                     level=curve.level, basis=basis, extra={"threshold": threshold})
    if high < margin:
        verb = "falls" if high < 0 else "does not rise"
        return Claim(NO_CHANGE, f"{what} {verb} from layer {first} to layer {last}: {gain_text} (no emergence)",
                     size=gain, low=low, high=high, level=curve.level, basis=basis)
    return Claim(INCONCLUSIVE, f"{what}: emergence inconclusive, {gain_text} includes 0 and exceeds {margin:g}",
                 size=gain, low=low, high=high, level=curve.level, basis=basis,
                 reason="the gain's interval includes 0")


def magnitude_rise(blocks, values, min_ratio: float = 1.5, what: str = "weight change") -> Claim:
    """Blocks whose exact (noise-free) magnitude is at least `min_ratio` x the median block: RISE when such a
    run follows a typical block (at = its first block), else NO_CHANGE. blocks, values: [n] (values >= 0).

    Raises:
        ValueError: lengths that differ, no block, or non-finite values.
    """
    blocks = np.asarray(blocks, dtype=int).reshape(-1)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size != blocks.size or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError("need one finite value per block")
    median = float(np.median(v))
    high = v >= min_ratio * median if median > 0 else v > 0
    typical = np.flatnonzero(~high)
    peak = int(np.argmax(v))
    peak_text = f"peak block {blocks[peak]} ({v[peak]:.3g} = {v[peak] / max(median, 1e-30):.2g} x the median {median:.3g})"
    runs = [(a, b) for a, b in _runs(high) if typical.size and a > typical[0]]
    if runs:
        flagged = np.concatenate([np.arange(a, b) for a, b in runs])
        return Claim(RISE, f"{what} rises to >= {min_ratio:g} x the median block from block {blocks[runs[0][0]]} "
                           f"({_layer_word(blocks[flagged].tolist(), 'block')}); {peak_text}; exact values, no sampling noise",
                     layers=tuple(blocks[flagged].tolist()), at=int(blocks[runs[0][0]]),
                     size=float(v[peak] / max(median, 1e-30)), basis="exact")
    return Claim(NO_CHANGE, f"{what} has no late rise: no block after the typical ones reaches {min_ratio:g} x the "
                            f"median; {peak_text}; exact values", size=float(v[peak] / max(median, 1e-30)),
                 basis="exact")


def compare(diff: float, low: float, high: float, basis: str, higher_is_better: bool = True,
            margin: float | None = None, what: str = "A vs B", p: float | None = None,
            level: float = LEVEL) -> Claim:
    """Decide a score difference (A - B) from its interval: NO_DIFFERENCE when it lies within +-margin (None:
    never), else BETTER / WORSE when it excludes 0 (in the direction that is better for the metric), else
    INCONCLUSIVE."""
    interval = f"{diff:+.3g} [{low:+.3g}, {high:+.3g}]" if np.isfinite(low) and np.isfinite(high) else _signed(diff)
    p_text = f", p = {p:.2g}" if p is not None and np.isfinite(p) else ""
    common = dict(size=float(diff), low=float(low), high=float(high), level=level, basis=basis)
    if not (np.isfinite(low) and np.isfinite(high)):
        return Claim(INCONCLUSIVE, f"{what}: {interval}, no interval ({basis})", reason="no interval", **common)
    if margin is not None and low > -margin and high < margin:
        return Claim(NO_DIFFERENCE, f"{what}: no difference larger than {margin:g}, {interval}{p_text} ({basis})",
                     **common)
    if low > 0 or high < 0:
        kind = BETTER if (low > 0) == higher_is_better else WORSE
        return Claim(kind, f"{what}: {kind}, {interval}{p_text} ({basis})", **common)
    return Claim(INCONCLUSIVE, f"{what}: inconclusive, {interval}{p_text} includes 0 ({basis})",
                 reason="the interval includes 0", **common)
