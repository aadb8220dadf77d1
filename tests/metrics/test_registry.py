import math

import numpy as np
import pytest
import torch

from sftscope.errors import UnknownNameError
from sftscope.metrics.accumulators import SideAccumulator
from sftscope.metrics.core import MetricUndefined
from sftscope.metrics.pair import PairContext
from sftscope.metrics.registry import (DIFFERENCE, METRICS, PAIR, POOLED, SIMILARITY, TOKEN, get_metric, list_metrics,
                                       pair_values, pooled_values)
from sftscope.metrics.pooled import PooledContext
from sftscope.metrics.token import TokenBatch
from sftscope.stats.uncertainty import _CHANGE

GEN = torch.Generator().manual_seed(0)
D = 12


def _value(spec, *arrays, preset="paper"):
    """The one-shot value, or None where the metric is undefined."""
    try:
        return spec.fn(*arrays) if spec.kind == PAIR else spec.fn(*arrays, preset=preset)
    except MetricUndefined:
        return None


def _generic(rows, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, D, generator=g, dtype=torch.float64) * 2 + torch.randn(D, generator=g, dtype=torch.float64)


def test_every_metric_is_listed_with_kind_presets_and_reading():
    rows = list_metrics()
    assert {r["name"] for r in rows} == set(METRICS)
    assert {"prompt_entropy", "curvature", "sparsity", "dataset_entropy", "effective_rank", "rank_deficiency",
            "spectral_norm", "condition_number", "l2_norm", "cka", "cka_debiased", "cosine_similarity",
            "mean_shift", "relative_mean_shift"} <= set(METRICS)
    for r in rows:
        assert r["kind"] in ("token", "pooled", "pair") and r["description"] and r["reading"].startswith("higher")
        assert r["change"] in _CHANGE  # every direction is one the robustness test can turn into "change"


@pytest.mark.parametrize("name", list(METRICS))
def test_registry_entry_is_consistent(name):
    spec = METRICS[name]
    assert spec.presets and spec.min_size >= 1 and spec.modes
    if spec.kind == TOKEN:
        assert spec.reason is not None and spec.gram_form is None and spec.ci is None
    if spec.kind == PAIR:
        assert spec.direction != DIFFERENCE and spec.unchanged is not None
        assert spec.ci is None or spec.gram_form is not None  # a bootstrap interval needs the resampled form
    else:
        assert spec.direction == DIFFERENCE and spec.gram_form is None and spec.ci is None


@pytest.mark.parametrize("name", [s for s in METRICS if METRICS[s].kind == TOKEN])
def test_token_kernel_batched_equals_one_shot_and_low_precision_equals_float64(name):
    spec = METRICS[name]
    lengths = [0, 1, 2, 3, 7, 16]
    samples = [_generic(t, seed=t) for t in lengths]
    z = torch.zeros(len(lengths), max(lengths) + 2, D, dtype=torch.float64)  # two extra pad columns
    for i, s in enumerate(samples):
        z[i, :s.shape[0]] = s
    batch = TokenBatch(z, torch.tensor(lengths))
    for preset in spec.presets:
        values = spec.compute(batch, preset).tolist()
        for t, s, v in zip(lengths, samples, values):
            one = _value(spec, s, preset=preset) if t else None
            why = spec.reason(t, D, v)
            assert (why is None) == (one is not None), (t, why, one)
            if one is not None:
                assert v == pytest.approx(one, rel=1e-12, abs=1e-15)
        low = samples[-1].to(torch.bfloat16)
        assert _value(spec, low, preset=preset) == pytest.approx(_value(spec, low.double().numpy(), preset=preset),
                                                                 rel=1e-12)


@pytest.mark.parametrize("name", [s for s in METRICS if METRICS[s].kind == POOLED])
def test_pooled_metric_streamed_in_batches_equals_one_shot(name):
    spec = METRICS[name]
    p = _generic(30)
    acc = SideAccumulator(1, token_ids=set(), pooled_dtype=torch.float64)
    for start in range(0, 30, 7):  # rows of a layer arrive in batches, as single-token samples
        rows = p[start:start + 7]
        acc.update(0, rows[:, None, :], torch.ones(len(rows), 1, dtype=torch.bool),
                   [f"s{i:02d}" for i in range(start, start + len(rows))])
    shared = pooled_values(PooledContext(p), spec.presets)
    for preset in spec.presets:
        one = _value(spec, p, preset=preset)
        assert acc.pooled_values(0)[(name, preset)] == pytest.approx(one, rel=1e-12)
        assert shared[(name, preset)] == pytest.approx(one, rel=1e-12)
        low = p.to(torch.bfloat16)
        assert _value(spec, low, preset=preset) == pytest.approx(_value(spec, low.double().numpy(), preset=preset),
                                                                 rel=1e-12)


@pytest.mark.parametrize("name", [s for s in METRICS if METRICS[s].kind == PAIR])
def test_pair_metric_shared_context_and_resampled_form_equal_one_shot(name):
    spec = METRICS[name]
    x = _generic(25, seed=1)
    y = x @ torch.randn(D, D, generator=GEN, dtype=torch.float64) * 0.3 + x + 0.5
    one = _value(spec, x, y)
    assert pair_values(PairContext(x, y))[name] == pytest.approx(one, rel=1e-12)
    low_x, low_y = x.to(torch.bfloat16), y.to(torch.bfloat16)
    assert _value(spec, low_x, low_y) == pytest.approx(_value(spec, low_x.double(), low_y.double()), rel=1e-12)
    if spec.gram_form is not None:
        ctx = PairContext(x, y)
        rng = np.random.default_rng(0)
        draws = [rng.integers(0, 25, size=25) for _ in range(5)]
        weights = torch.tensor(np.stack([np.bincount(d, minlength=25) for d in draws]), dtype=torch.float64)
        replicates = spec.gram_form(ctx, weights).tolist()
        for d, r in zip(draws, replicates):
            assert r == pytest.approx(_value(spec, x[d], y[d]), rel=1e-9)
        assert float(spec.gram_form(ctx, torch.ones(1, 25, dtype=torch.float64))[0]) == pytest.approx(one, rel=1e-9)


@pytest.mark.parametrize("name", list(METRICS))
def test_undefined_on_tiny_input_defined_from_min_size(name):
    spec = METRICS[name]

    def values(size):
        arrays = (_generic(size, seed=2),) if spec.kind != PAIR else (_generic(size, seed=2), _generic(size, seed=3))
        return [_value(spec, *arrays, preset=p) for p in spec.presets]

    assert all(v is None for v in values(0))
    assert any(v is None for v in values(spec.min_size - 1))
    assert all(v is not None and not math.isnan(v) for v in values(spec.min_size))


def test_pair_metrics_read_unchanged_on_identical_sides():
    x = _generic(20)
    for spec in (s for s in METRICS.values() if s.kind == PAIR):
        assert spec.fn(x, x) == pytest.approx(spec.unchanged, abs=1e-12)
        assert (spec.direction == SIMILARITY) == (spec.unchanged == 1.0)


def test_unknown_metric_lists_known_names():
    with pytest.raises(UnknownNameError, match="cka"):
        get_metric("ckaa")
