"""Honest check of a training-free suggestion against the tuning sweep's measured best block choice.

Reads the `sweep_summary` table that `sftscope sweep` writes (sftscope.tuning.summary): its column names are
fixed, so they are named here once, by the role each plays.
"""

from __future__ import annotations

import math

import pandas as pd

from sftscope.errors import SftscopeError
from sftscope.stats.scores import higher_is_better
from sftscope.suggest.decide import Suggestion
from sftscope.tuning.blocks import parse_block_spec

# role -> column of the sweep summary (tuning.summary.summarize writes exactly these)
SWEEP_COLUMNS = {
    "spec": "blocks", "method": "method", "metric": "metric", "mean": "value", "ci_low": "ci_low",
    "ci_high": "ci_high", "trainable": "trainable_params", "seeds": "seeds", "diff": "vs_all_diff",
    "diff_ci_low": "vs_all_ci_low", "diff_ci_high": "vs_all_ci_high",
}


def normalize_sweep(df: pd.DataFrame) -> pd.DataFrame:
    """The summary with each score named 'task metric' where a dataset (task) column tells tasks apart, so two
    tasks sharing a metric name are never mixed."""
    if "dataset" in df.columns and "metric" in df.columns and df["dataset"].fillna("").astype(str).str.len().any():
        df = df.assign(metric=(df["dataset"].fillna("").astype(str) + " " + df["metric"].astype(str)).str.strip())
    return df


def sweep_columns(df: pd.DataFrame) -> dict[str, str]:
    """Role -> column name for the roles this sweep summary has (a summary of a subset of columns is fine)."""
    return {role: name for role, name in SWEEP_COLUMNS.items() if name in df.columns}


def pick_metric(df: pd.DataFrame, cols: dict[str, str]) -> str | None:
    """The metric a summary is judged on: of the sweep's first evaluation task (task_order 0) where recorded,
    the first accuracy-like one, else the first listed."""
    if "metric" not in cols:
        return None
    if "task_order" in df.columns and df["task_order"].notna().any():
        df = df[df["task_order"] == df["task_order"].min()]
    metrics = list(dict.fromkeys(df[cols["metric"]].astype(str)))
    # headline scores first: per-kind breakdowns ('metric:kind') and loss-like metrics after them
    ranked = sorted(metrics, key=lambda m: (":" in m.split(" ")[-1], not higher_is_better(m)))
    return ranked[0] if ranked else None


def _layers(spec: str, num_blocks: int) -> tuple[int, ...] | None:
    try:
        return parse_block_spec(str(spec), num_blocks).layers
    except SftscopeError:
        return None  # a control spec such as "early" or one for another depth: not comparable by layers


def _entry(row: pd.Series, cols: dict[str, str], layers) -> dict:
    out = {"spec": str(row[cols["spec"]]), "layers": list(layers) if layers else None,
           "mean": float(row[cols["mean"]])}
    for role in ("ci_low", "ci_high", "trainable", "diff", "diff_ci_low", "diff_ci_high"):
        if role in cols and pd.notna(row[cols[role]]):
            out[role] = float(row[cols[role]])
    return out


def _jaccard(a, b) -> float:
    a, b = set(a or ()), set(b or ())
    return len(a & b) / len(a | b) if a | b else 0.0


def compare_with_sweep(suggestion: Suggestion, sweep_summary: pd.DataFrame, metric: str | None = None,
                       tune_eval: pd.DataFrame | None = None, tune_items: pd.DataFrame | None = None) -> dict:
    """Agreement of the suggestion with the sweep's best LoRA block choice on one metric: rank, score gap,
    layer overlap and the difference from all-layer LoRA (the nearest evaluated spec stands in if the exact
    suggested blocks were not in the sweep). With the sweep's gathered `tune_eval` (and `tune_items`) tables,
    also the paired comparison suggested - best over seeds and items ("vs_best": sftscope.tuning.summary.
    paired_difference's keys, its claim decided by sftscope.stats.claims)."""
    sweep_summary = normalize_sweep(sweep_summary)
    cols = sweep_columns(sweep_summary)
    if "spec" not in cols or "mean" not in cols:
        raise SftscopeError(f"a sweep summary needs the columns blocks and value (sftscope sweep writes them); it has "
                            f"{list(sweep_summary.columns)}")
    df = sweep_summary
    if "method" in cols and (df[cols["method"]] == "lora").any():
        df = df[df[cols["method"]] == "lora"]
    metric = metric or pick_metric(df, cols)
    if metric is not None and "metric" in cols:
        df = df[df[cols["metric"]].astype(str) == metric]
    df = df[pd.to_numeric(df[cols["mean"]], errors="coerce").notna()]
    if df.empty:
        raise SftscopeError(f"sweep summary has no LoRA rows for metric {metric!r}")
    higher = higher_is_better(metric or "")
    df = df.sort_values(cols["mean"], ascending=not higher, kind="stable")
    layers = [_layers(s, suggestion.num_blocks) for s in df[cols["spec"]]]
    overlap = [_jaccard(suggestion.layers, lay) for lay in layers]
    pos = max(range(len(df)), key=lambda i: (overlap[i], -i))  # exact match, else the nearest (best on ties)
    best, mine = _entry(df.iloc[0], cols, layers[0]), _entry(df.iloc[pos], cols, layers[pos])
    sign = 1.0 if higher else -1.0
    result = {
        "metric": metric, "higher_is_better": higher, "n_configs": len(df), "suggested_layers": list(suggestion.layers),
        "suggested": mine, "evaluated": overlap[pos] == 1.0, "overlap_with_evaluated": overlap[pos],
        "best": best, "rank": pos + 1, "agreement": overlap[pos] == 1.0 and pos == 0,
        "overlap_with_best": _jaccard(suggestion.layers, layers[0]),
        "score_gap": sign * (best["mean"] - mine["mean"]),
    }
    if {"ci_low", "ci_high"} <= set(best):
        result["within_best_ci"] = bool(best["ci_low"] <= mine["mean"] <= best["ci_high"])
    all_layer = [i for i, lay in enumerate(layers) if lay == tuple(range(suggestion.num_blocks))]
    if all_layer:
        ref = _entry(df.iloc[all_layer[0]], cols, layers[all_layer[0]])
        result["all_layer"] = ref
        result["vs_all_layer"] = sign * (mine["mean"] - ref["mean"])
    if not math.isfinite(result["score_gap"]):
        result["score_gap"] = None
    if tune_eval is not None and pos != 0:
        from sftscope.tuning.summary import compare_configs
        row = df.iloc[pos]
        dataset = str(row["dataset"]) if "dataset" in df.columns and pd.notna(row["dataset"]) else ""
        raw = str(metric)[len(dataset) + 1:] if dataset and str(metric).startswith(dataset + " ") else str(metric)
        method = str(row[cols["method"]]) if "method" in cols else "lora"
        try:
            result["vs_best"] = compare_configs(tune_eval, tune_items, (method, mine["spec"]),
                                                (method, best["spec"]), dataset, raw)
        except KeyError:
            pass  # scores of another shape than the summary's: the comparison stays the summary's
    return result
