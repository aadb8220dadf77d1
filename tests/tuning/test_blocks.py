"""Block specs: segment arithmetic, depth ranges, layer lists, seeded random blocks, errors that say what to do."""

import pytest

from sftscope.errors import SftscopeError
from sftscope.tuning.blocks import (format_layers, parse_block_spec, same_size_controls, segment_bounds,
                                    segment_masks)


@pytest.mark.parametrize("num_layers,k", [(n, k) for n in (5, 7, 16, 32, 40, 64) for k in (1, 3, 5, 10) if k <= n])
def test_segments_partition_all_layers_in_order(num_layers, k):
    bounds = segment_bounds(num_layers, k)
    assert bounds[0][0] == 0 and bounds[-1][1] == num_layers
    assert all(hi == next_lo for (_, hi), (next_lo, _) in zip(bounds, bounds[1:]))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1  # equal segments up to one layer
    one_hot = [parse_block_spec("0" * i + "1" + "0" * (k - i - 1), num_layers).layers for i in range(k)]
    assert sorted(b for layers in one_hot for b in layers) == list(range(num_layers))


def test_uneven_segments_16_layers_5_segments():
    assert segment_bounds(16, 5) == [(0, 3), (3, 6), (6, 9), (9, 12), (12, 16)]
    assert parse_block_spec("01100", 16).layers == tuple(range(3, 9))
    sel = parse_block_spec("mask:00001", 16)
    assert sel.layers == (12, 13, 14, 15) and sel.k == 5 and sel.kind == "mask"


def test_ten_segment_mask_on_32_layers():
    sel = parse_block_spec("0001000000", 32)
    assert sel.layers == (9, 10, 11) and sel.k == 10  # floor(3*32/10)=9 .. floor(4*32/10)=12


@pytest.mark.parametrize("num_layers,expected", [(16, range(3, 13)), (32, range(6, 26)), (40, range(8, 32)),
                                                 (64, range(12, 52)), (10, range(2, 8))])
def test_depth_range_floor_start_ceil_end(num_layers, expected):
    assert parse_block_spec("20%-80%", num_layers).layers == tuple(expected)
    assert parse_block_spec("depth: 20% - 80%", num_layers).layers == tuple(expected)


def test_depth_full_range_is_all_layers():
    assert parse_block_spec("0%-100%", 16).layers == parse_block_spec("all", 16).layers == tuple(range(16))


def test_layer_list_inclusive_ranges_merged_and_sorted():
    sel = parse_block_spec("15,8-12,9", 16)
    assert sel.layers == (8, 9, 10, 11, 12, 15) and sel.kind == "layers"
    assert format_layers(sel.layers) == "8-12,15"
    # Unprefixed 0/1 strings are masks; the prefix selects single layers 10 / 1.
    assert parse_block_spec("layers:10", 16).layers == (10,)
    assert parse_block_spec("10", 16).layers == tuple(range(8))


def test_random_block_is_seeded_and_contiguous():
    runs = {parse_block_spec("random:4", 16, seed=s).layers for s in range(20)}
    assert len(runs) > 1
    for layers in runs:
        assert len(layers) == 4 and layers == tuple(range(layers[0], layers[0] + 4)) and layers[-1] < 16
    assert parse_block_spec("random:4", 16, seed=3) == parse_block_spec("random:4", 16, seed=3)


def test_random_layers_distinct_sorted_seeded():
    picks = [parse_block_spec("random-layers:4", 16, seed=s).layers for s in range(10)]
    assert len(set(picks)) > 1
    for layers in picks:
        assert len(set(layers)) == 4 and list(layers) == sorted(layers) and all(0 <= b < 16 for b in layers)
    assert parse_block_spec("random-layers:16", 16).layers == tuple(range(16))


@pytest.mark.parametrize("spec,fragment", [
    ("01200", "uses only 0 and 1"), ("0000", "selects no segment"), ("0" * 17 + "1", "only 16 layers"),
    ("3-20", "out of range"), ("12-8", "reversed range"), ("20%-10%", "start < end"), ("20%-120%", "<= 100%"),
    ("random:0", "N >= 1"), ("random:17", "N <= 16"), ("random-layers:x", "random-layers:N"), ("", "cannot read"),
    ("mask:0a1", "only 0 and 1"), ("8-12,,15", "bad layer list"),
])
def test_bad_specs_raise_with_advice(spec, fragment):
    with pytest.raises(SftscopeError, match=fragment.replace("(", r"\(")):
        parse_block_spec(spec, 16)


def test_segment_masks_lists_every_contiguous_run():
    masks = segment_masks(5)
    assert len(masks) == 15 and len(set(masks)) == 15 and "11111" in masks
    assert masks[:5] == ["10000", "01000", "00100", "00010", "00001"]
    for m in masks:
        ones = m.strip("0")
        assert set(ones) == {"1"}  # one contiguous run
    assert "11111" not in segment_masks(5, include_full=False)
    assert len(segment_masks(10)) == 55


def test_same_size_controls_select_the_same_number_of_blocks():
    sel = parse_block_spec("01100", 16)
    for name, spec in same_size_controls(sel).items():
        other = parse_block_spec(spec, 16, seed=1)
        assert len(other.layers) == len(sel.layers), name
    assert parse_block_spec(same_size_controls(sel)["late"], 16).layers == tuple(range(10, 16))
