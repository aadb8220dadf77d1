import math

import numpy as np
import pytest

from sftscope.metrics import MetricUndefined, curvature, sparsity
from tests.metrics import reference as ref

RNG = np.random.default_rng(1)


@pytest.mark.parametrize("preset", ["paper", "canonical"])
def test_curvature_equals_literal_formula(preset):
    z = RNG.normal(size=(15, 24))
    assert curvature(z, preset) == pytest.approx(ref.curvature(z, preset), rel=1e-6)


def test_curvature_closed_forms():
    line = np.outer(np.arange(6.0), RNG.normal(size=8))        # straight trajectory
    assert curvature(line, "canonical") == pytest.approx(0.0, abs=1e-7)
    assert curvature(line, "paper") == pytest.approx(math.acos(0.999) / math.pi, rel=1e-9)  # clamp floor
    stairs = np.cumsum(np.array([[1.0, 0], [0, 1], [1, 0], [0, 1], [1, 0]]), axis=0)  # right angles
    assert curvature(stairs, "canonical") == pytest.approx(0.5, rel=1e-12)
    back_and_forth = np.array([[0.0, 0], [1, 0], [0, 0], [1, 0]])
    assert curvature(back_and_forth, "canonical") == pytest.approx(1.0, rel=1e-12)
    assert curvature(back_and_forth, "paper") == pytest.approx(math.acos(-0.999) / math.pi, rel=1e-9)
    repeated = np.array([[0.0, 0], [1, 0], [1, 0], [2, 0]])   # a zero-length step: angle pi/2 by definition
    assert curvature(repeated, "canonical") == pytest.approx(0.5, rel=1e-12)


def test_curvature_needs_three_tokens():
    with pytest.raises(MetricUndefined, match="3 tokens"):
        curvature(RNG.normal(size=(2, 4)))


def test_sparsity_counts_entries_below_threshold_of_sample_max():
    z = np.array([[100.0, 0.5, -0.99, 2.0], [-1.0, 0.0, 50.0, 1.01]])
    # threshold 0.01 * 100 = 1: entries 0.5, -0.99, 0.0 are below; -1.0 is not (strict)
    assert sparsity(z) == pytest.approx(3 / 8)
    assert sparsity(z, threshold=0.6) == pytest.approx(7 / 8)
    assert sparsity(-z) == sparsity(z)
    assert sparsity(z * 1e-3) == pytest.approx(sparsity(z))  # relative threshold: scale invariant
