import math

import numpy as np

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sftscope.metrics import curvature, prompt_entropy, sparsity
from sftscope.metrics.accumulators import SideAccumulator, pair_rows, side_rows
from sftscope.metrics.pooled import pooled_metrics
from sftscope.results.rundir import rows_to_frame
from tests.metrics.devices import DEVICES

LAYERS, D = 3, 12
LENGTHS = [1, 2, 5, 9, 14, 3, 7, 11, 6, 8]
IDS = [f"s{i:02d}" for i in range(len(LENGTHS))]


def _samples(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {sid: [torch.randn(t, D, generator=gen) * (1 + layer) + layer for layer in range(LAYERS)]
            for sid, t in zip(IDS, LENGTHS)}


def _feed(acc, samples, batch_ids, side="right", dtype=torch.float32, pad_value=0.0, device="cpu"):
    """Pad a batch (left or right) the way a tokenizer would and feed every layer."""
    for layer in range(LAYERS):
        t_max = max(samples[s][layer].shape[0] for s in batch_ids)
        hidden = torch.full((len(batch_ids), t_max + 1, D), pad_value)  # one extra pad column everywhere
        mask = torch.zeros(len(batch_ids), t_max + 1, dtype=torch.bool)
        for b, sid in enumerate(batch_ids):
            z = samples[sid][layer]
            sl = slice(0, z.shape[0]) if side == "right" else slice(t_max + 1 - z.shape[0], t_max + 1)
            hidden[b, sl], mask[b, sl] = z, True
        acc.update(layer, hidden.to(dtype).to(device), mask.to(device), list(batch_ids))


def _values(rows):
    return {(r.side, r.layer, r.metric, r.preset, r.mode, r.extra.get("reason")): (r.value, r.n) for r in rows}


def _assert_same(a, b, rel=1e-9):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k][1] == b[k][1], k
        assert a[k][0] == pytest.approx(b[k][0], rel=rel, abs=1e-12), k


def test_any_batching_and_padding_side_equals_one_call():
    samples = _samples()
    one = SideAccumulator(LAYERS)
    _feed(one, samples, IDS)
    reference = _values(side_rows(one, "base", "d"))
    for side, order, size in [("left", IDS, 3), ("right", IDS[::-1], 4), ("left", IDS[3:] + IDS[:3], 1)]:
        acc = SideAccumulator(LAYERS)
        for i in range(0, len(order), size):
            _feed(acc, samples, order[i:i + size], side=side, pad_value=float("nan"))  # NaN pads are ignored
        _assert_same(_values(side_rows(acc, "base", "d")), reference)


def test_token_values_equal_the_single_sample_functions_and_pooled_rows_the_masked_mean():
    samples = _samples()
    acc = SideAccumulator(LAYERS)
    _feed(acc, samples, IDS, side="left")
    for layer in range(LAYERS):
        values = acc.token_values[layer]
        for sid in IDS:
            z = samples[sid][layer]
            for preset in ("paper", "canonical"):
                if z.shape[0] >= 2:
                    assert values[("prompt_entropy", preset)][sid] == pytest.approx(prompt_entropy(z, preset=preset), rel=1e-9)
                if z.shape[0] >= 3:
                    assert values[("curvature", preset)][sid] == pytest.approx(curvature(z, preset), rel=1e-9)
            assert values[("sparsity", "")][sid] == pytest.approx(sparsity(z))
        ids, p = acc.pooled_matrix(layer)
        assert ids == sorted(IDS)
        expected = torch.stack([samples[s][layer].double().mean(0) for s in ids])
        torch.testing.assert_close(p.double(), expected, rtol=1e-6, atol=1e-6)
        got = acc.pooled_values(layer)
        for key, value in pooled_metrics(p, ("paper", "canonical")).items():
            assert got[key] == pytest.approx(value, rel=1e-12)


def test_undefined_samples_are_counted_with_reasons():
    acc = SideAccumulator(LAYERS)
    _feed(acc, _samples(), IDS)
    rows = side_rows(acc, "base", "d")
    skipped = {(r.layer, r.metric, r.preset, r.extra["reason"]): r.value for r in rows if r.metric.startswith("skipped:")}
    assert skipped[(0, "skipped:curvature", "paper", "needs at least 3 tokens")] == 2  # T = 1 and T = 2
    assert sum(v for k, v in skipped.items() if k[:3] == (0, "skipped:prompt_entropy", "canonical")) == 1
    curv = next(r for r in rows if (r.layer, r.metric, r.preset, r.mode) == (0, "curvature", "paper", "value"))
    assert curv.n == len(IDS) - 2


