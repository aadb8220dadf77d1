import numpy as np
import pytest

from sftscope.errors import UnknownNameError
from sftscope.metrics.registry import METRICS, get_metric, list_metrics


def test_every_metric_is_listed_with_kind_presets_and_reading():
    rows = list_metrics()
    assert {r["name"] for r in rows} == set(METRICS)
    assert {"prompt_entropy", "curvature", "sparsity", "dataset_entropy", "effective_rank", "rank_deficiency",
            "spectral_norm", "condition_number", "l2_norm", "cka", "cka_debiased", "cosine_similarity",
            "mean_shift", "relative_mean_shift"} <= set(METRICS)
    for r in rows:
        assert r["kind"] in ("token", "pooled", "pair") and r["description"] and r["reading"].startswith("higher")


def test_registered_functions_are_callable_on_their_kind():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(8, 5)), rng.normal(size=(8, 5))
    for spec in METRICS.values():
        value = spec.fn(a, b) if spec.kind == "pair" else spec.fn(a)
        assert np.isfinite(value)


def test_unknown_metric_lists_known_names():
    with pytest.raises(UnknownNameError, match="cka"):
        get_metric("ckaa")
