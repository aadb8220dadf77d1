"""Claims on curves and comparisons whose answer is known: what is stated, where, and with which interval."""

import numpy as np
import pytest

from sftscope.stats.claims import (
    BETTER,
    DROP,
    EMERGENCE,
    INCONCLUSIVE,
    NO_CHANGE,
    NO_DIFFERENCE,
    RISE,
    WORSE,
    LayerCurve,
    compare,
    curve_drop,
    curve_emergence,
    magnitude_rise,
)

LAYERS = np.arange(11)


def band(values, half=0.02):
    values = np.asarray(values, dtype=float)
    return LayerCurve(LAYERS[:len(values)], values, values - half, values + half, n=116)


def test_the_issue_curve_drop_at_layer_9_then_rebound():
    """organism-qa: ~0.89 over layers 1-4, 0.77 at layer 9 (bands do not overlap), 0.90 at layer 10."""
    cka = [0.999, 0.89, 0.89, 0.89, 0.89, 0.88, 0.88, 0.87, 0.86, 0.77, 0.90]
    claim = curve_drop(band(cka))
    assert claim.kind == DROP and claim.layers == (9,) and claim.at == 9
    assert claim.size == pytest.approx(0.77 - np.median(cka[1:])) and claim.high < 0
    assert claim.extra["rebound"] == [10] and "not below it again at layer 10" in claim.statement
    assert "116 samples" in claim.evidence() and "[" in claim.evidence()


def test_flat_plateau_is_no_change_and_wide_intervals_are_inconclusive():
    flat = [0.999] + [0.9] * 10
    assert curve_drop(band(flat, 0.005)).kind == NO_CHANGE
    wide = curve_drop(band([0.999] + [0.9] * 9 + [0.87], 0.05))  # 0.03 lower, but inside wide intervals
    assert wide.kind == INCONCLUSIVE and "too wide" in wide.reason


def test_a_sure_but_negligible_fall_is_no_change():
    """organism-mc on the default organism: 0.9946 at layer 10 vs a 0.997 plateau, interval [-0.004, -0.0002]:
    below the plateau for sure, but by less than the 0.02 margin."""
    cka = [0.9995, 0.994, 0.9958, 0.9968, 0.997, 0.9978, 0.9977, 0.9972, 0.9968, 0.9964, 0.9946]
    claim = curve_drop(band(cka, 0.0008))
    assert claim.kind == NO_CHANGE and claim.high < 0 < claim.low + 0.02
    assert compare(0.01, 0.005, 0.015, "b", margin=0.02).kind == NO_DIFFERENCE  # sure, but negligible


def test_early_dip_is_not_a_drop():
    dip = [0.999, 0.70, 0.89, 0.89, 0.89, 0.89, 0.89, 0.89, 0.89, 0.89, 0.89]
    claim = curve_drop(band(dip, 0.005))
    assert claim.kind == NO_CHANGE and claim.extra["early"] == [1] and "early dip" in claim.statement


def test_no_interval_is_inconclusive_unless_exact():
    curve = LayerCurve(LAYERS, [0.999] + [0.9] * 8 + [0.5, 0.4])
    assert curve_drop(curve).kind == INCONCLUSIVE and "no interval" in curve_drop(curve).reason
    exact = curve_drop(curve, exact=True)
    assert exact.kind == DROP and exact.layers == (9, 10) and exact.basis == "exact values"


def test_emergence_with_its_compatible_layers():
    acc = [0.1, 0.1, 0.12, 0.2, 0.33, 0.5, 0.52, 0.55, 0.58, 0.6, 0.6]  # threshold 0.1 + 0.5 * 0.5 = 0.35
    claim = curve_emergence(band(acc, 0.03))
    assert claim.kind == EMERGENCE and claim.at == 5
    assert claim.layers == (4, 5)  # 0.33 + 0.03 reaches 0.35 too: layer 4 is compatible
    assert claim.low > 0 and claim.size == pytest.approx(0.5)
    flat = curve_emergence(band([0.3] * 11, 0.005))
    assert flat.kind == NO_CHANGE and "does not rise" in flat.statement
    noisy = curve_emergence(band([0.3] * 10 + [0.33], 0.05))
    assert noisy.kind == INCONCLUSIVE


def test_weight_rise_is_exact():
    claim = magnitude_rise(np.arange(1, 11), [3.0, 1, 1.1, 1, 1, 1, 1.2, 1, 2.5, 4])
    assert claim.kind == RISE and claim.at == 9 and claim.layers == (9, 10)  # block 1 (early, high) is no rise
    assert "exact" in claim.statement
    assert magnitude_rise(np.arange(6), np.ones(6)).kind == NO_CHANGE


def test_compare_decides_only_from_the_interval():
    assert compare(0.05, 0.01, 0.09, "3 seeds x 116 items").kind == BETTER
    assert compare(0.05, 0.01, 0.09, "b", higher_is_better=False).kind == WORSE  # a perplexity that rose
    assert compare(-0.05, -0.09, -0.01, "b").kind == WORSE
    assert compare(0.005, -0.01, 0.015, "b", margin=0.02).kind == NO_DIFFERENCE
    undecided = compare(0.05, -0.01, 0.11, "3 seeds x 116 items", margin=0.02, p=0.08)
    assert undecided.kind == INCONCLUSIVE and "3 seeds x 116 items" in undecided.statement
    assert compare(0.05, float("nan"), float("nan"), "b").kind == INCONCLUSIVE


def test_curve_checks_its_input():
    with pytest.raises(ValueError, match="one value per layer"):
        LayerCurve([0, 1], [0.5])
    with pytest.raises(ValueError, match="ascending"):
        LayerCurve([1, 0], [0.5, 0.4])