def test_nonfinite_activations_exclude_the_sample_and_are_reported():
    samples = _samples()
    samples["s04"][1][3, 5] = float("inf")
    samples["s04"][1][7, 1] = float("nan")
    acc = SideAccumulator(LAYERS)
    _feed(acc, samples, IDS)
    rows = side_rows(acc, "base", "d")
    frame = rows_to_frame(rows)  # refuses NaN values
    assert frame["value"].notna().all()
    n = len(IDS)
    bad = {r.layer: (r.value, r.n) for r in rows if r.metric == "nonfinite_values"}
    assert bad == {0: (0.0, n), 1: (2.0, n), 2: (0.0, n)}
    excluded = {r.layer: r.value for r in rows if r.metric == "nonfinite_samples_excluded"}
    assert excluded == {0: 0.0, 1: 1.0, 2: 0.0}
    assert "s04" not in acc.pooled_matrix(1)[0] and "s04" in acc.pooled_matrix(2)[0]
    assert "s04" not in acc.token_values[1][("sparsity", "")]
    reasons = {r.extra["reason"] for r in rows if r.layer == 1 and r.metric == "skipped:pooled"}
    assert reasons == {"non-finite activations"}


def test_side_paired_with_itself_is_perfectly_aligned(tmp_path):
    acc = SideAccumulator(LAYERS)
    _feed(acc, _samples(), IDS)
    acc.save(tmp_path / "side.pt")
    other = SideAccumulator.load(tmp_path / "side.pt")
    _assert_same(_values(side_rows(other, "base", "d")), _values(side_rows(acc, "base", "d")), rel=0)
    rows = pair_rows(acc, other, "sft", "d")
    got = {(r.layer, r.metric, r.preset, r.mode): r.value for r in rows}
    for layer in range(LAYERS):
        for preset in ("paper", "canonical"):
            assert got[(layer, "cka", preset, "alignment")] == pytest.approx(1.0, rel=1e-6)
            assert got[(layer, "cka_debiased", preset, "alignment")] == pytest.approx(1.0, rel=1e-6)
            assert got[(layer, "cosine_similarity", preset, "alignment")] == pytest.approx(1.0, rel=1e-6)
            assert got[(layer, "mean_shift", preset, "alignment")] == 0.0
            assert got[(layer, "prompt_entropy", preset, "sample_diff")] == 0.0
            assert got[(layer, "effective_rank", preset, "dataset_diff")] == 0.0
    assert all(r.side == "sft" for r in rows)


def test_pair_of_different_models_aligns_by_sample_id():
    samples, shifted = _samples(0), _samples(0)
    for sid in IDS:
        for layer in range(LAYERS):
            shifted[sid][layer] = shifted[sid][layer] + 2.0
    base, variant = SideAccumulator(LAYERS), SideAccumulator(LAYERS)
    _feed(base, samples, IDS)
    _feed(variant, shifted, IDS[::-1], side="left")  # other order, other padding
    got = {(r.layer, r.metric, r.preset, r.mode): (r.value, r.n) for r in pair_rows(base, variant, "sft", "d")}
    value, n = got[(1, "mean_shift", "paper", "alignment")]
    assert value == pytest.approx(2.0 * math.sqrt(D), rel=1e-6) and n == len(IDS)
    assert got[(1, "cka", "paper", "alignment")][0] == pytest.approx(1.0, rel=1e-6)  # translation invariant
    assert got[(1, "sparsity", "canonical", "sample_diff")][1] == len(IDS)


def test_subsets_low_precision_and_duplicates():
    samples = _samples()
    acc = SideAccumulator(LAYERS, presets=["paper"], token_ids=set(IDS[:4]), pooled_ids=set(IDS[2:]))
    _feed(acc, samples, IDS, dtype=torch.bfloat16)
    assert set(acc.token_values[0][("sparsity", "")]) == set(IDS[:4])
    assert acc.pooled_matrix(0)[0] == sorted(IDS[2:])
    rows = side_rows(acc, "base", "d")
    assert {r.preset for r in rows if r.mode == "value"} == {"paper"}
    assert all(math.isfinite(r.value) or r.metric == "condition_number" for r in rows)
    with pytest.raises(ValueError, match="twice"):
        _feed(acc, samples, IDS[:1])


