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


# -- routing decompositions of accelerator-held matrices between the device and the host -------------------------
@pytest.mark.parametrize("mode", ["auto", "device", "host"])
def test_a_routed_call_equals_the_cpu_route_and_counts_where_each_matrix_went(mode, torch_route):
    sizes = torch.tensor([7, 1, 0, 12, 12, 5, 9, 3])
    mats = _psd_blocks(sizes.tolist(), 12, seed=3)
    expected = dense.eigvalsh_blocks(mats, sizes, fill=-1.0, workers=2)
    torch_route()  # CPU tensors now take the accelerator's path: torch stands in for the device
    router = dense.EigenRouter(mode, workers=2)
    for _ in range(3):
        got = dense.eigvalsh_blocks(mats, sizes, fill=-1.0, router=router)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    nonzero = int((sizes > 0).sum())
    if mode == "device":
        assert router.matrices == {"device": 3 * len(sizes), "host": 0}
    elif mode == "host":
        assert router.matrices == {"device": 0, "host": 3 * nonzero}
    else:  # the first calls measure both routes
        assert router.matrices["device"] > 0 and router.matrices["host"] > 0
    full = torch.stack([mats[3], mats[4]])  # eigvalsh (no blocks) takes the same routes
    torch.testing.assert_close(dense.eigvalsh(full, router=router), torch.linalg.eigvalsh(full), rtol=0, atol=1e-12)


def _measured(router, host, device):
    """A router whose estimates are `host` s per unit per thread and `device` s per padded unit."""
    router._rate.update(host=host, device=device)
    router._warm.update(host=True, device=True)
    return router


def test_auto_sizes_the_host_share_so_that_both_routes_finish_together():
    units = [8.0] * 8
    # equal speed per matrix, 2 host threads: host j matrices take 4j/2... the best split puts 5 on the host
    # (host ceil-free estimate 8 * 5 / 2 = 20, device 8 * 3 = 24) rather than 4 (16 / 32) or 6 (24 / 16)
    router = _measured(dense.EigenRouter("auto", workers=2), host=1.0, device=1.0)
    k = router.split(units, 8.0)
    costs = [max(8.0 * j / max(min(j, 2), 1), 8.0 if j else 0.0, 8.0 * (8 - j)) for j in range(9)]
    assert costs[k] == min(costs) and k == 5
    assert _measured(dense.EigenRouter("auto", workers=2), host=1e3, device=1.0).split(units, 8.0) == 0
    assert _measured(dense.EigenRouter("auto", workers=8), host=1.0, device=1e3).split(units, 8.0) == 8
    # one matrix is one thread's work: many threads cannot split a single large decomposition
    big = _measured(dense.EigenRouter("auto", workers=64), host=3.0, device=1.0)
    assert big.split([8.0], 8.0) == 0


def test_while_the_caller_keeps_up_auto_moves_work_onto_the_host_and_backs_off_when_it_falls_behind():
    """The device also runs the forward passes: without back-pressure the host's share grows past the fastest
    split (here 0: the device is 100x faster per matrix) up to every matrix; with back-pressure it returns to
    the fastest split."""
    router = _measured(dense.EigenRouter("auto", workers=4, probe_every=10 ** 6), host=100.0, device=1.0)
    units = [1.0] * 10
    assert router.split(units, 1.0, pressure=1.0) == 0  # the fastest split
    keeping_up = [router.split(units, 1.0, pressure=0.0) for _ in range(16)]
    assert keeping_up == sorted(keeping_up) and keeping_up[-1] == 10 and keeping_up[0] >= 1
    assert [router.split(units, 1.0, pressure=0.5) for _ in range(3)] == [0, 0, 0]
    assert router._share == pytest.approx(1.0 / 8)  # halved three times: the climb restarts from there
    assert router.split(units, 1.0, pressure=0.0) == 2
    # a fast host: the fastest split already gives it everything, whatever the pressure
    quick = _measured(dense.EigenRouter("auto", workers=16, probe_every=10 ** 6), host=0.01, device=1.0)
    assert quick.split(units, 1.0, pressure=1.0) == 10 and quick.split(units, 1.0, pressure=0.0) == 10


