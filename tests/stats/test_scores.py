"""Variance of a mean over seeds x items against closed forms, the guards (resolution floor, p never 0,
proportion intervals inside [0, 1]), and the paired comparison of two configurations."""

import math

import numpy as np
import pytest
from scipy import stats

from sftscope.stats.scores import (
    P_FLOOR,
    crossed_mean_variance,
    difference_test,
    higher_is_better,
    is_proportion,
    mean_interval,
)


def test_one_seed_is_the_classic_item_standard_error():
    x = np.array([[1, 0, 1, 1, 0, 1, 1, 1]], dtype=float)
    mv = crossed_mean_variance(x)
    assert mv.basis == "items only (1 seed)" and mv.mean == pytest.approx(0.75)
    assert mv.var == pytest.approx(x.var(ddof=1) / 8) and mv.df == 7


def test_seeds_only_is_the_t_interval_over_seeds():
    x = np.array([[0.30], [0.36], [0.33], [0.41]])
    mv = crossed_mean_variance(x)
    low, high = mean_interval(mv)
    half = stats.t.ppf(0.975, 3) * x.std(ddof=1) / 2
    assert mv.basis == "seeds only" and (low, high) == pytest.approx((0.35 - half, 0.35 + half))


def test_items_identical_across_seeds_add_only_item_variance():
    y = np.array([1, 0, 0, 1, 1, 0, 1, 1, 1, 0], dtype=float)
    mv = crossed_mean_variance(np.tile(y, (3, 1)))  # no seed effect, no residual: the item sampling variance only
    assert mv.var == pytest.approx(y.var(ddof=1) / 10) and mv.df == pytest.approx(9)


def test_a_seed_shift_adds_only_seed_variance():
    shift = np.array([0.1, 0.3, 0.2])
    x = np.zeros((3, 20)) + shift[:, None]
    mv = crossed_mean_variance(x)
    assert mv.var == pytest.approx(shift.var(ddof=1) / 3) and mv.df == pytest.approx(2)


def test_unbiased_on_the_two_way_model():
    """E[V] = s2_seed / S + s2_item / I + s2_res / (S I) on simulated normal data (mean of 4000 estimates)."""
    rng = np.random.default_rng(0)
    S, I, sa, sb, se = 3, 40, 0.3, 0.5, 1.0
    x = (rng.normal(0, sa, (4000, S, 1)) + rng.normal(0, sb, (4000, 1, I)) + rng.normal(0, se, (4000, S, I)))
    mv = crossed_mean_variance(x)
    want = sa ** 2 / S + sb ** 2 / I + se ** 2 / (S * I)
    assert mv.var.mean() == pytest.approx(want, rel=0.05)
    assert x.mean(axis=(1, 2)).var() == pytest.approx(want, rel=0.08)  # the true variance of the mean


def test_no_variance_never_gives_p_zero():
    # three identical per-seed differences (the case): floored by the 1/116 resolution of each score
    d = np.full((3, 1), 0.05)
    low, high, p = difference_test(crossed_mean_variance(d, resolution=1 / 116, quantized=2), bounded=True)
    assert 0 < p < 0.05 and low < 0.05 < high
    # no resolution known (a perplexity): the test does not exist
    low, high, p = difference_test(crossed_mean_variance(d))
    assert math.isnan(p)
    # an overwhelming difference: tiny but positive
    assert difference_test(crossed_mean_variance(np.ones((3, 116)), 1 / 116, 2))[2] >= P_FLOOR


def test_proportion_intervals_stay_in_unit_interval():
    x = np.ones((3, 116))
    x[1, 0] = 0  # seeds 1.0, 0.991, 1.0: the t-interval reached 1.15 on such values
    for mv in (crossed_mean_variance(x, 1 / 116), crossed_mean_variance(x.mean(1, keepdims=True), 1 / 116)):
        low, high = mean_interval(mv, proportion=True, n_max=348)
        assert 0 <= low < x.mean() <= high <= 1
    all_right = crossed_mean_variance(np.ones((3, 50)), 1 / 50)
    low, high = mean_interval(all_right, proportion=True)
    assert high == 1.0 and low == pytest.approx(150 / (150 + stats.norm.ppf(0.975) ** 2))  # Wilson at 150, not [1, 1]
    with pytest.raises(ValueError):
        mean_interval(all_right, level=1.5)


def test_metric_kinds():
    assert is_proportion("exact_match:kind") and is_proportion("accuracy") and not is_proportion("perplexity_change")
    assert higher_is_better("accuracy") and not higher_is_better("perplexity_change")


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="seeds, items"):
        crossed_mean_variance(np.ones(3))
    with pytest.raises(ValueError, match="finite"):
        crossed_mean_variance(np.array([[1.0, np.nan]]))
