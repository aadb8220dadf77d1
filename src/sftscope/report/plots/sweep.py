"""Figures of a tuning sweep, drawn from the sweep_summary table only (never from a model).

plot_sweep(summary, out_dir) writes, per task and metric:
  sweep_scores__<task>__<metric>.png     mean over seeds per configuration with its 95% interval (seeds x items), the
                                         trainable-parameter count annotated, all-layer LoRA as a band, the Base
                                         as a dashed line
  sweep_segments__<task>__<metric>.png   single-segment masks only, one panel per k (3, 5, 10 ...): score over
                                         segment index, the inverted-U check; drawn when some k has >= 2 of them
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from sftscope.report.plots.canvas import agg_figure
from sftscope.tuning.blocks import BlockSpec

ROLE_ORDER = {"mask": 0, "reference": 1, "lora-control": 2, "full-control": 3}
ROLE_COLOR = {"mask": "C0", "reference": "C3", "lora-control": "C2", "full-control": "C4"}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", str(name))


def _order(part: pd.DataFrame) -> pd.DataFrame:
    """Masks by k, width and position (10000, 01000, ..., 01100), then all-layer, LoRA controls, full controls."""
    def key(row):
        spec = BlockSpec.parse(row["blocks"])
        mask = spec.body if spec.kind == "mask" else ""
        return (ROLE_ORDER.get(row["role"], 9), len(mask), mask.count("1"), mask.find("1"), spec.text)
    return part.assign(_key=part.apply(key, axis=1)).sort_values("_key").drop(columns="_key")


def _params(n: float) -> str:
    if math.isnan(n):
        return "?"
    return f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}k" if n >= 1e3 else f"{n:.0f}"


def _reference_band(ax, part: pd.DataFrame, horizontal: bool = True) -> None:
    ref = part[part["role"] == "reference"]
    if ref.empty:
        return
    r = ref.iloc[0]
    ax.axhline(r["value"], color=ROLE_COLOR["reference"], lw=1, label="all-layer LoRA (mean, 95% CI)")
    if not math.isnan(r["ci_low"]):
        ax.axhspan(r["ci_low"], r["ci_high"], color=ROLE_COLOR["reference"], alpha=0.15)
    if not math.isnan(r["base_value"]):
        ax.axhline(r["base_value"], color="black", ls="--", lw=1, label="Base")


def _errors(part: pd.DataFrame):
    low = (part["value"] - part["ci_low"]).fillna(0).clip(lower=0)
    high = (part["ci_high"] - part["value"]).fillna(0).clip(lower=0)
    return [low.to_numpy(), high.to_numpy()]


def plot_scores(part: pd.DataFrame, path: Path) -> Path:
    """Score per configuration with error bars and parameter counts; all-layer LoRA as a band."""
    part = _order(part).reset_index(drop=True)
    fig = agg_figure(figsize=(max(6.0, 0.55 * len(part) + 2), 4.2))
    ax = fig.subplots()
    colors = [ROLE_COLOR.get(r, "gray") for r in part["role"]]
    ax.bar(part.index, part["value"], color=colors, alpha=0.75, yerr=_errors(part), capsize=3)
    top = (part["ci_high"].fillna(part["value"])).to_numpy()
    for i, (y, n) in enumerate(zip(top, part["trainable_params"])):
        ax.annotate(_params(n), (i, y), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7)
    _reference_band(ax, part)
    labels = [s if m == "lora" else f"full:{s}" for m, s in zip(part["method"], part["blocks"])]
    ax.set_xticks(part.index, labels, rotation=60, ha="right", fontsize=8)
    dataset, metric = part["dataset"].iloc[0], part["metric"].iloc[0]
    seeds = part["n"].max()
    ax.set_ylabel(metric)
    counts = part["uncertainty"].iloc[0] if "uncertainty" in part.columns else "seeds only"
    ax.set_title(f"{dataset}: {metric} per configuration\nmean over <= {seeds} seeds, 95% interval ({counts})\n"
                 "numbers = trainable parameters", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_segments(part: pd.DataFrame, path: Path) -> Path | None:
    """Score over segment index of single-segment masks, one panel per k: the inverted-U check."""
    singles = part[(part["role"] == "mask") & (part["segment"] >= 0)]
    ks = sorted(k for k, g in singles.groupby("k") if len(g) >= 2)
    if not ks:
        return None
    fig = agg_figure(figsize=(4.5 * len(ks), 3.6))
    axes = fig.subplots(1, len(ks), squeeze=False, sharey=True)
    for ax, k in zip(axes[0], ks):
        g = singles[singles["k"] == k].sort_values("segment")
        ax.errorbar(g["segment"], g["value"], yerr=_errors(g), marker="o", capsize=3, color=ROLE_COLOR["mask"],
                    label="LoRA on one segment")
        _reference_band(ax, part)
        ax.set_xticks(range(k))
        ax.set_xlabel(f"segment index (k = {k}; 0 = bottom)")
        ax.set_title(f"k = {k}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(part["metric"].iloc[0])
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{part['dataset'].iloc[0]}: single-segment sweep (inverted-U check)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_sweep(summary: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Both figure kinds for every (task, metric) of the summary (per-kind breakdowns like 'em:city' skipped)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    scores = summary[~summary["metric"].str.contains(":")]
    for (dataset, metric), part in scores.groupby(["dataset", "metric"]):
        stem = f"{_safe(dataset)}__{_safe(metric)}"
        paths.append(plot_scores(part, out_dir / f"sweep_scores__{stem}.png"))
        segments = plot_segments(part, out_dir / f"sweep_segments__{stem}.png")
        if segments is not None:
            paths.append(segments)
    return paths
