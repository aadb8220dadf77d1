import numpy as np
import pytest
import torch

from sftscope.metrics import MetricUndefined, cka, cka_debiased, cosine_similarity, mean_shift, relative_mean_shift
from tests.metrics import reference as ref
from tests.metrics.devices import DEVICES

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("shape", [(12, 40), (60, 8)])  # N x N route and d x d route
def test_cka_equals_centred_gram_formula(shape):
    x = RNG.normal(size=shape)
    y = x @ RNG.normal(size=(shape[1], shape[1])) + RNG.normal(size=shape)
    assert cka(x, y) == pytest.approx(ref.cka_biased(x, y), rel=1e-9)


@pytest.mark.parametrize("shape", [(12, 40), (60, 8)])
def test_cka_debiased_equals_song_estimator(shape):
    x = RNG.normal(size=shape) + 2.0  # uncentred: the estimator is translation invariant
    y = np.tanh(x) + 0.5 * RNG.normal(size=shape)
    lin = lambda a: a @ a.T  # noqa: E731
    expected = ref.hsic_unbiased(lin(x), lin(y)) / np.sqrt(ref.hsic_unbiased(lin(x), lin(x)) *
                                                            ref.hsic_unbiased(lin(y), lin(y)))
    assert cka_debiased(x, y) == pytest.approx(expected, rel=1e-9)


def test_cka_invariances():
    x = RNG.normal(size=(30, 16))
    q = np.linalg.qr(RNG.normal(size=(16, 16)))[0]
    for f in (cka, cka_debiased):
        assert f(x, x @ q) == pytest.approx(1.0, rel=1e-10)        # orthogonal transform
        assert f(x, 3.7 * x) == pytest.approx(1.0, rel=1e-10)      # isotropic scaling
        assert f(x, x + 5.0) == pytest.approx(1.0, rel=1e-10)      # translation
        y = RNG.normal(size=(30, 16))
        assert f(x, y) == pytest.approx(f(y, x), rel=1e-12)        # symmetry
        assert f(x, 2.0 * y @ q) == pytest.approx(f(x, y), rel=1e-9)


def test_debiased_cka_of_independent_data_is_near_zero_when_biased_is_large():
    x, y = RNG.normal(size=(20, 2000)), RNG.normal(size=(20, 2000))  # N << d
    assert cka(x, y) > 0.8
    assert abs(cka_debiased(x, y)) < 0.05


def test_cka_undefined_cases():
    with pytest.raises(MetricUndefined):
        cka_debiased(RNG.normal(size=(3, 5)), RNG.normal(size=(3, 5)))
    with pytest.raises(MetricUndefined):
        cka(np.ones((5, 3)), RNG.normal(size=(5, 3)))
    with pytest.raises(ValueError):
        cka(np.ones((5, 3)), np.ones((4, 3)))


def test_cosine_and_mean_shift_closed_forms():
    x = RNG.normal(size=(10, 6)) + 1.0
    assert cosine_similarity(x, 2.5 * x) == pytest.approx(1.0)
    assert cosine_similarity(x, -x) == pytest.approx(-1.0)
    shift = RNG.normal(size=6)
    assert mean_shift(x, x + shift) == pytest.approx(np.linalg.norm(shift), rel=1e-12)
    assert relative_mean_shift(x, x + shift) == pytest.approx(np.linalg.norm(shift) / np.linalg.norm(x.mean(0)))
    assert mean_shift(x, x) == 0.0
    with pytest.raises(MetricUndefined):
        relative_mean_shift(np.array([[1.0, 2.0], [-1.0, -2.0]]), np.ones((2, 2)))


@pytest.mark.parametrize("device", DEVICES)
def test_pair_oracle_holds_on_every_device(device):
    x = RNG.normal(size=(12, 40))
    y = x @ RNG.normal(size=(40, 40)) + RNG.normal(size=(12, 40))
    tx, ty = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    assert cka(tx, ty) == pytest.approx(ref.cka_biased(x, y), rel=1e-9)
    assert mean_shift(tx, ty) == pytest.approx(np.linalg.norm(y.mean(0) - x.mean(0)), rel=1e-12)
