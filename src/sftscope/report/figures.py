"""Figures the report draws itself from the tables: key curves overlaid over relative depth across run
directories (models of several sizes or variants), the sweep with confidence intervals, the suggestion's
profiles. Each returns PNG bytes (or None when its table is missing), ready to embed."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sftscope.report.data import RunData
from sftscope.report.findings import layer_curves
from sftscope.results.schema import MODE_ALIGNMENT, Tables
from sftscope.suggest.compare import (
    higher_is_better,
    normalize_sweep,
    pick_metric,
    sweep_columns,
)

# panel title, table, metric, mode, first layer, y label
KEY_PANELS = [
    ("Base-vs-variant CKA", Tables.METRICS, "cka", MODE_ALIGNMENT, 0, "linear CKA"),
    ("Logit-lens next-token accuracy", Tables.PROBE, "lens_accuracy", None, 0, "accuracy"),
    ("Relative attention weight change", Tables.WEIGHTS, "attn_qkvo_delta_rel", None, 1, "||dW||_F / ||W_base||_F"),
]


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def key_curves(runs: list[RunData]) -> bytes | None:
    """1 x n panels (CKA, lens accuracy, weight change) over relative depth; one line per run and side,
    averaged over data sets; Base dashed."""
    panels = [p for p in KEY_PANELS if any(r.table(p[1]) is not None and (r.table(p[1])["metric"] == p[2]).any()
                                           for r in runs)]
    if not panels:
        return None
    fig = Figure(figsize=(4.6 * len(panels), 3.7), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colors = {}
    for ax, (title, table, metric, mode, first, ylabel) in zip(axes, panels):
        for run in runs:
            df = run.table(table)
            if df is None:
                continue
            lines: dict[str, list] = {}
            for (_, side, _), layers, values in layer_curves(df, metric, mode, first):
                lines.setdefault(side, []).append(pd.Series(values, index=layers))
            for side, series in sorted(lines.items()):
                mean = pd.concat(series, axis=1).mean(axis=1).sort_index()
                depth = mean.index.to_numpy(float) / max(mean.index.max(), 1)
                label = f"{run.name}: {side}" if len(runs) > 1 else str(side)
                color = colors.setdefault(label, "black" if len(runs) == 1 and side == "base" else f"C{len(colors) % 10}")
                ax.plot(depth, mean.to_numpy(), marker="o", markersize=2.5, linewidth=1.5, color=color, label=label,
                        linestyle="--" if side == "base" else "-")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("relative depth (layer / L)")
        ax.set_ylabel(ylabel)
        ax.set_xlim(0, 1)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7.5)
    return _png(fig)


def sweep_chart(sweep: pd.DataFrame) -> bytes | None:
    """Mean score per configuration with its confidence interval, best first (one metric, the judged one)."""
    sweep = normalize_sweep(sweep)
    cols = sweep_columns(sweep)
    if "spec" not in cols or "mean" not in cols:
        return None
    metric = pick_metric(sweep, cols)
    df = sweep if metric is None else sweep[sweep[cols["metric"]].astype(str) == metric]
    df = df[pd.to_numeric(df[cols["mean"]], errors="coerce").notna()]
    if df.empty:
        return None
    df = df.sort_values(cols["mean"], ascending=not higher_is_better(metric or ""))
    labels = [str(s) + (f" ({m})" if "method" in cols else "") for s, m in
              zip(df[cols["spec"]], df[cols["method"]] if "method" in cols else [""] * len(df))]
    y = np.arange(len(df))[::-1]
    fig = Figure(figsize=(7.5, 0.32 * len(df) + 1.4), layout="constrained")
    ax = fig.subplots()
    mean = df[cols["mean"]].to_numpy(float)
    if {"ci_low", "ci_high"} <= set(cols):
        err = np.abs(np.vstack([mean - df[cols["ci_low"]].to_numpy(float), df[cols["ci_high"]].to_numpy(float) - mean]))
        ax.errorbar(mean, y, xerr=np.nan_to_num(err), fmt="o", color="C0", ecolor="C0", capsize=3)
    else:
        ax.plot(mean, y, "o", color="C0")
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel(metric or "score")
    ax.set_title("Tuning sweep: mean and confidence interval per block choice", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def suggestion_profiles(profile: pd.DataFrame, suggestion: dict) -> bytes | None:
    """The suggest stage's profiles over depth (95% intervals as bands where measured) with the suggested blocks
    shaded."""
    metrics = [m for m in ("consecutive_layer_cka", "effective_rank", "lens_accuracy", "cka", "block_delta_fro")
               if (profile["metric"] == m).any()]
    if not metrics:
        return None
    L = int(suggestion.get("num_blocks") or profile["layer"].max())
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig = Figure(figsize=(4.0 * ncols, 3.0 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten()
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    for ax, metric in zip(axes, metrics):
        part = profile[profile["metric"] == metric].sort_values("layer")
        ax.plot(part["layer"], part["value"], marker="o", markersize=3, color="C0")
        if {"ci_low", "ci_high"} <= set(part.columns) and part["ci_low"].notna().all():
            ax.fill_between(part["layer"], part["ci_low"], part["ci_high"], color="C0", alpha=0.15, lw=0)
        # blocks [start, stop) move layers start..stop: shade that span of the layer axis
        ax.axvspan(suggestion["start"], suggestion["stop"], color="C2", alpha=0.15, label="suggested blocks")
        if suggestion.get("late_start", L) < L:
            ax.axvline(suggestion["late_start"], color="C3", linestyle=":", label="late region")
        ax.set_title(metric, fontsize=10)
        ax.set_xlim(-0.3, L + 0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer (block b moves layer b to b+1)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7.5)
    return _png(fig)
