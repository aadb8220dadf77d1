import numpy as np
import pytest

from sftscope.metrics import cka, cosine_similarity, mean_shift
from sftscope.stats.alignment_bootstrap import alignment_bootstrap
from sftscope.stats.uncertainty import bootstrap_ci


def _pair(n=60, d=20, noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, x + noise * rng.normal(size=(n, d)) + 0.3


def test_estimates_equal_the_metric_functions():
    x, y = _pair()
    out = alignment_bootstrap(x, y, n_boot=20)
    assert out["cka"][0] == pytest.approx(cka(x, y), rel=1e-9)
    assert out["cosine_similarity"][0] == pytest.approx(cosine_similarity(x, y), rel=1e-9)
    assert out["mean_shift"][0] == pytest.approx(mean_shift(x, y), rel=1e-9)


def test_intervals_match_the_generic_bootstrap_with_the_same_resamples():
    x, y = _pair()
    fast = alignment_bootstrap(x, y, n_boot=100, seed=3)
    for name, fn, method in (("cka", cka, "bc"), ("cosine_similarity", cosine_similarity, "percentile"),
                             ("mean_shift", mean_shift, "percentile")):
        slow = bootstrap_ci(x, y, fn, n_boot=100, seed=3, method=method)
        np.testing.assert_allclose(fast[name], slow, rtol=1e-8)


@pytest.mark.integration
def test_identical_sides_have_degenerate_intervals_and_width_shrinks_with_n():
    x, _ = _pair()
    same = alignment_bootstrap(x, x, n_boot=50)
    assert same["cka"][1:] == pytest.approx((1.0, 1.0)) and same["mean_shift"][1:] == (0.0, 0.0)
    small = alignment_bootstrap(*_pair(n=30, seed=1), n_boot=200)
    large = alignment_bootstrap(*_pair(n=480, seed=1), n_boot=200)
    width = lambda r, m: r[m][2] - r[m][1]  # noqa: E731
    assert width(large, "mean_shift") < width(small, "mean_shift") / 2
