"""Headline findings and warnings of the report, computed from the tidy tables only (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sftscope.results.schema import MODE_ALIGNMENT, MODE_DIAGNOSTIC
from sftscope.suggest.compare import (
    compare_with_sweep,
    higher_is_better,
    normalize_sweep,
    pick_metric,
    sweep_columns,
)
from sftscope.suggest.curves import drop_from_plateau, emergence_index, rise_to_end
from sftscope.suggest.decide import Suggestion
from sftscope.tuning.blocks import format_layers

PRESET_ORDER = ("paper", "canonical", "")


@dataclass
class Finding:
    """One headline: a short label, its value, a sentence of detail, and the run it belongs to."""

    key: str
    value: str
    detail: str
    run: str = ""


def _fmt(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else (f"{x:.3g}" if abs(x) < 1e4 else f"{x:.3e}")


def layer_curves(df: pd.DataFrame, metric: str, mode: str | None = None, min_layer: int = 0):
    """Yield ((run, side, dataset), layers [n], values [n]) of one metric, one preset (paper first), finite."""
    part = df[(df["metric"] == metric) & (df["layer"] >= min_layer)]
    if mode is not None and "mode" in part.columns:
        part = part[part["mode"] == mode]
    part = part[np.isfinite(pd.to_numeric(part["value"], errors="coerce"))]
    if part.empty:
        return
    if "preset" in part.columns:
        presets = [p for p in PRESET_ORDER if p in set(part["preset"].fillna(""))] or [part["preset"].iloc[0]]
        part = part[part["preset"].fillna("") == presets[0]]
    keys = [k for k in ("run", "side", "dataset") if k in part.columns]
    for key, group in part.groupby(keys, sort=True, dropna=False):
        line = group.groupby("layer")["value"].mean().sort_index()
        yield tuple(key) if isinstance(key, tuple) else (key,), line.index.to_numpy(int), line.to_numpy(float)


def _where(layers_by_dataset: dict[str, int], depth: int) -> str:
    found = sorted(set(layers_by_dataset.values()))
    span = str(found[0]) if len(found) == 1 else f"{found[0]}-{found[-1]}"
    return f"layer {span} of {depth}"


def cka_findings(metrics: pd.DataFrame) -> list[Finding]:
    """Per run and variant: the layer from which Base-vs-variant CKA stays below its plateau."""
    out, by_pair = [], {}
    for (run, side, dataset), layers, values in layer_curves(metrics, "cka", MODE_ALIGNMENT):
        by_pair.setdefault((run, side), []).append((dataset, layers, values))
    for (run, side), curves in by_pair.items():
        drops, notes = {}, []
        for dataset, layers, values in curves:
            drop = drop_from_plateau(values)
            if drop is None:
                notes.append(f"{dataset}: no late drop (final {values[-1]:.3f})")
            else:
                drops[dataset] = int(layers[drop[0]])
                notes.append(f"{dataset}: plateau {drop[1]:.3f}, below it from layer {layers[drop[0]]} "
                             f"(final {values[-1]:.3f})")
        depth = int(max(l.max() for _, l, _ in curves))
        value = _where(drops, depth) if drops else "no late drop"
        out.append(Finding(f"CKA leaves its plateau ({side})", value, "; ".join(notes), run))
    return out


def lens_findings(probe: pd.DataFrame) -> list[Finding]:
    """Per run and side: the first layer whose lens accuracy reaches half the final layer's gain over layer 0."""
    out, by_side = [], {}
    for (run, side, dataset), layers, values in layer_curves(probe, "lens_accuracy"):
        by_side.setdefault((run, side), []).append((dataset, layers, values))
    for (run, side), curves in by_side.items():
        found, notes = {}, []
        for dataset, layers, values in curves:
            i = emergence_index(values)
            if i is None:
                notes.append(f"{dataset}: accuracy does not rise ({values[0]:.3f} -> {values[-1]:.3f})")
            else:
                found[dataset] = int(layers[i])
                notes.append(f"{dataset}: {values[i]:.3f} at layer {layers[i]} (layer 0 {values[0]:.3f}, "
                             f"final {values[-1]:.3f})")
        depth = int(max(l.max() for _, l, _ in curves))
        out.append(Finding(f"Logit lens emerges ({side})", _where(found, depth) if found else "no emergence",
                           "; ".join(notes), run))
    return out