def test_a_full_metric_queue_shows_as_back_pressure():
    import threading

    from sftscope.metrics.accumulators import _Finisher

    release = threading.Event()
    finisher = _Finisher(lambda job: release.wait(timeout=10), depth=1)
    finisher.submit(1)  # taken by the thread, which then waits
    for _ in range(50):
        if finisher._queue.empty():
            break
        threading.Event().wait(0.01)
    finisher.submit(2)  # queued: the queue is now full
    assert finisher.pressure == 0.0
    threading.Timer(0.05, release.set).start()
    finisher.submit(3)  # found the queue full (and waited)
    assert finisher.pressure == pytest.approx(0.2)
    finisher.join()


def test_auto_probes_a_route_left_without_work_and_ignores_each_routes_first_call():
    router = _measured(dense.EigenRouter("auto", workers=2, probe_every=4), host=1e3, device=1.0)
    given = [router.split([1.0] * 4, 1.0) for _ in range(8)]
    assert given == [0, 0, 0, 1, 0, 0, 0, 1]  # every 4th call one matrix goes to the host
    fresh = dense.EigenRouter("auto", workers=2)
    assert 0 < fresh.split([1.0] * 4, 1.0) < 4  # nothing measured yet: both routes get work
    fresh.observe("device", 2, 2.0, 100.0)  # warm-up (cuSOLVER handles, workspaces): not an estimate
    assert fresh._rate["device"] is None and fresh.matrices["device"] == 2
    fresh.observe("device", 2, 2.0, 2.0)
    fresh.observe("device", 2, 2.0, 4.0)
    assert fresh._rate["device"] == pytest.approx(0.75 * 1.0 + 0.25 * 2.0)
    assert "device 6" in fresh.describe()


def test_a_host_shares_exception_reaches_the_caller(torch_route):
    torch_route()
    mats = _psd_blocks([4, 4, 4, 4], 4)
    mats[0, 0, 0] = float("nan")  # the largest-first order sends matrix 0 to the host
    with pytest.raises(ValueError, match="non-finite"):
        dense.eigvalsh_blocks(mats, torch.tensor([4, 4, 4, 4]), router=dense.EigenRouter("host", workers=2))


def test_routers_reject_unknown_modes_and_share_one_per_mode():
    with pytest.raises(ValueError, match="auto, device, host"):
        dense.EigenRouter("gpu")
    with pytest.raises(ValueError, match="at least 1"):
        dense.EigenRouter("auto", workers=0)
    assert dense.router("auto") is dense.router("auto") and dense.router("host") is not dense.router("auto")


def test_host_workers_divide_the_cores_among_the_processes_of_a_node(monkeypatch):
    monkeypatch.setattr(dense.os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert dense.host_workers() == 30
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert dense.host_workers() == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert dense.host_workers() == 1


def test_concurrent_host_maps_set_one_blas_thread_once_and_restore_it_when_the_last_leaves(monkeypatch):
    """threadpoolctl's limit is process-wide: metric threads mapping at the same time share one limit, set by the
    first in and restored by the last out (a limit per caller restored by the first to leave would give the
    others' workers every BLAS thread)."""
    import threading

    events, lock, state = [], threading.Lock(), {"threads": 8}

    class Limit:
        def __init__(self):
            with lock:
                events.append("set")
                self.before, state["threads"] = state["threads"], 1

        def restore_original_limits(self):
            with lock:
                events.append("restore")
                state["threads"] = self.before

    class Controller:
        def limit(self, limits, user_api):
            assert (limits, user_api) == (1, "blas")
            return Limit()

    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(dense, "_controller", lambda: Controller())
    pool = ThreadPoolExecutor(max_workers=6)  # room for every map's first item at once
    monkeypatch.setattr(dense, "_pool", lambda: pool)
    inside, barrier = [], threading.Barrier(3)

    def work(item):
        if item == 0:
            barrier.wait(timeout=10)  # all three maps are inside at once
        inside.append(state["threads"])

    threads = [threading.Thread(target=dense._host_map, args=(work, list(range(4)), 2)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inside and set(inside) == {1}
    assert events == ["set", "restore"] and state["threads"] == 8 and dense._BLAS_USERS == 0
