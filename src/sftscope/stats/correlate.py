"""Correlation across layers between weight change and representation metrics (PAPER.md analysis 5).

Join: block l of the weights table <-> layer l of the analysis table, l = 1..L (layer l is the residual
stream after block l, so the representation a block writes is paired with that block's weight change).
Layer 0 (embeddings) and layer L + 1 (final norm / head) are left out: neither is a block.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from sftscope.errors import SftscopeError

LAYER_CONVENTION = "block l <-> layer l (output of block l), l = 1..L"
SERIES_KEYS = ["run", "metric", "preset", "mode", "dataset", "side"]
_METHODS = {"pearson": stats.pearsonr, "spearman": stats.spearmanr}


def weight_series(weights_df: pd.DataFrame, weight_metric: str = "attn_qkvo_delta_fro") -> pd.DataFrame:
    """Per weight side, the block series of `weight_metric`: columns side, layer (1..L), value."""
    rows = weights_df[weights_df["metric"] == weight_metric]
    if rows.empty:
        known = sorted(weights_df["metric"].unique()) if "metric" in weights_df else []
        raise SftscopeError(f"no {weight_metric!r} rows in the weights table; known: {', '.join(known)}")
    n_blocks = int(rows["layer"].max())
    rows = rows[(rows["layer"] >= 1) & (rows["layer"] <= n_blocks)]
    if rows.duplicated(["side", "layer"]).any():
        raise SftscopeError(f"{weight_metric} has several rows per block (a per-tensor metric?); pick a per-block "
                            f"metric such as attn_qkvo_delta_fro, mlp_delta_fro or block_delta_fro")
    return rows[["side", "layer", "value"]].reset_index(drop=True)


def correlate(weights_df: pd.DataFrame, metrics_df: pd.DataFrame, method: Sequence[str] = ("pearson", "spearman"),
              weight_metric: str = "attn_qkvo_delta_fro", min_layers: int = 3) -> pd.DataFrame:
    """Correlation over layers of `weight_metric` (per block) with every representation metric series.

    A series is one (run, metric, preset, mode, dataset, side) of `metrics_df` (the analysis table). It is
    paired with the weight change of the same side when the weights table has that side (sft with sft, dpo
    with dpo), and with every weight side otherwise (e.g. Base-only values). Output: one row per series,
    weight side and method with columns run, side, dataset, layer (-1), metric, preset, mode, value (the
    coefficient r or rho), n (layers joined), method, p_value, weight_metric, weight_side, layer_convention.
    Series with fewer than `min_layers` joined layers or a constant side are skipped and counted in
    `result.attrs["skipped"]`.
    """
    methods = [method] if isinstance(method, str) else list(method)
    unknown = [m for m in methods if m not in _METHODS]
    if unknown:
        raise SftscopeError(f"unknown correlation method(s) {unknown}; use {', '.join(_METHODS)}")
    weights = weight_series(weights_df, weight_metric)
    n_blocks = int(weights["layer"].max())
    metrics = metrics_df.copy()
    for col in SERIES_KEYS:
        if col not in metrics.columns:
            metrics[col] = ""
    metrics = metrics[(metrics["layer"] >= 1) & (metrics["layer"] <= n_blocks)]
    weight_sides = sorted(weights["side"].unique())
    out, skipped = [], []
    for key, series in metrics.groupby(SERIES_KEYS, sort=True, dropna=False):
        info = dict(zip(SERIES_KEYS, key))
        partners = [info["side"]] if info["side"] in weight_sides else weight_sides
        for weight_side in partners:
            joined = series.merge(weights[weights["side"] == weight_side], on="layer", suffixes=("", "_weight"))
            finite = np.isfinite(joined["value"].to_numpy(float)) & np.isfinite(joined["value_weight"].to_numpy(float))
            joined = joined[finite].sort_values("layer")  # inf (a singular condition number) has no rank or mean
            if len(joined) != joined["layer"].nunique():
                raise SftscopeError(f"several rows per layer for series {info}: filter the analysis table first")
            reason = _skip_reason(joined, min_layers)
            if reason:
                skipped.append({**info, "weight_side": weight_side, "reason": reason})
                continue
            for name in methods:
                r, p = _METHODS[name](joined["value_weight"].to_numpy(float), joined["value"].to_numpy(float))
                out.append({**info, "layer": -1, "value": float(r), "n": len(joined), "method": name,
                            "p_value": float(p), "weight_metric": weight_metric, "weight_side": weight_side,
                            "layer_convention": LAYER_CONVENTION,
                            "layers": f"{int(joined['layer'].min())}-{int(joined['layer'].max())}"})
    columns = ["run", "side", "dataset", "layer", "metric", "preset", "mode", "value", "n", "method", "p_value",
               "weight_metric", "weight_side", "layer_convention", "layers"]
    result = pd.DataFrame(out, columns=columns)
    result.attrs["skipped"] = skipped
    if skipped:
        warnings.warn(f"{len(skipped)} metric series skipped (fewer than {min_layers} layers or constant)",
                      stacklevel=2)
    return result


def _skip_reason(joined: pd.DataFrame, min_layers: int) -> str:
    """Why a joined series has no defined correlation, or '' if it has one."""
    if len(joined) < max(min_layers, 2):
        return f"{len(joined)} layers joined (< {max(min_layers, 2)})"
    if np.ptp(joined["value"].to_numpy(float)) == 0 or np.ptp(joined["value_weight"].to_numpy(float)) == 0:
        return "constant series: correlation undefined"
    return ""