@pytest.mark.parametrize("device", DEVICES)
def test_device_path_and_background_finishing_equal_the_synchronous_cpu_path(device):
    samples = _samples()
    reference = SideAccumulator(LAYERS)
    _feed(reference, samples, IDS, side="left")
    expected = _values(side_rows(reference, "base", "d"))
    for asynchronous in (False, True):
        acc = SideAccumulator(LAYERS, asynchronous=asynchronous)
        for i in range(0, len(IDS), 3):
            _feed(acc, samples, IDS[i:i + 3], side="left", device=device)
        _assert_same(_values(side_rows(acc, "base", "d")), expected, rel=1e-9)
        assert acc.pooled_matrix(0)[1].device.type == device  # the end-of-run math runs on that device


@pytest.mark.parametrize("threads,route", [(1, "auto"), (2, "auto"), (1, "device"), (2, "host")])
def test_the_accelerator_route_equals_the_cpu_route(monkeypatch, threads, route):
    """The kernels a GPU runs (torch's batched Gram and one padded eigvalsh per layer, finished in the
    background; its decompositions routed to the device, the host or both) give the CPU route's values (NumPy,
    each sample's own block, several decompositions at once)."""
    from sftscope.metrics import dense

    monkeypatch.setattr(dense, "router", lambda mode: dense.EigenRouter(mode, workers=2))  # fresh estimates
    samples = _samples()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        host = SideAccumulator(LAYERS, threads=1)
        for i in range(0, len(IDS), 4):
            _feed(host, samples, IDS[i:i + 4])
        expected = _values(side_rows(host, "base", "d"))
        monkeypatch.setattr(dense, "CPU_LIBRARIES", False)
        accelerator = SideAccumulator(LAYERS, asynchronous=True, eigen_route=route)
        for i in range(0, len(IDS), 4):
            _feed(accelerator, samples, IDS[i:i + 4], side="left")
        _assert_same(_values(side_rows(accelerator, "base", "d")), expected, rel=1e-9)
        used = accelerator.router.matrices
        assert used["host" if route == "host" else "device"] > 0
        assert (used["host"] > 0) == (route != "device") and (used["device"] > 0) == (route != "host")
    finally:
        torch.set_num_threads(before)


def test_reused_float64_buffer_leaves_earlier_batches_intact():
    """The CPU route copies each batch's token rows into one reused float64 buffer: batches of different
    shapes in any order give each sample the values it gets alone."""
    samples = _samples()
    alone = {}
    for sid in IDS:
        acc = SideAccumulator(LAYERS)
        _feed(acc, samples, [sid])
        alone[sid] = acc.token_values
    acc = SideAccumulator(LAYERS)
    for batch in (IDS[4:6], IDS[:1], IDS[6:], IDS[1:4]):  # long, short, long, mixed
        _feed(acc, samples, batch)
    assert acc._scratch is not None and acc._scratch.dtype == torch.float64
    compared = 0
    for layer in range(LAYERS):
        for key, values in acc.token_values[layer].items():
            for sid, value in values.items():
                assert value == pytest.approx(alone[sid][layer][key][sid], rel=1e-12), (layer, key, sid)
                compared += 1
    assert compared > 3 * len(IDS)