def weight_findings(weights: pd.DataFrame) -> list[Finding]:
    """Per run and variant: the block whose attention (q,k,v,o) weights changed most, and the late rise."""
    out = []
    metric = "attn_qkvo_delta_fro" if (weights["metric"] == "attn_qkvo_delta_fro").any() else "block_delta_fro"
    for (run, side, _), layers, values in layer_curves(weights, metric, min_layer=1):
        top = int(layers[-1])
        values, layers = values[layers <= top], layers[layers <= top]
        peak = int(layers[int(np.argmax(values))])
        rise = rise_to_end(values)
        shape = (f"rises from block {layers[rise]} to the top" if rise is not None else "no late rise")
        out.append(Finding(f"Weight change peaks ({side})", f"block {peak} of {top}",
                           f"{metric}: peak {values.max():.3g}, first block {values[0]:.3g}, last {values[-1]:.3g} "
                           f"(last/first {values[-1] / max(values[0], 1e-30):.2f}); {shape}", run))
    return out


def swap_findings(swap: pd.DataFrame) -> list[Finding]:
    """Per run and data set: the segment whose SFT blocks help the Base most (task score, else token accuracy)."""
    out = []
    if "segment" not in swap.columns or "hybrid" not in swap.columns:
        return out
    for (run, dataset), part in swap.groupby(["run", "dataset"], sort=True):
        metrics = list(dict.fromkeys(part["metric"]))
        metric = next((m for m in metrics if m.startswith("task:") and higher_is_better(m)),
                      "token_accuracy" if "token_accuracy" in metrics else metrics[0])
        rows = part[(part["metric"] == metric) & (part["segment"] >= 0)]
        if rows.empty:
            continue
        higher = higher_is_better(metric)
        best = rows.loc[rows["value"].idxmax() if higher else rows["value"].idxmin()]
        refs = {h: float(part[(part["hybrid"] == h) & (part["metric"] == metric)]["value"].iloc[0])
                for h in ("base", "sft") if ((part["hybrid"] == h) & (part["metric"] == metric)).any()}
        ref_text = ", ".join(f"{k} {v:.3g}" for k, v in refs.items())
        out.append(Finding(f"Best swap ({dataset})", f"{best['hybrid']}",
                           f"{metric} {best['value']:.3g} (unswapped: {ref_text}; blocks {best.get('blocks', '')})", run))
    return out


def _ci(row: pd.Series, cols: dict, low: str = "ci_low", high: str = "ci_high") -> str:
    if low in cols and high in cols and pd.notna(row[cols[low]]) and pd.notna(row[cols[high]]):
        return f" [{row[cols[low]]:.3g}, {row[cols[high]]:.3g}]"
    return ""


def sweep_findings(sweep: pd.DataFrame) -> list[Finding]:
    """The sweep's best block choice against all-layer LoRA, with confidence intervals where present."""
    sweep = normalize_sweep(sweep)
    cols = sweep_columns(sweep)
    if "spec" not in cols or "mean" not in cols:
        return []
    metric = pick_metric(sweep, cols)
    df = sweep if metric is None else sweep[sweep[cols["metric"]].astype(str) == metric]
    df = df[pd.to_numeric(df[cols["mean"]], errors="coerce").notna()]
    if df.empty:
        return []
    higher = higher_is_better(metric or "")
    best = df.loc[df[cols["mean"]].idxmax() if higher else df[cols["mean"]].idxmin()]
    label = f"{best[cols['spec']]}" + (f" ({best[cols['method']]})" if "method" in cols else "")
    detail = f"{metric or 'score'} {best[cols['mean']]:.3g}{_ci(best, cols)}"
    is_all = df[cols["spec"]].astype(str).str.lower().isin(["all", "mask:all"]) | \
        df[cols["spec"]].astype(str).str.fullmatch(r"(mask:)?1+")
    if "method" in cols:
        is_all &= df[cols["method"]].astype(str) == "lora"
    if is_all.any():
        ref = df[is_all].iloc[0]
        detail += f" vs all-layer LoRA {ref[cols['mean']]:.3g}{_ci(ref, cols)}"
    if "diff" in cols and pd.notna(best[cols["diff"]]):
        detail += f"; paired difference {best[cols['diff']]:+.3g}{_ci(best, cols, 'diff_ci_low', 'diff_ci_high')}"
    run = str(best["run"]) if "run" in df.columns else ""
    return [Finding("Best block choice (sweep)", label, detail, run)]


