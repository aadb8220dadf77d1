"""Pure masks over one layer-wise curve (numpy arrays over depth) for `suggest`'s choice of stable blocks.

Each function reads a curve indexed by depth (representation layer 0..L or block 0..L-1) and returns a boolean
mask or a run of indices; none of them knows where the curve came from, so they are tested on synthetic curves.
Claims about a curve (a drop, an emergence, a rise) are decided with their intervals in sftscope.stats.claims.
"""

from __future__ import annotations

import numpy as np


def _curve(values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"need a non-empty finite curve, got {arr!r}")
    return arr


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
