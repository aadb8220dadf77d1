"""correlate: known answers on synthetic layer series; join convention; the heatmap file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sftscope.errors import SftscopeError
from sftscope.report.plots.correlation import plot_correlation
from sftscope.stats import LAYER_CONVENTION, correlate

L = 12


def weights_table(values, side="sft", metric="attn_qkvo_delta_fro"):
    """Blocks 1..L plus the embedding (layer 0) and head (L+1) rows a real weights table also has."""
    rows = [dict(run="r", side=side, dataset="", layer=l + 1, metric=metric, value=v, n=10, module="attn_qkvo")
            for l, v in enumerate(values)]
    rows += [dict(run="r", side=side, dataset="", layer=0, metric="weight_delta_fro", value=9.0, n=10,
                  module="embed_tokens")]
    return pd.DataFrame(rows)


def metric_rows(values, metric, side="sft", mode="alignment", dataset="gsm8k", layers=None):
    layers = range(len(values)) if layers is None else layers
    return [dict(run="r", side=side, dataset=dataset, layer=l, metric=metric, preset="paper", mode=mode, value=v,
                 n=100) for l, v in zip(layers, values)]


def test_known_answers():
    w = np.arange(1.0, L + 1)
    rng = np.random.default_rng(0)
    metrics = pd.DataFrame(
        metric_rows([5.0] + list(-2 * w + 3), "cosine_similarity")   # layer 0 first: must be ignored
        + metric_rows([0.0] + list(np.exp(w)), "mean_shift")         # monotone, nonlinear
        + metric_rows([0.0] + list(rng.normal(size=L)), "noise"))
    out = correlate(weights_table(w), metrics)
    get = {(r.metric, r.method): r for r in out.itertuples()}
    assert get[("cosine_similarity", "pearson")].value == pytest.approx(-1.0)
    assert get[("cosine_similarity", "spearman")].value == pytest.approx(-1.0)
    assert get[("mean_shift", "spearman")].value == pytest.approx(1.0)
    assert get[("mean_shift", "pearson")].value < 0.9
    assert get[("noise", "pearson")].p_value > 0.05 and get[("noise", "spearman")].p_value > 0.05
    assert (out["n"] == L).all() and (out["layers"] == f"1-{L}").all()
    assert (out["layer_convention"] == LAYER_CONVENTION).all()


def test_join_pairs_block_l_with_layer_l():
    w = np.array([1.0, 2.0, 3.0, 10.0])
    # layer l carries w[l-1]: perfect correlation only if block l is joined with layer l (not l-1 or l+1)
    metrics = pd.DataFrame(metric_rows([0.0, 1.0, 2.0, 3.0, 10.0, 77.0], "m"))   # layer 5 = beyond the blocks
    out = correlate(weights_table(w), metrics, method="pearson")
    assert out.iloc[0].value == pytest.approx(1.0) and out.iloc[0].n == 4


def test_sides_pair_with_their_own_weight_change():
    w_sft, w_dpo = np.arange(1.0, L + 1), np.arange(L, 0.0, -1)
    weights = pd.concat([weights_table(w_sft, "sft"), weights_table(w_dpo, "dpo")])
    metrics = pd.DataFrame(metric_rows([0.0] + list(w_sft), "cka", side="sft")
                           + metric_rows([0.0] + list(w_sft), "erank", side="base", mode="value"))
    out = correlate(weights, metrics, method="pearson")
    cka = out[out.metric == "cka"]
    assert list(cka.weight_side) == ["sft"] and cka.iloc[0].value == pytest.approx(1.0)
    erank = out[out.metric == "erank"].set_index("weight_side").value   # a Base-only series meets every side
    assert erank["sft"] == pytest.approx(1.0) and erank["dpo"] == pytest.approx(-1.0)


def test_constant_and_short_series_are_skipped_and_counted():
    metrics = pd.DataFrame(metric_rows([1.0] * (L + 1), "flat") + metric_rows([1.0, 2.0], "short"))
    with pytest.warns(UserWarning, match="2 metric series skipped"):
        out = correlate(weights_table(np.arange(1.0, L + 1)), metrics)
    assert out.empty and {s["metric"] for s in out.attrs["skipped"]} == {"flat", "short"}


def test_bad_inputs_are_clear_errors():
    metrics = pd.DataFrame(metric_rows([0.0] * 3, "m"))
    with pytest.raises(SftscopeError, match="no 'nope' rows"):
        correlate(weights_table(np.arange(1.0, 4)), metrics, weight_metric="nope")
    with pytest.raises(SftscopeError, match="unknown correlation method"):
        correlate(weights_table(np.arange(1.0, 4)), metrics, method="kendall")


def test_heatmap_is_written(tmp_path):
    w = np.arange(1.0, L + 1)
    metrics = pd.DataFrame(metric_rows([0.0] + list(-w), "cosine_similarity")
                           + metric_rows([0.0] + list(w ** 2), "mean_shift", dataset="mmlu"))
    path = plot_correlation(correlate(weights_table(w), metrics), tmp_path / "fig" / "corr.png")
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
