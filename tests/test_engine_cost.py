"""benchmarks/engine_cost.py's census and its projection of where prompt entropy's decompositions run."""

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def engine_cost():
    spec = importlib.util.spec_from_file_location("engine_cost", ROOT / "benchmarks" / "engine_cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_census_counts_each_decomposition_and_its_flops(engine_cost):
    a = torch.randn(3, 5, 5, dtype=torch.float64)
    with engine_cost.OpCensus() as census:
        torch.linalg.eigvalsh(a @ a.transpose(1, 2))
    assert census.work["eigh_matrices"] == 3
    assert census.work["eigh_flops"] == pytest.approx(3 * 4 / 3 * 125)


def _length(engine_cost, matrices, device_seconds, host_one_thread, n=100):
    census = {"eigh_matrices": matrices, "eigh_flops": device_seconds * engine_cost.RATES["factor_flops"]}
    return {"census_tok": census, "host_eig": host_one_thread, "n_eig": n}


def test_the_auto_route_balances_host_and_device_and_is_never_worse_than_either(engine_cost):
    # forward 10 s; token metrics 4 s of which the 100 decompositions are 3 s on the device
    fast_host = engine_cost.route_projection(_length(engine_cost, 100, 3.0, 0.14), 10.0, 4.0, 0.0, 0.0, 1.0, 100, 16)
    copy = 100 * 100 * 8 / engine_cost.PCIE_BYTES
    assert fast_host["workers"] == 14
    # the host's 100 x (0.01 s + copy) hide behind the device's other 11 s: everything goes to the host
    assert fast_host["host"] == pytest.approx(1.1) and fast_host["auto"] == pytest.approx(1.1)
    assert fast_host["auto_share"] == pytest.approx(1.0)
    slow_host = engine_cost.route_projection(_length(engine_cost, 100, 3.0, 14.0), 10.0, 4.0, 0.0, 0.0, 1.0, 100, 16)
    each = 1.0 + copy
    on_device = (100 * each - 11.0) / (0.03 + each)  # both finish together
    assert slow_host["auto"] == pytest.approx((11.0 + on_device * 0.03) / 10.0)
    assert slow_host["auto"] == pytest.approx((100 - on_device) * each / 10.0)
    device_only = (10.0 + 4.0) / 10.0
    assert slow_host["auto"] < min(slow_host["host"], device_only)
    assert slow_host["host"] == pytest.approx(100 * each / 10.0)
