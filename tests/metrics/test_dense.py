"""Dense kernels: the CPU's NumPy route (per-sample blocks, several at a time) equals torch's batched route."""

import numpy as np
import pytest
import torch

from sftscope.metrics import dense


def _psd_blocks(sizes, width, seed=0):
    """[B, W, W] float64, matrix i PSD in its leading sizes[i] block and zero elsewhere."""
    gen = torch.Generator().manual_seed(seed)
    mats = torch.zeros(len(sizes), width, width, dtype=torch.float64)
    for i, n in enumerate(sizes):
        x = torch.randn(n, 3 * n + 1, generator=gen, dtype=torch.float64)
        mats[i, :n, :n] = x @ x.T / x.shape[1]
    return mats


@pytest.fixture
def torch_route(monkeypatch):
    def use():
        monkeypatch.setattr(dense, "CPU_LIBRARIES", False)
    return use


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_blocks_on_the_cpu_equal_one_batched_decomposition_of_the_padded_matrices(workers, torch_route):
    sizes = torch.tensor([7, 1, 0, 12, 12, 5])
    mats = _psd_blocks(sizes.tolist(), 12)
    host = dense.eigvalsh_blocks(mats, sizes, fill=-1.0, workers=workers)
    torch_route()
    batched = dense.eigvalsh_blocks(mats, sizes, fill=-1.0)
    assert host.shape == batched.shape == (6, 12)
    torch.testing.assert_close(host, batched, rtol=0, atol=1e-12)
    for i, n in enumerate(sizes.tolist()):  # the block's values last, the fill before
        assert (host[i, :12 - n] == -1.0).all()
        expected = np.linalg.eigvalsh(mats[i, :n, :n].numpy()) if n else np.empty(0)
        np.testing.assert_allclose(host[i, 12 - n:].numpy(), expected, rtol=0, atol=1e-13)


def test_the_torch_route_does_not_change_its_input(torch_route):
    torch_route()
    mats = _psd_blocks([3, 5], 5)
    before = mats.clone()
    dense.eigvalsh_blocks(mats, torch.tensor([3, 5]))
    assert torch.equal(mats, before)


@pytest.mark.parametrize("workers", [1, 2])
def test_grams_and_eigenvalues_do_not_depend_on_the_worker_count_or_the_route(workers, torch_route):
    z = torch.randn(5, 9, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    gram = dense.batched_gram(z, workers=workers)
    values = dense.eigvalsh(gram, workers=workers)
    torch_route()
    torch.testing.assert_close(gram, torch.bmm(z, z.transpose(1, 2)), rtol=1e-13, atol=1e-12)
    torch.testing.assert_close(values, torch.linalg.eigvalsh(gram), rtol=0, atol=1e-11)


def test_non_finite_matrices_raise_a_value_error_from_the_workers():
    mats = _psd_blocks([4, 4], 4)
    mats[1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        dense.eigvalsh_blocks(mats, torch.tensor([4, 4]), workers=2)
    with pytest.raises(ValueError, match="non-finite"):
        dense.eigvalsh(mats, workers=2)


def test_a_workers_exception_reaches_the_caller():
    def fail(item):
        if item == 3:
            raise RuntimeError("worker 3 failed")

    with pytest.raises(RuntimeError, match="worker 3"):
        dense._host_map(fail, list(range(6)), workers=2)
