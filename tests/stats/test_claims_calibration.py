"""Calibration of the claims over many simulated data sets: false claims stay near the nominal 5% (at most 7%)
where nothing happens, and true effects of a stated size are found.

Layer curves: 10 blocks (layers 0-10), each layer's value = truth + noise with standard deviation sigma,
correlated across layers (rho) as layers measured on the same samples are; its 95% interval is value +-
1.96 sigma_hat with sigma_hat estimated (chi-square, 40 df), as a bootstrap would give. Sweeps: 3 seeds x 116
items of 0/1 scores from a logistic model with item difficulty shared by the configurations, a seed effect per
trained model (tau_seed, logit units) and a configuration x item effect shared by the seeds (tau_item, the
component a seeds-only interval misses).
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sftscope.report.findings import best_vs_all
from sftscope.stats.claims import (
    BETTER,
    DROP,
    EMERGENCE,
    NO_CHANGE,
    WORSE,
    LayerCurve,
    compare,
    curve_drop,
    curve_emergence,
)
from sftscope.stats.scores import crossed_mean_variance, difference_test
from sftscope.suggest.compare import sweep_columns

LAYERS = np.arange(11)
MAX_FALSE = 0.07  # nominal 5%


def noisy_curves(truth, sigma, rho, reps, seed):
    """reps simulated (values [11], low [11], high [11]) around `truth` [11]."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=(reps, 1))
    noise = sigma * (np.sqrt(rho) * common + np.sqrt(1 - rho) * rng.normal(size=(reps, len(truth))))
    values = np.asarray(truth) + noise
    sigma_hat = sigma * np.sqrt(rng.chisquare(40, size=values.shape) / 40)
    return values, values - 1.96 * sigma_hat, values + 1.96 * sigma_hat


def drop_claims(truth, sigma=0.02, rho=0.5, reps=500, seed=0):
    values, low, high = noisy_curves(truth, sigma, rho, reps, seed)
    return [curve_drop(LayerCurve(LAYERS, v, lo, hi, n=116)) for v, lo, hi in zip(values, low, high)]


PLATEAU = np.array([0.999] + [0.89] * 10)


@pytest.mark.parametrize("rho", [0.0, 0.6])
@pytest.mark.parametrize("truth", [PLATEAU, np.full(11, 0.5), np.r_[0.999, 0.79, [0.89] * 9]],
                         ids=["plateau", "noise-only", "early-dip"])
def test_no_false_drops(truth, rho):
    claims = drop_claims(truth, rho=rho)
    assert np.mean([c.kind == DROP for c in claims]) <= MAX_FALSE


def test_known_drop_with_rebound_is_found_where_it_is():
    truth = PLATEAU.copy()
    truth[8:10] = [0.80, 0.77]  # the shape: a fall at layers 8-9, back on the plateau at layer 10
    claims = drop_claims(truth, seed=1)
    found = [c for c in claims if c.kind == DROP]
    assert len(found) >= 0.9 * len(claims)
    assert np.mean([set(c.layers) <= {8, 9} for c in found]) >= 0.95  # the rebound layer is not called a drop
    assert np.mean([c.low <= -0.12 + (0.89 - np.median(truth[1:])) <= c.high for c in found]) >= 0.9


def test_flat_plateau_is_called_no_change_with_precise_layers():
    claims = drop_claims(PLATEAU, sigma=0.003, seed=2)
    assert np.mean([c.kind == NO_CHANGE for c in claims]) >= 0.9


def test_emergence_calibration():
    flat = np.full(11, 0.3)
    values, low, high = noisy_curves(flat, 0.02, 0.3, 500, 3)
    claims = [curve_emergence(LayerCurve(LAYERS, v, lo, hi)) for v, lo, hi in zip(values, low, high)]
    assert np.mean([c.kind == EMERGENCE for c in claims]) <= MAX_FALSE
    rise = 0.1 + 0.5 / (1 + np.exp(-(LAYERS - 5.5) * 2))  # half of the gain is reached at layer 6
    values, low, high = noisy_curves(rise, 0.02, 0.3, 500, 4)
    claims = [curve_emergence(LayerCurve(LAYERS, v, lo, hi)) for v, lo, hi in zip(values, low, high)]
    assert np.mean([c.kind == EMERGENCE for c in claims]) >= 0.95
    assert np.mean([6 in c.layers for c in claims if c.kind == EMERGENCE]) >= 0.9  # the compatible layers hold it


