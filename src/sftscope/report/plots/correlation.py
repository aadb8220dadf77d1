"""Heatmap of weight-change vs representation-metric correlations (reads a `correlate` table, never a model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sftscope.errors import SftscopeError
from sftscope.report.plots.canvas import agg_figure


def _series_label(row: pd.Series) -> str:
    parts = [row["metric"], row["mode"], row["preset"], row["side"]]
    return " / ".join(str(p) for p in parts if p not in ("", None) and not (isinstance(p, float) and np.isnan(p)))


def plot_correlation(corr_df: pd.DataFrame, path: str | Path, alpha: float = 0.05) -> Path:
    """Save a heatmap: rows = metric series, columns = dataset x method; cell = coefficient, * where p < alpha."""
    if corr_df.empty:
        raise SftscopeError("no correlations to plot (every series was skipped or the table is empty)")
    df = corr_df.copy()
    df["series"] = df.apply(_series_label, axis=1)
    sides = df["weight_side"].nunique() > 1
    df["column"] = df["dataset"].astype(str) + " · " + df["method"] + \
        (" · " + df["weight_metric"] + "(" + df["weight_side"] + ")" if sides else "")
    values = df.pivot_table(index="series", columns="column", values="value", aggfunc="first")
    pvals = df.pivot_table(index="series", columns="column", values="p_value", aggfunc="first")
    pvals = pvals.reindex(index=values.index, columns=values.columns)
    height = 1.2 + 0.35 * len(values.index)
    width = 3.0 + 1.1 * len(values.columns)
    fig = agg_figure(figsize=(width, height))
    ax = fig.subplots()
    image = ax.imshow(values.to_numpy(float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(values.columns)), values.columns, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(values.index)), values.index, fontsize=8)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            r, p = values.iat[i, j], pvals.iat[i, j]
            if np.isfinite(r):
                star = "*" if np.isfinite(p) and p < alpha else ""
                ax.text(j, i, f"{r:.2f}{star}", ha="center", va="center", fontsize=7,
                        color="white" if abs(r) > 0.6 else "black")
    weight = ", ".join(sorted(df["weight_metric"].unique()))
    ax.set_title(f"Correlation across layers with {weight} (* p < {alpha})", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04, label="coefficient")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