def suggestion_findings(data: dict, sweep: pd.DataFrame | None, run: str = "") -> tuple[list[Finding], dict | None]:
    """The training-free suggestion and, when a sweep exists, its honest comparison with the sweep's best."""
    s = Suggestion.from_dict(data)
    findings = [Finding("Suggested blocks (training-free)", f"{format_layers(s.layers)} of 0-{s.num_blocks - 1}",
                        f"mask {s.mask} (k={s.k}), depth {s.depth}, {s.layer_spec}", run)]
    comparison = None
    if sweep is not None:
        try:
            comparison = compare_with_sweep(s, sweep)
        except Exception as exc:  # noqa: BLE001  a summary of another shape: say so instead of failing the report
            findings.append(Finding("Suggestion vs sweep", "not comparable", str(exc), run))
            return findings, None
        rank = f"rank {comparison['rank']} of {comparison['n_configs']}"
        verdict = ("agrees with the best" if comparison["agreement"] else rank if comparison["evaluated"]
                   else f"nearest evaluated: {rank}")
        findings.append(Finding("Suggestion vs sweep", verdict,
                                f"{comparison['metric']}: suggested {comparison['suggested']['mean']:.3g} "
                                f"({comparison['suggested']['spec']}), best {comparison['best']['mean']:.3g} "
                                f"({comparison['best']['spec']}), gap {_fmt(comparison['score_gap'])}", run))
    return findings, comparison


def correlation_findings(corr: pd.DataFrame) -> list[Finding]:
    """Per run: Pearson r of weight change with cosine similarity (the paper's strong negative), and the
    representation metric that tracks weight change most strongly."""
    out = []
    part = corr[corr["method"] == "pearson"] if "method" in corr.columns else corr
    part = part[np.isfinite(pd.to_numeric(part["value"], errors="coerce"))]
    for run, group in part.groupby("run", sort=True):
        strongest = group.loc[group["value"].abs().idxmax()]
        cosine = group[group["metric"] == "cosine_similarity"]
        blocks = f", {int(strongest['n'])} blocks" if "n" in group.columns and pd.notna(strongest["n"]) else ""
        p = f", p = {strongest['p_value']:.2g}" if "p_value" in group.columns else ""
        detail = (f"strongest: {strongest['metric']} [{strongest.get('mode', '')}, {strongest.get('preset', '')}, "
                  f"{strongest.get('side', '')}] on {strongest['dataset']}: r = {strongest['value']:+.2f}{p}{blocks}; "
                  f"weight metric {strongest.get('weight_metric', 'weight change')}")
        if cosine.empty:
            out.append(Finding("Strongest correlation with weight change", f"r = {strongest['value']:+.2f}", detail, run))
        else:
            r = cosine.groupby("dataset")["value"].mean()
            out.append(Finding("Weight change vs cosine similarity", f"r = {r.mean():+.2f}",
                               "Pearson across blocks, mean over data sets ("
                               + ", ".join(f"{d} {v:+.2f}" for d, v in r.items()) + f"); {detail}", run))
    return out


def warnings(df: pd.DataFrame) -> list[str]:
    """Plain sentences for every diagnostic a reader must know: truncation, short/empty samples, non-finite
    activations, skipped metrics (with their reasons)."""
    if "mode" not in df.columns:
        return []
    diag = df[(df["mode"] == MODE_DIAGNOSTIC) & (pd.to_numeric(df["value"], errors="coerce") > 0)]
    out = []
    for (run, side, dataset, metric), g in diag.groupby(["run", "side", "dataset", "metric"], sort=True, dropna=False):
        where = f"{run} / {side} / {dataset}"
        if metric == "truncated_samples":
            out.append(f"{where}: {int(g['value'].sum())} of {int(g['n'].max())} samples cut at max_length")
        elif metric in ("too_short_samples", "empty_texts_dropped"):
            out.append(f"{where}: {int(g['value'].sum())} samples {metric.replace('_', ' ')}")
        elif metric in ("nonfinite_values", "nonfinite_samples_excluded"):
            out.append(f"{where}: {metric.replace('_', ' ')} at layers {format_layers(g['layer'].astype(int).unique())} "
                       f"(total {int(g['value'].sum())})")
        elif str(metric).startswith("skipped:"):
            reasons = g["reason"].fillna("").unique() if "reason" in g.columns else []
            out.append(f"{where}: {metric} at {g['layer'].nunique()} layer(s), up to {int(g['value'].max())} samples "
                       f"({'; '.join(r for r in reasons if r) or 'no reason recorded'})")
    return out