def simulate_configs(reps, deltas, tau_seed, tau_item, seed, seeds=3, items=116):
    """0/1 scores [reps, seeds, items] of configurations whose logits are shifted by `deltas`, on shared items."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 1.5, (reps, 1, items))

    def scores(theta):
        logit = theta + rng.normal(0, tau_seed, (reps, seeds, 1)) + difficulty + rng.normal(0, tau_item, (reps, 1, items))
        return (rng.random((reps, seeds, items)) < 1 / (1 + np.exp(-logit))).astype(float)
    return [scores(0.5 + delta) for delta in deltas]


def simulate_pair(reps, delta, tau_seed, tau_item, seed):
    """Configuration A (logit shifted by delta) and the reference."""
    return simulate_configs(reps, (delta, 0.0), tau_seed, tau_item, seed)


def claims_of(a, b):
    mv = crossed_mean_variance(a - b, 1 / a.shape[-1], quantized=2)
    low, high, p = difference_test(mv, bounded=True)
    return [compare(d, lo, hi, "3 seeds x 116 items", margin=0.02).kind for d, lo, hi in zip(mv.mean, low, high)]


REGIMES = {"items only": (0.0, 0.0), "item effects": (0.0, 0.8), "seed effects": (0.4, 0.0),
           "both": (0.3, 0.5), "strong item effects": (0.0, 1.5)}


@pytest.mark.parametrize("regime", REGIMES)
def test_no_false_better_claims_on_equal_configurations(regime):
    a, b = simulate_pair(2000, 0.0, *REGIMES[regime], seed=5)
    kinds = claims_of(a, b)
    assert np.mean([k in (BETTER, WORSE) for k in kinds]) <= MAX_FALSE
    assert np.mean([k == BETTER for k in kinds]) <= MAX_FALSE / 2


def test_the_seeds_only_test_is_fooled_where_the_items_carry_noise():
    """The regime that makes this calibration able to fail: a paired t-test over 3 seed means ignores the
    configuration x item effect the seeds share and claims a difference far too often."""
    a, b = simulate_pair(2000, 0.0, *REGIMES["strong item effects"], seed=6)
    d = (a - b).mean(-1)
    with np.errstate(divide="ignore", invalid="ignore"):  # equal seed means: the old summary reported p = 0
        t = d.mean(-1) / (d.std(-1, ddof=1) / np.sqrt(3))
    p = np.where(np.isfinite(t), 2 * stats.t.sf(np.abs(t), 2), 0.0)
    assert np.mean(p < 0.05) > 0.08
    assert np.mean([k in (BETTER, WORSE) for k in claims_of(a, b)]) <= MAX_FALSE


def test_a_true_gain_of_15_points_is_found():
    a, b = simulate_pair(1000, 1.0, *REGIMES["item effects"], seed=7)
    assert 0.13 < (a - b).mean() < 0.17  # +1 logit is about +0.15 accuracy here
    assert np.mean([k == BETTER for k in claims_of(a, b)]) >= 0.75


def test_the_reports_best_of_several_is_not_a_false_better():
    """Five masks equal to all-layer LoRA: the report picks the best and its interval is simultaneous over the
    five comparisons, so 'better' stays rare although the best of five is selected for looking good."""
    reps = 300
    ref, *masks = simulate_configs(reps, [0.0] * 6, 0.2, 0.5, seed=8)
    stats_ = [crossed_mean_variance(x - ref, 1 / 116, quantized=2) for x in masks]
    false = 0
    for rep in range(reps):
        rows = [dict(method="lora", blocks="all", metric="exact_match", value=ref[rep].mean())]
        for i, (x, mv) in enumerate(zip(masks, stats_)):
            rows.append(dict(method="lora", blocks=f"m{i}", metric="exact_match", value=x[rep].mean(),
                             vs_all_diff=float(mv.mean[rep]), vs_all_se=float(np.sqrt(mv.var[rep])),
                             vs_all_df=float(mv.df[rep]), vs_all_n=3, vs_all_items=116))
        df = pd.DataFrame(rows)
        claim = best_vs_all(df, sweep_columns(df), "exact_match")
        false += claim is not None and claim.kind == BETTER
    assert false / reps <= MAX_FALSE