def test_merged_states_equal_one_accumulator_that_saw_every_sample(tmp_path):
    samples = _samples()
    shifted = {sid: [z + 0.5 * (layer + 1) for layer, z in enumerate(zs)] for sid, zs in samples.items()}
    single_base, single_sft = SideAccumulator(LAYERS), SideAccumulator(LAYERS)
    _feed(single_base, samples, IDS)
    _feed(single_sft, shifted, IDS)
    shards = [IDS[0::3], IDS[1::3], IDS[2::3]]  # disjoint samples per "rank", any order
    merged = {}
    for name, data in (("base", samples), ("sft", shifted)):
        parts = []
        for shard in shards:
            acc = SideAccumulator(LAYERS)
            _feed(acc, data, shard[::-1], side="left")
            parts.append(acc.state_dict())
        torch.save(parts[2], tmp_path / "rank2.pt")  # a state survives a round trip through a file
        parts[2] = torch.load(tmp_path / "rank2.pt", weights_only=True)
        merged[name] = SideAccumulator.from_state_dict(parts[1])
        for state in (parts[2], parts[0]):
            merged[name].merge(state)
    _assert_same(_values(side_rows(merged["base"], "base", "d")), _values(side_rows(single_base, "base", "d")),
                 rel=1e-12)
    _assert_same(_values(pair_rows(merged["base"], merged["sft"], "sft", "d")),
                 _values(pair_rows(single_base, single_sft, "sft", "d")), rel=1e-12)


def test_merge_refuses_overlapping_samples_and_other_settings():
    samples = _samples()
    a, b = SideAccumulator(LAYERS), SideAccumulator(LAYERS)
    _feed(a, samples, IDS[:4])
    _feed(b, samples, IDS[3:6])
    with pytest.raises(ValueError, match="s03"):
        a.merge(b)
    with pytest.raises(ValueError, match="presets"):
        a.merge(SideAccumulator(LAYERS, presets=["paper"]))
    with pytest.raises(ValueError, match="format"):
        a.merge({**b.state_dict(), "version": 99})


def test_background_failure_is_raised_on_the_callers_thread(monkeypatch):
    import sftscope.metrics.accumulators as module

    def broken(*args, **kwargs):
        raise FloatingPointError("kernel failed")
    monkeypatch.setattr(module, "token_values", broken)
    acc = SideAccumulator(LAYERS, asynchronous=True)
    with pytest.raises(RuntimeError, match="kernel failed"):  # at the next update or at the flush
        _feed(acc, _samples(), IDS[:3])
        acc.flush()
    with pytest.raises(RuntimeError, match="kernel failed"):  # sticky: the state is incomplete
        side_rows(acc, "base", "d")


class _HostReads(TorchDispatchMode):
    """Records ops that read a tensor's value on the host (they wait for an accelerator); thread-local."""

    READS = ("_local_scalar_dense", "equal", "is_nonzero")

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in self.READS:
            self.seen.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def test_update_never_waits_for_the_device_when_finishing_in_the_background():
    """What `update` runs on the caller's thread (the forward pass's) reads no tensor value, so on an
    accelerator it never synchronises; the background thread does the reading (checked with the CPU)."""
    samples = _samples()
    acc = SideAccumulator(LAYERS, asynchronous=True)
    watch = _HostReads()
    with watch:
        _feed(acc, samples, IDS[:5], side="left", pad_value=float("nan"))
        samples["s07"][2][1, 1] = float("inf")
        _feed(acc, samples, IDS[5:])
    assert watch.seen == []
    reference = SideAccumulator(LAYERS)
    _feed(reference, samples, IDS[:5], side="left", pad_value=float("nan"))
    _feed(reference, samples, IDS[5:])
    _assert_same(_values(side_rows(acc, "base", "d")), _values(side_rows(reference, "base", "d")), rel=1e-12)


def test_sparsity_of_float32_states_counts_exactly_at_the_threshold():
    """The accumulator compares float32 states in float32 against the float64 threshold's float32 ceiling:
    values one float32 step either side of 1% of the peak (not representable in float32) land where the
    float64 comparison puts them."""
    peak = 3.0
    cut = 0.01 * peak  # 0.03 in float64
    nearest = np.float32(cut)
    below = nearest if float(nearest) < cut else np.nextafter(nearest, np.float32(0))  # largest float32 under cut
    above = np.nextafter(below, np.float32(1))                                # smallest float32 over it
    assert float(below) < cut < float(above)
    z = torch.tensor([[peak, below, -below, above, -above, 0.0, cut, 1.0]], dtype=torch.float32)
    acc = SideAccumulator(1, presets=["paper"])
    acc.update(0, z[None], torch.ones(1, 1, dtype=torch.bool), ["a"])
    expected = float((np.abs(z.double().numpy()) < cut).mean())
    assert acc.token_values[0][("sparsity", "")]["a"] == expected == sparsity(z.double())
