"""Curve landmarks on synthetic curves whose answer is known."""

import numpy as np
import pytest

from sftscope.suggest.curves import (below_typical, bridge_gaps, drop_from_plateau, emergence_index, longest_run,
                                     rise_to_end)


def test_emergence_is_first_layer_with_half_the_gain():
    acc = np.array([0.1, 0.1, 0.12, 0.2, 0.31, 0.5])  # threshold 0.1 + 0.5 * 0.4 = 0.3
    assert emergence_index(acc) == 4
    assert emergence_index(acc, fraction=0.25) == 3  # 0.2 reaches 0.1 + 0.1


def test_emergence_none_without_gain():
    assert emergence_index([0.3, 0.4, 0.31]) is None


def test_drop_from_plateau_ignores_early_dip_and_finds_late_suffix():
    cka = np.array([0.7, 0.95, 0.99, 0.99, 0.99, 0.99, 0.98, 0.9, 0.8])
    start, level = drop_from_plateau(cka)
    assert level == pytest.approx(0.98)
    # threshold 0.98 - max(0.02, 0.25 * 0.28) = 0.91: layers 7, 8 are below, layer 0 (an early dip) is not a drop
    assert start == 7


def test_drop_none_when_last_layer_on_plateau():
    assert drop_from_plateau([0.5, 0.99, 0.99, 0.98, 0.99]) is None


def test_rise_to_end_on_j_shape_and_none_on_flat():
    j = np.array([1.0, 1.0, 1.1, 1.0, 1.05, 1.2, 2.5, 4.0])  # median 1.075; threshold 1.075 + 0.5 * 2.925
    assert rise_to_end(j) == 7
    assert rise_to_end(j, rel_margin=0.4) == 6
    assert rise_to_end(np.ones(6) + 0.01 * np.arange(6)) is None


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
        emergence_index([0.1, np.nan, 0.3])
