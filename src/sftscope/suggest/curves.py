"""Pure landmarks of one layer-wise curve (numpy arrays over depth), shared by `suggest` and the report.

Each function reads a curve indexed by depth (representation layer 0..L or block 0..L-1) and returns an index
or a boolean mask; none of them knows where the curve came from, so they are tested on synthetic curves.
"""

from __future__ import annotations

import numpy as np


def _curve(values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"need a non-empty finite curve, got {arr!r}")
    return arr


def emergence_index(values, fraction: float = 0.5, min_gain: float = 0.02) -> int | None:
    """First index i of a curve [L+1] with v[i] >= v[0] + fraction * (v[-1] - v[0]); None if v[-1] - v[0] < min_gain.

    For logit-lens accuracy this is where predictions emerge: the first layer that has made `fraction` of the
    gain the final layer makes over the embeddings."""
    v = _curve(values)
    gain = v[-1] - v[0]
    if gain < min_gain:
        return None
    return int(np.argmax(v >= v[0] + fraction * gain))


def drop_from_plateau(values, rel_margin: float = 0.25, abs_margin: float = 0.02) -> tuple[int, float] | None:
    """(start of the deepest run of indices below the plateau, plateau level) of a curve [n], or None.

    The plateau level is the curve's median (the middle layers are the majority); an index is below it when
    v < median - max(abs_margin, rel_margin * (median - min v)). Only a run reaching the last index counts: an
    early dip before the plateau is not a late drop."""
    v = _curve(values)
    level = float(np.median(v))
    threshold = level - max(abs_margin, rel_margin * (level - float(v.min())))
    if v[-1] >= threshold:
        return None
    start = len(v) - 1
    while start > 0 and v[start - 1] < threshold:
        start -= 1
    return start, level


def rise_to_end(values, rel_margin: float = 0.5, min_ratio: float = 1.5) -> int | None:
    """Start of the deepest run of indices with v >= median + rel_margin * (max - median) in a curve [n] of
    non-negative magnitudes (weight change per block), or None when max < min_ratio * median (no real rise)."""
    v = _curve(values)
    level, top = float(np.median(v)), float(v.max())
    if top < min_ratio * level or top <= 0:
        return None
    threshold = level + rel_margin * (top - level)
    if v[-1] < threshold:
        return None
    start = len(v) - 1
    while start > 0 and v[start - 1] >= threshold:
        start -= 1
    return start


def below_typical(values, factor: float = 2.0, floor: float = 0.0) -> np.ndarray:
    """Boolean mask [n]: v[i] <= max(factor * median(v), floor), i.e. no more than `factor` times the typical
    value (for non-negative change magnitudes such as 1 - CKA between consecutive layers)."""
    v = _curve(values)
    return v <= max(factor * float(np.median(v)), floor)


def bridge_gaps(mask, gap: int = 1) -> np.ndarray:
    """Boolean mask [n] with every run of at most `gap` False entries between two True entries set True."""
    m = np.asarray(mask, dtype=bool).copy()
    true_at = np.flatnonzero(m)
    for left, right in zip(true_at[:-1], true_at[1:]):
        if 1 < right - left <= gap + 1:
            m[left:right] = True
    return m


def longest_run(mask) -> tuple[int, int] | None:
    """Half-open [start, stop) of the longest run of True in a boolean mask [n] (the deepest on ties), or None."""
    best, start = None, None
    m = list(np.asarray(mask, dtype=bool)) + [False]
    for i, flag in enumerate(m):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if best is None or i - start >= best[1] - best[0]:
                best = (start, i)
            start = None
    return best
