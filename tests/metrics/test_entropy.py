import math

import numpy as np
import pytest
import torch

from sftscope.metrics import MetricUndefined, dataset_entropy, prompt_entropy
from sftscope.metrics.entropy import spectrum_entropy
from tests.metrics import reference as ref

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("preset", ["paper", "canonical"])
@pytest.mark.parametrize("alpha", [1.0, 2.0, 0.5])
@pytest.mark.parametrize("shape", [(7, 16), (40, 12)])  # T < d (Gram route) and T > d (covariance route)
def test_prompt_entropy_equals_literal_formula(preset, alpha, shape):
    z = RNG.normal(size=shape) + 0.3
    assert prompt_entropy(z, alpha, preset) == pytest.approx(ref.prompt_entropy(z, preset, alpha), rel=1e-6)


@pytest.mark.parametrize("preset", ["paper", "canonical"])
@pytest.mark.parametrize("alpha", [1.0, 2.0])
@pytest.mark.parametrize("shape", [(9, 20), (50, 8)])  # both branches of the paper formula
def test_dataset_entropy_equals_literal_formula(preset, alpha, shape):
    p = RNG.normal(size=shape) + 0.5
    assert dataset_entropy(p, alpha, preset) == pytest.approx(ref.dataset_entropy(p, preset, alpha), rel=1e-6)


@pytest.mark.parametrize("alpha", [1.0, 3.0])
def test_uniform_spectrum_entropy_is_log_size(alpha):
    lam = torch.full((1, 6), 0.25, dtype=torch.float64)
    valid = torch.ones_like(lam, dtype=torch.bool)
    for preset in ("paper", "canonical"):
        assert float(spectrum_entropy(lam, valid, alpha, preset)[0]) == pytest.approx(math.log(6), rel=1e-6)


def test_orthonormal_set_has_entropy_log_of_its_size():
    k, d = 6, 10
    q = np.linalg.qr(RNG.normal(size=(d, d)))[0][:k]  # k orthonormal rows
    # paper: K = I / d + ridge has k equal eigenvalues -> H = log k, normalised by log min(k, d) = log k
    assert prompt_entropy(q, preset="paper") == pytest.approx(1.0, rel=1e-6)
    assert dataset_entropy(q, preset="paper") == pytest.approx(1.0, rel=1e-6)
    # canonical centres first: k orthonormal points form a regular simplex spanning k - 1 equal directions
    assert prompt_entropy(q, preset="canonical") == pytest.approx(math.log(k - 1) / math.log(k), rel=1e-9)
    assert dataset_entropy(q, preset="canonical") == pytest.approx(math.log(k - 1) / math.log(k), rel=1e-9)


def test_entropy_accepts_torch_low_precision_and_matches_float64():
    z = torch.randn(12, 32, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    assert prompt_entropy(z) == pytest.approx(prompt_entropy(z.double().numpy()), rel=1e-12)


def test_undefined_inputs_raise():
    with pytest.raises(MetricUndefined):
        prompt_entropy(np.ones((1, 8)), preset="canonical")
    with pytest.raises(MetricUndefined):
        prompt_entropy(np.ones((1, 8)), preset="paper")  # log(min(1, d)) = 0
    with pytest.raises(MetricUndefined, match="identical"):
        prompt_entropy(np.ones((5, 8)), preset="canonical")
    with pytest.raises(MetricUndefined):
        dataset_entropy(np.ones((1, 8)))
    with pytest.raises(ValueError):
        prompt_entropy(np.ones((5, 8)), preset="nope")
