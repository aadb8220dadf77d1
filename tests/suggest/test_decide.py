"""The block choice on synthetic profiles with a known stable middle, and the spec round trips."""

import numpy as np
import pytest

from sftscope.suggest.decide import LayerProfiles, depth_spec, mask_for, suggest_blocks
from sftscope.tuning.blocks import parse_block_spec

L = 20


def base_profiles(**overrides) -> LayerProfiles:
    """20 blocks: an early transition (blocks 0-2), a stable middle, an unstable top (blocks 16-19)."""
    layer_cka = np.full(L, 0.99)
    layer_cka[:3] = [0.6, 0.7, 0.8]
    layer_cka[16:] = 0.85
    rank = np.concatenate([[0.2, 0.35, 0.5], np.full(L - 2, 0.6)])  # [L+1]: rises through the early blocks
    kwargs = dict(layer_cka=layer_cka, effective_rank=rank)
    kwargs.update(overrides)
    return LayerProfiles(**kwargs)


def test_known_plateau_with_every_profile():
    lens = np.array([0.02] * 17 + [0.3, 0.4, 0.45, 0.5])      # emerges at layer 17 -> block 16
    # exact values (no interval): 0.9 at layer 17 is below the 0.99 plateau, so the drop starts there (block 16);
    # the former rule ignored it (its margin, a quarter of the curve's range, was a shape heuristic)
    variant = np.array([0.99] * 17 + [0.9, 0.8, 0.7, 0.6])
    weights = np.concatenate([np.ones(18), [3.0, 5.0]])       # rises from block 18
    s = suggest_blocks(base_profiles(lens_accuracy=lens, variant_cka=variant, weight_change=weights), k=5)
    assert (s.start, s.stop) == (3, 16)
    assert s.late_start == 16 and s.late_sources == {"lens_emergence": 16, "variant_cka_drop": 16, "weight_rise": 18}
    assert s.early_end == 3
    assert s.mask == "01110"          # segments of 4 blocks; segment 0 only 1/4 covered
    assert s.depth == "15%-80%"
    assert parse_block_spec(s.depth, L).layers == tuple(range(3, 16))
    assert parse_block_spec(s.layer_spec, L).layers == s.layers
    assert "evidence:" in s.text() and len(s.evidence) >= 5


@pytest.mark.parametrize("source,profile,late", [
    ("lens_emergence", {"lens_accuracy": np.array([0.0] * 13 + [0.4] * 8)}, 12),
    ("variant_cka_drop", {"variant_cka": np.array([0.98] * 15 + [0.5] * 6)}, 14),
    ("weight_rise", {"weight_change": np.concatenate([np.ones(14), np.full(6, 4.0)])}, 14),
])
def test_each_late_signal_alone_cuts_the_plateau(source, profile, late):
    s = suggest_blocks(base_profiles(**profile))
    assert s.late_sources == {source: late}
    assert (s.start, s.stop) == (3, late)


def test_late_signals_use_the_profiles_intervals():
    """With intervals the claims decide: a drop that rebounds at the last layer still cuts (the issue's organism
    curve), a dip inside the intervals' noise does not, and the evidence states the interval."""
    cka = np.array([0.999] + [0.89] * 14 + [0.86, 0.82, 0.79, 0.77, 0.78, 0.90])  # layers 0-20, rebound at 20
    band = np.vstack([cka - 0.02, cka + 0.02])
    s = suggest_blocks(base_profiles(variant_cka=cka, variant_cka_ci=band))
    assert s.late_sources == {"variant_cka_drop": 15}  # layer 16 (0.82) is the first below the plateau
    assert any("drop: Base-vs-variant CKA falls below its plateau" in e and "[" in e for e in s.evidence)
    noisy = np.vstack([cka - 0.2, cka + 0.2])
    s = suggest_blocks(base_profiles(variant_cka=cka, variant_cka_ci=noisy))
    assert s.late_sources == {} and any(e.startswith("inconclusive:") for e in s.evidence)
    lens = np.array([0.02] * 17 + [0.3, 0.4, 0.45, 0.5])
    s = suggest_blocks(base_profiles(lens_accuracy=lens, lens_accuracy_ci=np.vstack([lens - 0.01, lens + 0.01])))
    assert s.late_sources == {"lens_emergence": 16}
    with pytest.raises(ValueError, match="variant_cka_ci"):
        base_profiles(variant_cka=cka, variant_cka_ci=band[:, :-1])


def test_without_late_evidence_the_stable_run_decides():
    s = suggest_blocks(base_profiles())
    assert s.late_start == L and (s.start, s.stop) == (3, 16)


def test_single_unstable_block_is_bridged_but_two_split():
    one = base_profiles()
    one.layer_cka[9] = 0.5
    assert (suggest_blocks(one).start, suggest_blocks(one).stop) == (3, 16)
    two = base_profiles()
    two.layer_cka[8:10] = 0.5
    s = suggest_blocks(two)
    assert (s.start, s.stop) == (10, 16)  # the longer of 3-7 (5 blocks) and 10-15 (6 blocks)


def test_nothing_stable_falls_back_to_middle():
    rng = np.random.default_rng(0)
    p = LayerProfiles(layer_cka=1 - rng.uniform(0.1, 0.9, 10) * np.array([1, 9] * 5),
                      effective_rank=np.linspace(0.1, 1.0, 11) ** 3)
    s = suggest_blocks(p, k=3)
    assert 0 <= s.start < s.stop <= 10 and len(s.mask) == 3


def test_profile_length_checked():
    with pytest.raises(ValueError, match="effective_rank"):
        LayerProfiles(layer_cka=np.ones(4), effective_rank=np.ones(4))


def test_depth_spec_round_trips_every_range():
    for n in range(1, 41):
        for start in range(n):
            for stop in range(start + 1, n + 1):
                assert parse_block_spec(depth_spec(start, stop, n), n).layers == tuple(range(start, stop)), (n, start, stop)


def test_mask_selects_majority_covered_segments():
    assert mask_for(0, 20, 20, 5) == "11111"
    assert mask_for(5, 6, 20, 5) == "01000"   # under half of any segment: the most covered one
    assert mask_for(6, 14, 20, 5) == "01110"  # segment 1 half covered counts
    for start, stop in [(3, 16), (1, 2), (10, 20)]:
        mask = mask_for(start, stop, 20, 4)
        assert "1" in mask and len(mask) == 4
