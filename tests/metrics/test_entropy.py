import math

import numpy as np
import pytest
import torch

from sftscope.metrics import MetricUndefined, dataset_entropy, prompt_entropy
from sftscope.metrics.entropy import spectrum_entropy
from tests.metrics import reference as ref
from tests.metrics.devices import DEVICES

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


@pytest.mark.parametrize("shape", [(9, 16), (30, 6)])  # Gram route and covariance route
def test_prompt_entropy_robust_to_zero_tokens_and_a_large_common_component(shape):
    z = RNG.normal(size=shape) + 40.0  # tokens share a component 40x their spread
    z[3] = 0.0                         # an exactly-zero token (e.g. a zero embedding row)
    for preset in ("paper", "canonical"):
        assert prompt_entropy(z, preset=preset) == pytest.approx(ref.prompt_entropy(z, preset), rel=1e-9)


def test_identical_tokens_have_no_canonical_spectrum():
    z = np.tile(RNG.normal(size=(1, 16)), (7, 1))  # identical, not exactly representable after averaging
    with pytest.raises(MetricUndefined, match="identical"):
        prompt_entropy(z, preset="canonical")
    assert prompt_entropy(z, preset="paper") == pytest.approx(ref.prompt_entropy(z, "paper"), rel=1e-9)


def _entropy_from(k, preset, t, d, dtype):
    lam = torch.linalg.eigvalsh(torch.as_tensor(k).to(dtype)).double().numpy()
    if preset == "paper":
        return ref.paper_entropy(lam / d + 1e-6) / np.log(min(t, d))
    return ref.canonical_entropy(lam[lam > lam.max() * t * 2.2e-16]) / np.log(min(t, d))


def test_spectra_need_float64_float32_misses_the_oracle_on_real_activation_shapes():
    """Why the token spectra are float64 on every device: on hidden states with a massive activation (one
    dimension 300x the rest, common in LMs) or of low rank, a float32 eigvalsh of the same matrices already
    misses the 1e-6 oracle tolerance, while the engine stays within 1e-9 of the literal formula."""
    t, d = 128, 256
    cases = {"massive": (RNG.normal(size=(t, d)) + 300.0 * np.eye(d)[7], "paper"),
             "low rank": (RNG.normal(size=(t, 8)) @ RNG.normal(size=(8, d)) + 1e-3 * RNG.normal(size=(t, d)),
                          "canonical")}
    worst32 = 0.0
    for z, preset in cases.values():
        exact = ref.prompt_entropy(z, preset)
        assert prompt_entropy(z, preset=preset) == pytest.approx(exact, rel=1e-9)
        if preset == "paper":
            zn = z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-10)
        else:
            zc = z - z.mean(0)
            zn = zc / np.linalg.norm(zc, axis=1, keepdims=True)
        worst32 = max(worst32, abs(_entropy_from(zn @ zn.T, preset, t, d, torch.float32) - exact) / exact)
    assert worst32 > 1e-6


@pytest.mark.parametrize("device", DEVICES)
def test_oracle_holds_on_every_device(device):
    z = torch.as_tensor(RNG.normal(size=(20, 48)) + 0.5, device=device)
    p = torch.as_tensor(RNG.normal(size=(30, 12)) + 0.5, device=device)
    for preset in ("paper", "canonical"):
        assert prompt_entropy(z, preset=preset) == pytest.approx(ref.prompt_entropy(z.cpu().numpy(), preset),
                                                                 rel=1e-9)
        assert dataset_entropy(p, preset=preset) == pytest.approx(ref.dataset_entropy(p.cpu().numpy(), preset),
                                                                  rel=1e-9)
