"""Figures of the representation analysis, drawn from the tidy table only (never from a model).

plot_analysis(df, out_dir) writes, over relative depth (layer / L):
  <metric>__<dataset>.png       one panel per preset; Base dashed, each variant solid
  overview__<preset>.png        grid of metrics (rows) x data sets (columns)
  alignment__<dataset>.png      Base-vs-variant CKA (biased solid, debiased dotted), cosine, mean shift
  differences__<dataset>__<preset>.png   sample- and dataset-level differences (variant - Base)
Bands are drawn where the table has ci_low / ci_high columns.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sftscope.results.schema import (
    MODE_ALIGNMENT,
    MODE_DATASET_DIFF,
    MODE_SAMPLE_DIFF,
    MODE_VALUE,
)

BASE_SIDE = "base"
ALIGNMENT_PANELS = [("cka", ("cka", "cka_debiased")), ("cosine_similarity", ("cosine_similarity",)),
                    ("mean_shift", ("mean_shift",)), ("relative_mean_shift", ("relative_mean_shift",))]
_STYLE = {"cka_debiased": ":"}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", str(name))


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    """Finite layer rows, one value per (run, side, dataset, metric, preset, mode, layer), relative depth added."""
    df = df[(df["layer"] >= 0)].copy()
    values = pd.to_numeric(df["value"], errors="coerce")
    df = df[np.isfinite(values)]  # inf (a singular condition number) has no place on a linear axis
    keys = ["run", "side", "dataset", "metric", "preset", "mode", "layer"]
    for k in keys:
        if k not in df.columns:
            df[k] = ""
    bands = [c for c in ("ci_low", "ci_high") if c in df.columns]
    df = df.groupby(keys, as_index=False, dropna=False)[["value", *bands]].mean()
    depth = df.groupby(["run", "side", "dataset"], dropna=False)["layer"].transform("max").clip(lower=1)
    df["depth"] = df["layer"] / depth
    return df


class _Styler:
    """Stable colour per line across all figures: Base black and dashed, variants in the tab10 cycle."""

    def __init__(self, df: pd.DataFrame):
        self.multi_run = df["run"].nunique() > 1
        variants = sorted({(r, s) for r, s in zip(df["run"], df["side"]) if str(s).lower() != BASE_SIDE})
        self.colors = {key: f"C{i % 10}" for i, key in enumerate(variants)}

    def __call__(self, run, side) -> dict:
        label = f"{run}:{side}" if self.multi_run else str(side)
        if str(side).lower() == BASE_SIDE:
            return {"color": "black", "linestyle": "--", "label": label}
        return {"color": self.colors.get((run, side), "C0"), "linestyle": "-", "label": label}


def _draw_lines(ax, data: pd.DataFrame, styler: _Styler, linestyle: str | None = None, suffix: str = "") -> None:
    for (run, side), line in data.groupby(["run", "side"], sort=True, dropna=False):
        line = line.sort_values("depth")
        style = styler(run, side)
        if linestyle:
            style["linestyle"] = linestyle
        style["label"] += suffix
        ax.plot(line["depth"], line["value"], marker="o", markersize=2.5, linewidth=1.4, **style)
        if {"ci_low", "ci_high"} <= set(line.columns) and line["ci_low"].notna().any():
            ax.fill_between(line["depth"], line["ci_low"], line["ci_high"], color=style["color"], alpha=0.15,
                            linewidth=0)


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def _axes(nrows: int, ncols: int, width: float, height: float):
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _finish(ax, title: str, ylabel: str, legend: bool = True) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("relative depth (layer / L)")
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def metric_figures(values: pd.DataFrame, styler: _Styler, out_dir: Path) -> list[Path]:
    paths = []
    for (metric, dataset), data in values.groupby(["metric", "dataset"], sort=True):
        presets = sorted(data["preset"].unique())
        fig, axes = _axes(1, len(presets), 5.0, 3.6)
        for ax, preset in zip(axes[0], presets):
            _draw_lines(ax, data[data["preset"] == preset], styler)
            _finish(ax, f"{metric} on {dataset}" + (f" ({preset})" if preset else ""), metric)
        paths.append(_save(fig, out_dir / f"{_safe(metric)}__{_safe(dataset)}.png"))
    return paths


def overview_grids(values: pd.DataFrame, styler: _Styler, out_dir: Path) -> list[Path]:
    paths = []
    for preset, data in values.groupby("preset", sort=True):
        metrics, datasets = sorted(data["metric"].unique()), sorted(data["dataset"].unique())
        fig, axes = _axes(len(metrics), len(datasets), 3.3, 2.4)
        for i, metric in enumerate(metrics):
            for j, dataset in enumerate(datasets):
                ax = axes[i][j]
                _draw_lines(ax, data[(data["metric"] == metric) & (data["dataset"] == dataset)], styler)
                _finish(ax, dataset if i == 0 else "", metric if j == 0 else "", legend=(i == 0 and j == 0))
                if i < len(metrics) - 1:
                    ax.set_xlabel("")
        fig.suptitle(f"Representation metrics per layer, preset {preset or '-'}")
        paths.append(_save(fig, out_dir / f"overview__{_safe(preset or 'none')}.png"))
    return paths


def alignment_figures(aligned: pd.DataFrame, styler: _Styler, out_dir: Path) -> list[Path]:
    paths = []
    for dataset, data in aligned.groupby("dataset", sort=True):
        # pair metrics have one formula: every preset carries the same value, draw one
        presets = sorted(data["preset"].unique(), key=lambda p: (p != "paper", p))
        data = data[data["preset"] == presets[0]]
        panels = [(title, ms) for title, ms in ALIGNMENT_PANELS if data["metric"].isin(ms).any()]
        if not panels:
            continue
        fig, axes = _axes(1, len(panels), 4.3, 3.6)
        for ax, (title, metrics) in zip(axes[0], panels):
            for metric in metrics:
                suffix = " (debiased)" if metric == "cka_debiased" else ""
                _draw_lines(ax, data[data["metric"] == metric], styler, _STYLE.get(metric), suffix)
            _finish(ax, f"{title} vs Base on {dataset}", title)
        paths.append(_save(fig, out_dir / f"alignment__{_safe(dataset)}.png"))
    return paths


def difference_figures(diffs: pd.DataFrame, styler: _Styler, out_dir: Path) -> list[Path]:
    paths = []
    for (dataset, preset), data in diffs.groupby(["dataset", "preset"], sort=True):
        panels = sorted({(mode, metric) for mode, metric in zip(data["mode"], data["metric"])})
        ncols = min(4, len(panels))
        nrows = -(-len(panels) // ncols)
        fig, axes = _axes(nrows, ncols, 3.6, 2.8)
        for k, ax in enumerate(axes.flat):
            if k >= len(panels):
                ax.set_visible(False)
                continue
            mode, metric = panels[k]
            ax.axhline(0.0, color="gray", linewidth=0.8)
            _draw_lines(ax, data[(data["mode"] == mode) & (data["metric"] == metric)], styler)
            _finish(ax, f"{metric} [{mode}]", "variant - Base", legend=(k == 0))
        fig.suptitle(f"Change from Base on {dataset}, preset {preset or '-'}")
        paths.append(_save(fig, out_dir / f"differences__{_safe(dataset)}__{_safe(preset or 'none')}.png"))
    return paths


def plot_analysis(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write every analysis figure for a tidy table (columns run, side, dataset, layer, metric, preset, mode,
    value, n[, ci_low, ci_high]) into out_dir; returns the PNG paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if df.empty:
        return []
    df = _prepare(df)
    styler = _Styler(df)
    values = df[df["mode"] == MODE_VALUE]
    return (metric_figures(values, styler, out_dir) + overview_grids(values, styler, out_dir)
            + alignment_figures(df[df["mode"] == MODE_ALIGNMENT], styler, out_dir)
            + difference_figures(df[df["mode"].isin([MODE_SAMPLE_DIFF, MODE_DATASET_DIFF])], styler, out_dir))
