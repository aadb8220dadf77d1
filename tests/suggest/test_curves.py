"""Curve masks on synthetic curves whose answer is known."""

import numpy as np
import pytest

from sftscope.suggest.curves import below_typical, bridge_gaps, longest_run


def test_below_typical_and_floor():
    v = np.array([0.3, 0.01, 0.012, 0.011, 0.2])
    assert below_typical(v).tolist() == [False, True, True, True, False]
    assert below_typical(v, floor=0.25).tolist() == [False, True, True, True, True]


def test_bridge_and_longest_run():
    m = np.array([1, 0, 1, 1, 0, 0, 1, 1, 1, 0], bool)
    assert bridge_gaps(m).tolist() == [1, 1, 1, 1, 0, 0, 1, 1, 1, 0]
    assert longest_run(bridge_gaps(m)) == (0, 4)
    assert longest_run(m) == (6, 9)
    assert longest_run([1, 1, 0, 1, 1]) == (3, 5)  # deepest on ties
    assert longest_run([0, 0]) is None


def test_rejects_non_finite():
    with pytest.raises(ValueError):
        below_typical([0.1, np.nan, 0.3])
