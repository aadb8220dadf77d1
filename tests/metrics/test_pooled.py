import math

import numpy as np
import pytest

from sftscope.metrics import MetricUndefined, condition_number, effective_rank, l2_norm, rank_deficiency, spectral_norm
from sftscope.metrics.pooled import pooled_metrics
from tests.metrics import reference as ref

RNG = np.random.default_rng(2)


def test_effective_rank_of_identity():
    k = 8
    eye = np.eye(k)
    assert effective_rank(eye, "paper") == pytest.approx(1.0, rel=1e-6)
    # centring the identity leaves k - 1 equal singular values
    assert effective_rank(eye, "canonical", normalized=False) == pytest.approx(k - 1, rel=1e-9)
    assert effective_rank(eye, "canonical") == pytest.approx((k - 1) / k, rel=1e-9)


@pytest.mark.parametrize("shape", [(10, 30), (30, 10)])
def test_effective_rank_paper_equals_literal_formula(shape):
    p = RNG.normal(size=shape)
    assert effective_rank(p, "paper") == pytest.approx(ref.effective_rank_paper(p), rel=1e-6)


def test_effective_rank_canonical_equals_roy_vetterli():
    p = RNG.normal(size=(12, 20))
    s = np.linalg.svd(p - p.mean(0), compute_uv=False)
    s = s[s > 1e-12]
    q = s / s.sum()
    assert effective_rank(p, "canonical", normalized=False) == pytest.approx(np.exp(-(q * np.log(q)).sum()), rel=1e-9)


def test_rank_deficiency_of_low_rank_product():
    p = RNG.normal(size=(20, 3)) @ RNG.normal(size=(3, 12))
    for preset in ("paper", "canonical"):
        assert rank_deficiency(p, preset) == pytest.approx(1 - 3 / 12)
    # paper's 1% threshold also drops a direction that is merely small
    q = np.diag([1.0, 1.0, 0.001, 1.0])
    assert rank_deficiency(q, "paper") == pytest.approx(0.25)
    assert rank_deficiency(q, "canonical") == 0.0


def test_spectrum_of_a_known_matrix():
    u = np.linalg.qr(RNG.normal(size=(6, 6)))[0]
    v = np.linalg.qr(RNG.normal(size=(4, 4)))[0]
    s = np.array([5.0, 2.0, 1.0, 0.5])
    p = u[:, :4] @ np.diag(s) @ v.T
    assert spectral_norm(p) == pytest.approx(5.0, rel=1e-12)
    assert condition_number(p, "canonical") == pytest.approx(10.0, rel=1e-10)
    assert condition_number(p, "paper") == pytest.approx(5.0 / (0.5 + 1e-9), rel=1e-10)


def test_condition_number_of_singular_matrix():
    p = RNG.normal(size=(8, 2)) @ RNG.normal(size=(2, 5))
    assert condition_number(p, "canonical") == math.inf
    assert math.isfinite(condition_number(p, "paper"))


def test_l2_norm_mean_and_std():
    p = RNG.normal(size=(9, 5))
    norms = np.linalg.norm(p, axis=1)
    mean, std = l2_norm(p)
    assert mean == pytest.approx(norms.mean()) and std == pytest.approx(norms.std(ddof=1))
    with pytest.raises(MetricUndefined):
        l2_norm(p[:1])


def test_pooled_metrics_share_results_with_the_single_functions():
    p = RNG.normal(size=(15, 10)) + 1.0
    out = pooled_metrics(p)
    for preset in ("paper", "canonical"):
        assert out[("effective_rank", preset)] == pytest.approx(effective_rank(p, preset), rel=1e-12)
        assert out[("condition_number", preset)] == pytest.approx(condition_number(p, preset), rel=1e-12)
        assert out[("rank_deficiency", preset)] == rank_deficiency(p, preset)
        assert out[("l2_norm", preset)] == pytest.approx(l2_norm(p).mean)
    assert ("effective_rank_raw", "canonical") in out and ("effective_rank_raw", "paper") not in out
    assert isinstance(pooled_metrics(p[:1])[("l2_norm_std", "paper")], MetricUndefined)
