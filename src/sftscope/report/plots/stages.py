"""Figures of the probe and swap stages, read from their tidy tables (never from a model)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sftscope.report.plots.canvas import agg_figure


def depth_curves(ax, df: pd.DataFrame, label_prefix: str = "") -> None:
    """value over relative depth (layer / L), one line per side: the Base dashed, variants solid; the 95%
    interval as a band where the table has ci_low / ci_high."""
    for side, part in df.groupby("side", sort=False):
        part = part.sort_values("layer")
        depth = part["layer"] / max(part["layer"].max(), 1)
        (line,) = ax.plot(depth, part["value"], linestyle="--" if side == "base" else "-", marker=".",
                          label=f"{label_prefix}{side}")
        if {"ci_low", "ci_high"} <= set(part.columns) and part["ci_low"].notna().all():
            ax.fill_between(depth, part["ci_low"], part["ci_high"], color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel("relative depth (layer / L)")
    ax.grid(alpha=0.3)


def plot_probe(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One figure per data set: logit-lens accuracy, loss, KL to final, and Base-variant top-1 agreement."""
    paths = []
    panels = [("lens_accuracy", "next-token accuracy"), ("lens_loss", "next-token loss (nats)"),
              ("lens_kl_to_final", "KL(final || layer)"), ("lens_top1_agreement", "top-1 agreement with Base")]
    for dataset, part in df.groupby("dataset"):
        fig = agg_figure(figsize=(17, 3.8))
        axes = fig.subplots(1, 4)
        for ax, (metric, title) in zip(axes, panels):
            depth_curves(ax, part[part["metric"] == metric])
            ax.set_title(title)
            ax.legend(fontsize=8)
        fig.suptitle(f"Logit lens on {dataset}: where predictions emerge")
        fig.tight_layout()
        paths.append(out_dir / f"probe_{dataset}.png")
        fig.savefig(paths[-1], dpi=110)
    return paths


def plot_swap(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Per data set and metric: score of each segment swap (bars per head), unswapped models as lines."""
    paths = []
    for (dataset, metric), part in df.groupby(["dataset", "metric"]):
        swaps = part[part["segment"] >= 0]
        if swaps.empty:
            continue
        directions = sorted({h.split(" ")[0] for h in swaps["hybrid"]})
        fig = agg_figure(figsize=(6 * len(directions), 3.8))
        axes = fig.subplots(1, len(directions), squeeze=False)
        for ax, direction in zip(axes[0], directions):
            sub = swaps[swaps["hybrid"].str.startswith(direction + " ")]
            heads = sorted(sub["head"].unique())
            width = 0.8 / len(heads)
            for i, head in enumerate(heads):
                h = sub[sub["head"] == head].sort_values("segment")
                ax.bar(h["segment"] + i * width - 0.4 + width / 2, h["value"], width, label=f"head {head}")
            for ref, style in (("base", "--"), ("sft", "-")):
                val = part[(part["hybrid"] == ref)]["value"]
                if not val.empty:
                    ax.axhline(float(val.iloc[0]), linestyle=style, color="gray" if ref == "base" else "black",
                               label=f"{ref} (unswapped)")
            ax.set_xlabel("swapped segment (0 = first blocks)")
            ax.set_title(f"{direction}")
            ax.set_ylabel(metric)
            ax.legend(fontsize=8)
        fig.suptitle(f"Layer swapping on {dataset}: {metric}")
        fig.tight_layout()
        safe = metric.replace(":", "-")
        paths.append(out_dir / f"swap_{dataset}_{safe}.png")
        fig.savefig(paths[-1], dpi=110)
    return paths


def plot_weights(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Weight change per block over relative depth: attention q,k,v,o (the paper's), MLP and whole block."""
    blocks = df[(df["module"].isin(["attn_qkvo", "mlp", "block"])) & (df["layer"] >= 1)]
    if blocks.empty:
        return []
    fig = agg_figure(figsize=(12, 4))
    axes = fig.subplots(1, 2)
    for ax, suffix, title in ((axes[0], "_delta_fro", "||W_sft - W_base||_F"),
                              (axes[1], "_delta_rel", "relative change ||dW||_F / ||W_base||_F")):
        for (side, module), part in blocks[blocks["metric"].str.endswith(suffix)].groupby(["side", "module"]):
            part = part.sort_values("layer")
            ax.plot(part["layer"] / part["layer"].max(), part["value"], marker=".", label=f"{side}: {module}")
        ax.set_title(title)
        ax.set_xlabel("relative depth (block l / L)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Weight change per block")
    fig.tight_layout()
    path = out_dir / "weights.png"
    fig.savefig(path, dpi=110)
    return [path]
