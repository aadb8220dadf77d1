"""Tidy rows from accumulators: one side's values and diagnostics, and Base-vs-variant differences/alignment."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING

from sftscope.errors import IncompatiblePairError
from sftscope.metrics.core import MetricUndefined
from sftscope.metrics.pair import pair_metrics
from sftscope.metrics.pooled import pooled_metrics
from sftscope.results import schema
from sftscope.results.schema import MODE_ALIGNMENT, MODE_DATASET_DIFF, MODE_SAMPLE_DIFF, MODE_VALUE, Row

if TYPE_CHECKING:
    from sftscope.metrics.accumulators import SideAccumulator

MODE_DIAGNOSTIC = schema.MODE_DIAGNOSTIC


def _presets_of(key_preset: str, presets: list[str]) -> list[str]:
    """A preset-free value ('' preset) is reported once under every preset, so each preset's table is complete."""
    return [key_preset] if key_preset else list(presets)


def _mean_row(side, dataset, layer, metric, preset, mode, values: list[float]) -> Row:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return Row(side, dataset, layer, metric, math.fsum(values) / len(values), len(values), preset, mode,
               extra={"std": std})


def _skip_row(side, dataset, layer, metric, preset, count, reason) -> Row:
    return Row(side, dataset, layer, f"skipped:{metric}", float(count), int(count), preset, MODE_DIAGNOSTIC,
               extra={"reason": reason})


def side_rows(acc: "SideAccumulator", side: str, dataset: str) -> list[Row]:
    """Value rows (token metrics averaged over samples, pooled metrics of P) and diagnostics of one side."""
    acc.finalize()
    rows: list[Row] = []
    for layer in range(acc.num_layers):
        for (metric, key_preset), by_sample in acc.token_values[layer].items():
            if by_sample:
                for preset in _presets_of(key_preset, acc.presets):
                    rows.append(_mean_row(side, dataset, layer, metric, preset, MODE_VALUE, list(by_sample.values())))
        n_pooled = len(acc.pooled_matrix(layer)[0])
        for (metric, preset), value in acc.pooled_values(layer).items():
            if isinstance(value, str):
                rows.append(_skip_row(side, dataset, layer, metric, preset, n_pooled, value))
            else:
                rows.append(Row(side, dataset, layer, metric, value, n_pooled, preset, MODE_VALUE))
        # n = samples checked; the samples left out for holding non-finite values are their own row
        checked = acc.samples_seen(layer)
        rows.append(Row(side, dataset, layer, "nonfinite_values", float(acc.nonfinite_values[layer]), checked,
                        "", MODE_DIAGNOSTIC))
        rows.append(Row(side, dataset, layer, "nonfinite_samples_excluded", float(acc.nonfinite_samples[layer]),
                        checked, "", MODE_DIAGNOSTIC))
        for (metric, key_preset), reasons in acc.skips[layer].items():
            for preset in _presets_of(key_preset, acc.presets):
                rows.extend(_skip_row(side, dataset, layer, metric, preset, c, r) for r, c in reasons.items())
    return rows


def _aligned(base: "SideAccumulator", variant: "SideAccumulator", layer: int):
    b_ids, b_rows = base.pooled_matrix(layer)
    v_ids, v_rows = variant.pooled_matrix(layer)
    if b_ids == v_ids:
        return b_ids, b_rows, v_rows, True
    v_index = {sid: i for i, sid in enumerate(v_ids)}
    common = [i for i, sid in enumerate(b_ids) if sid in v_index]
    ids = [b_ids[i] for i in common]
    return ids, b_rows[common], v_rows[[v_index[sid] for sid in ids]], False


def pair_rows(base_acc: "SideAccumulator", variant_acc: "SideAccumulator", variant: str, dataset: str) -> list[Row]:
    """sample_diff, dataset_diff and alignment rows of a variant against its Base (side = variant name)."""
    if base_acc.num_layers != variant_acc.num_layers:
        raise IncompatiblePairError(f"Base has {base_acc.num_layers} layers, {variant!r} has {variant_acc.num_layers}")
    presets = [p for p in base_acc.presets if p in variant_acc.presets]
    rows: list[Row] = []
    for layer in range(base_acc.num_layers):
        for key, base_values in base_acc.token_values[layer].items():
            var_values = variant_acc.token_values[layer].get(key, {})
            diffs = [var_values[s] - v for s, v in base_values.items() if s in var_values]
            for preset in _presets_of(key[1], presets) if diffs and key[1] in ("", *presets) else []:
                rows.append(_mean_row(variant, dataset, layer, key[0], preset, MODE_SAMPLE_DIFF, diffs))

        ids, x, y, same_samples = _aligned(base_acc, variant_acc, layer)
        if not ids:
            continue
        if same_samples:
            base_vals, var_vals = base_acc.pooled_values(layer), variant_acc.pooled_values(layer)
        else:  # a sample dropped on one side only (non-finite): compare the metric on the shared samples
            base_vals, var_vals = (pooled_metrics(m, presets, base_acc.alpha) for m in (x, y))
        for (metric, preset), b in base_vals.items():
            v = var_vals.get((metric, preset))
            if preset not in presets or v is None:
                continue
            reason = next((r if isinstance(r, str) else r.reason for r in (b, v)
                           if isinstance(r, (str, MetricUndefined))), None)
            diff = math.nan if reason else v - b
            if reason or math.isnan(diff):
                rows.append(_skip_row(variant, dataset, layer, metric, preset, len(ids), reason
                                      or "difference undefined (both sides infinite)"))
            else:
                rows.append(Row(variant, dataset, layer, metric, diff, len(ids), preset, MODE_DATASET_DIFF))

        for metric, value in pair_metrics(x, y).items():
            for preset in presets:
                if isinstance(value, MetricUndefined):
                    rows.append(_skip_row(variant, dataset, layer, metric, preset, len(ids), value.reason))
                else:
                    rows.append(Row(variant, dataset, layer, metric, value, len(ids), preset, MODE_ALIGNMENT))
    return rows
