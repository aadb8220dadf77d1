"""bootstrap_ci and split_robustness on Gaussian models with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sftscope.errors import SftscopeError
from sftscope.stats import bootstrap_ci, bootstrap_distribution, split_robustness


def linear_cka(X, Y):
    """Biased linear CKA (Kornblith et al. 2019) on centred features, via the N x N Grams when N < d."""
    X = np.asarray(X, float) - np.mean(X, 0)
    Y = np.asarray(Y, float) - np.mean(Y, 0)
    if len(X) < X.shape[1]:
        K, L = X @ X.T, Y @ Y.T
        return float(np.sum(K * L) / (np.linalg.norm(K) * np.linalg.norm(L)))
    return np.linalg.norm(Y.T @ X) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))


def mean_shift(X, Y):
    return float(np.linalg.norm(np.mean(Y, 0) - np.mean(X, 0)))


def correlated_pair(n, rho, seed):
    """X, Y in one dimension with correlation rho: linear CKA -> rho^2 as n grows."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1))
    return x, rho * x + np.sqrt(1 - rho ** 2) * rng.normal(size=(n, 1))


def test_bootstrap_covers_the_true_value_in_most_seeds():
    rho = 0.6
    covered = 0
    for seed in range(40):
        X, Y = correlated_pair(200, rho, seed)
        _, low, high = bootstrap_ci(X, Y, linear_cka, n_boot=200, seed=seed)
        covered += low <= rho ** 2 <= high
    assert covered >= 34   # nominal 95% of 40 = 38; percentile intervals run slightly short at n = 200


def test_bootstrap_width_shrinks_with_n():
    widths = []
    for n in (100, 1600):
        X, Y = correlated_pair(n, 0.6, seed=1)
        _, low, high = bootstrap_ci(X, Y, linear_cka, n_boot=200, seed=0)
        widths.append(high - low)
    assert widths[1] < widths[0] / 2.5   # ~ 1 / sqrt(16) = 0.25 in theory


def test_bootstrap_is_deterministic_paired_and_accepts_torch():
    X, Y = correlated_pair(50, 0.5, seed=3)
    a = bootstrap_ci(X, Y, linear_cka, n_boot=50, seed=7)
    b = bootstrap_ci(torch.from_numpy(X), torch.from_numpy(Y),
                     lambda x, y: linear_cka(x.numpy(), y.numpy()), n_boot=50, seed=7)
    assert a == pytest.approx(b, rel=1e-12)
    # pairing kept: Y = 2X has CKA exactly 1 on every resample
    est, low, high = bootstrap_ci(X, 2 * X, linear_cka, n_boot=50)
    assert est == pytest.approx(1) and low == pytest.approx(1) and high == pytest.approx(1)


def test_bias_corrected_interval_recentres_on_duplicated_row_bias():
    # N << d: biased CKA of unrelated data is high and rises on resamples with duplicated rows
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(30, 200)), rng.normal(size=(30, 200))
    est, boot = bootstrap_distribution(X, Y, linear_cka, n_boot=200, seed=0)
    assert np.mean(boot) > est   # the documented upward shift
    _, low_p, high_p = bootstrap_ci(X, Y, linear_cka, n_boot=200, seed=0)
    _, low_bc, high_bc = bootstrap_ci(X, Y, linear_cka, n_boot=200, seed=0, method="bc")
    assert est < low_p                  # the percentile interval misses its own estimate
    assert low_bc < low_p and high_bc < high_p


def test_split_robustness_identical_is_not_significant():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8))
    for metric, kind in ((mean_shift, "distance"), (linear_cka, "similarity")):
        result = split_robustness(X, X.copy(), metric, n_splits=20, seed=0, kind=kind)
        assert result["p_value"] > 0.5 and result["excess_mean"] < 0


def test_split_robustness_large_shift_is_significant_and_small_is_not():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 8))
    noise = 0.1 * rng.normal(size=X.shape)
    big = split_robustness(X, X + 1.0 + noise, mean_shift, n_splits=20, seed=0, kind="distance")
    assert big["p_value"] < 1e-6 and big["cross_mean"] == pytest.approx(np.sqrt(8), rel=0.05)
    small = split_robustness(X, X + 0.01 + noise, mean_shift, n_splits=20, seed=0, kind="distance")
    assert small["p_value"] > 0.05   # a shift far below the sampling noise of a half-sample mean


def test_split_robustness_dataset_level_difference():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 4))
    spread = lambda A, B: float(np.std(B) - np.std(A))   # a single-model statistic's difference
    assert split_robustness(X, 3 * X, spread, n_splits=10, kind="difference")["p_value"] < 1e-3
    assert split_robustness(X, X, spread, n_splits=10, kind="difference")["p_value"] > 0.5


def test_split_robustness_is_deterministic_and_uses_disjoint_halves():
    seen = []

    def record(A, B):
        seen.append((A[:, 0].copy(), B[:, 0].copy()))
        return 0.0

    X = np.arange(20, dtype=float).reshape(20, 1)
    split_robustness(X, X + 100, record, n_splits=3, seed=5, kind="distance")
    # per split: (X_A, Y_A), (X_B, Y_B), (X_A, X_B), (Y_A, Y_B), then the full-sample estimate
    xa, ya = seen[0]
    xb, _ = seen[1]
    assert np.array_equal(ya, xa + 100)                      # paired rows for Base vs SFT
    assert not set(xa) & set(xb) and len(xa) == len(xb) == 10  # disjoint halves
    a = split_robustness(X, X + 1, mean_shift, n_splits=5, seed=3, kind="distance")
    b = split_robustness(X, X + 1, mean_shift, n_splits=5, seed=3, kind="distance")
    assert np.array_equal(a["cross"], b["cross"]) and a["p_value"] == b["p_value"]


def test_errors():
    X = np.zeros((10, 2))
    with pytest.raises(SftscopeError, match="same rows"):
        bootstrap_ci(X, X[:5], mean_shift)
    with pytest.raises(SftscopeError, match="kind"):
        split_robustness(X, X, mean_shift, kind="nope")
