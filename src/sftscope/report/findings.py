"""Headline findings and warnings of the report, computed from the tidy tables only (pure functions).

Every finding states a claim decided by sftscope.stats.claims (the rules are in its docstring; `suggest` uses
the same ones) together with its evidence: the size, its interval and what it rests on (`evidence`), and the
figure it can be checked on (`figure`, a figure file's stem in the run directory or a figure the report draws).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from sftscope.results.schema import MODE_ALIGNMENT, MODE_DIAGNOSTIC
from sftscope.stats.claims import (
    DROP,
    EMERGENCE,
    INCONCLUSIVE,
    MARGINS,
    NO_CHANGE,
    RISE,
    Claim,
    LayerCurve,
    compare,
    curve_drop,
    curve_emergence,
    magnitude_rise,
)
from sftscope.stats.scores import MeanVariance, is_proportion, mean_interval
from sftscope.suggest.compare import (
    compare_with_sweep,
    higher_is_better,
    normalize_sweep,
    pick_metric,
    sweep_columns,
)
from sftscope.suggest.decide import Suggestion
from sftscope.tuning.blocks import format_layers

PRESET_ORDER = ("paper", "canonical", "")
SWEEP_CHART, SUGGESTION_PROFILES = "sweep-chart", "suggestion-profiles"  # figures the report draws itself


@dataclass
class Finding:
    """One headline: a short label, its value, a sentence of detail, the run it belongs to, the claim's kind
    (drop, no change, inconclusive, ...; "" for a plain description), its evidence (size [interval], what it
    rests on) and the stem of the figure to check it on."""

    key: str
    value: str
    detail: str
    run: str = ""
    kind: str = ""
    evidence: str = ""
    figure: str = ""


def _file_safe(name: str) -> str:
    """A data set name as plots.analysis writes it into a figure's file name."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", str(name))


def _fmt(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else (f"{x:.3g}" if abs(x) < 1e4 else f"{x:.3e}")


def _part(df: pd.DataFrame, metric: str, mode: str | None, min_layer: int) -> pd.DataFrame:
    """Finite rows of one metric (and mode), one preset (paper first)."""
    part = df[(df["metric"] == metric) & (df["layer"] >= min_layer)]
    if mode is not None and "mode" in part.columns:
        part = part[part["mode"] == mode]
    part = part[np.isfinite(pd.to_numeric(part["value"], errors="coerce"))]
    if not part.empty and "preset" in part.columns:
        presets = [p for p in PRESET_ORDER if p in set(part["preset"].fillna(""))] or [part["preset"].iloc[0]]
        part = part[part["preset"].fillna("") == presets[0]]
    return part


def _keys(part: pd.DataFrame) -> list[str]:
    return [k for k in ("run", "side", "dataset") if k in part.columns]


def layer_curves(df: pd.DataFrame, metric: str, mode: str | None = None, min_layer: int = 0):
    """Yield ((run, side, dataset), layers [n], values [n]) of one metric, one preset (paper first), finite."""
    part = _part(df, metric, mode, min_layer)
    if part.empty:
        return
    for key, group in part.groupby(_keys(part), sort=True, dropna=False):
        line = group.groupby("layer")["value"].mean().sort_index()
        yield tuple(key) if isinstance(key, tuple) else (key,), line.index.to_numpy(int), line.to_numpy(float)


def claim_curves(df: pd.DataFrame, metric: str, mode: str | None = None, min_layer: int = 0, count: str = "n"):
    """Yield ((run, side, dataset), LayerCurve) of one metric with its interval columns (ci_low, ci_high,
    ci_level) where the table has them, and the samples behind each value (column `count`: `n` in the analyze
    table, `samples` in the probe table, whose `n` counts tokens)."""
    part = _part(df, metric, mode, min_layer)
    if part.empty:
        return
    for key, group in part.groupby(_keys(part), sort=True, dropna=False):
        by_layer = group.groupby("layer")
        values = by_layer["value"].mean().sort_index()
        low = high = None
        if {"ci_low", "ci_high"} <= set(group.columns):
            low, high = by_layer["ci_low"].mean().sort_index(), by_layer["ci_high"].mean().sort_index()
        level = float(group["ci_level"].dropna().iloc[0]) if "ci_level" in group and group["ci_level"].notna().any() \
            else 0.95
        n = int(group[count].min()) if count in group and group[count].notna().any() else None
        curve = LayerCurve(values.index.to_numpy(int), values.to_numpy(float),
                           None if low is None else low.to_numpy(float), None if high is None else high.to_numpy(float),
                           level=level, n=n)
        yield tuple(key) if isinstance(key, tuple) else (key,), curve


def _where(layers, depth: int) -> str:
    layers = sorted(set(int(v) for v in layers))
    return f"layer{'s' if len(layers) > 1 else ''} {format_layers(layers)} of {depth}"


def _verdict(claims: dict[str, Claim], positive: str, positive_value, none_value: str, order
             ) -> tuple[str, str, str, Claim]:
    """(tile value, kind, lead data set, its claim) over the data sets' claims: the positive claim of the lead
    data set (the first by `order` among those making it; with how many do) where any data set makes it, else
    'none_value' when every data set says no change, else 'inconclusive'. The tile's evidence is the lead's."""
    hits = {d: c for d, c in claims.items() if c.kind == positive}
    pool = hits or claims
    lead = min(pool, key=lambda d: order(pool[d]))
    if hits:
        share = "" if len(hits) == len(claims) else f" ({len(hits)} of {len(claims)} data sets)"
        return positive_value(hits[lead]) + share, positive, lead, hits[lead]
    if all(c.kind == NO_CHANGE for c in claims.values()):
        return none_value, NO_CHANGE, lead, claims[lead]
    return "inconclusive", INCONCLUSIVE, lead, claims[lead]


def _evidence(dataset: str, claim: Claim, prefix: str = "") -> str:
    """'<dataset>: size [interval], basis', led by the reason when the claim is inconclusive."""
    shown = claim.evidence()
    if claim.decided:
        return f"{dataset}: {prefix}{shown}"
    return f"{dataset}: {claim.reason or 'inconclusive'}" + (f"; {prefix}{shown}" if shown else "")


def _details(claims: dict[str, Claim]) -> str:
    return "; ".join(f"{d}: {c.kind}: {c.statement}" for d, c in claims.items())


def cka_findings(metrics: pd.DataFrame) -> list[Finding]:
    """Per run and variant: does Base-vs-variant CKA fall below its plateau (stats.claims.curve_drop)?"""
    out, by_pair = [], {}
    for (run, side, dataset), curve in claim_curves(metrics, "cka", MODE_ALIGNMENT):
        by_pair.setdefault((run, side), {})[str(dataset)] = (curve, curve_drop(curve, what="CKA"))
    for (run, side), found in by_pair.items():
        claims = {d: c for d, (_, c) in found.items()}
        depth = max(int(curve.layers.max()) for curve, _ in found.values())
        value, kind, dataset, lead = _verdict(claims, DROP, lambda c: "drop at " + _where(c.layers, depth), "no drop",
                                              lambda c: c.size if np.isfinite(c.size) else 0.0)  # largest fall
        out.append(Finding(f"CKA leaves its plateau ({side})", value, _details(claims), run, kind,
                           _evidence(dataset, lead), f"alignment__{_file_safe(dataset)}"))
    return out


def lens_findings(probe: pd.DataFrame) -> list[Finding]:
    """Per run and side: where logit-lens accuracy reaches half its final gain (stats.claims.curve_emergence)."""
    out, by_side = [], {}
    for (run, side, dataset), curve in claim_curves(probe, "lens_accuracy", count="samples"):
        by_side.setdefault((run, side), {})[str(dataset)] = (curve, curve_emergence(curve))
    for (run, side), found in by_side.items():
        claims = {d: c for d, (_, c) in found.items()}
        depth = max(int(curve.layers.max()) for curve, _ in found.values())
        value, kind, dataset, lead = _verdict(claims, EMERGENCE, lambda c: "at " + _where([c.at], depth),
                                              "no emergence", lambda c: -c.size if np.isfinite(c.size) else 0.0)
        out.append(Finding(f"Logit lens emerges ({side})", value, _details(claims), run, kind,
                           _evidence(dataset, lead, "gain "),
                           f"probe_{dataset}"))
    return out


def weight_findings(weights: pd.DataFrame) -> list[Finding]:
    """Per run and variant: the block whose attention (q,k,v,o) weights changed most, and whether the change
    rises toward the top (stats.claims.magnitude_rise; weights are exact, so no interval)."""
    out = []
    metric = "attn_qkvo_delta_fro" if (weights["metric"] == "attn_qkvo_delta_fro").any() else "block_delta_fro"
    for (run, side, _), layers, values in layer_curves(weights, metric, min_layer=1):
        top = int(layers[-1])
        peak = int(layers[int(np.argmax(values))])
        claim = magnitude_rise(layers, values, what=metric)
        out.append(Finding(f"Weight change peaks ({side})", f"block {peak} of {top}",
                           f"{claim.kind}: {claim.statement}; first block {values[0]:.3g}, last {values[-1]:.3g}",
                           run, claim.kind, f"exact: peak {values.max():.3g}"
                           + (f", rises from block {claim.at}" if claim.kind == RISE else ", no late rise"),
                           "weights"))
    return out


def _wilson(p: float, n: int) -> tuple[float, float]:
    """95% Wilson interval of a share p of n independent items."""
    mv = MeanVariance(mean=np.array(p), var=np.array(p * (1 - p) / max(n, 1)), df=np.array(np.inf), seeds=1,
                      items=max(n, 1))
    low, high = mean_interval(mv, proportion=True, n_max=max(n, 1))
    return float(low), float(high)


def swap_findings(swap: pd.DataFrame) -> list[Finding]:
    """Per run and data set: the segment whose SFT blocks help the Base most (task score, else token accuracy),
    with 95% Wilson intervals over the scored items (tokens for token accuracy, counted as independent) and
    whether the runner-up's interval overlaps (then the ranking is not settled)."""
    out = []
    if "segment" not in swap.columns or "hybrid" not in swap.columns:
        return out
    for (run, dataset), part in swap.groupby(["run", "dataset"], sort=True):
        metrics = list(dict.fromkeys(part["metric"]))
        # a task score ('<task>:<metric>', a share of the task's items) before the teacher-forced token accuracy
        metric = next((m for m in metrics if ":" in m and is_proportion(m.split(":", 1)[1])
                       and higher_is_better(m)),
                      "token_accuracy" if "token_accuracy" in metrics else metrics[0])
        rows = part[(part["metric"] == metric) & (part["segment"] >= 0)]
        if rows.empty:
            continue
        higher = higher_is_better(metric)
        ranked = rows.sort_values("value", ascending=not higher, kind="stable")
        best = ranked.iloc[0]
        refs = {h: float(part[(part["hybrid"] == h) & (part["metric"] == metric)]["value"].iloc[0])
                for h in ("base", "sft") if ((part["hybrid"] == h) & (part["metric"] == metric)).any()}
        ref_text = ", ".join(f"{k} {v:.3g}" for k, v in refs.items())
        evidence, kind = f"{metric} {best['value']:.3g}", ""
        if is_proportion(metric.split(":", 1)[-1]) and "n" in rows.columns:
            unit = "tokens" if metric == "token_accuracy" else "items"
            low, high = _wilson(float(best["value"]), int(best["n"]))
            evidence = f"{metric} {best['value']:.3g} [{low:.3g}, {high:.3g}], n = {int(best['n'])} {unit}"
            if len(ranked) > 1:
                second = ranked.iloc[1]
                s_low, s_high = _wilson(float(second["value"]), int(second["n"]))
                overlap = s_high >= low if higher else s_low <= high
                kind = INCONCLUSIVE if overlap else ""
                evidence += (f"; runner-up {second['hybrid']} {second['value']:.3g} [{s_low:.3g}, {s_high:.3g}]"
                             + (": intervals overlap, ranking not settled" if overlap else ""))
        figure = f"swap_{dataset}_{metric.replace(':', '-')}"  # plots.stages.plot_swap's file name
        out.append(Finding(f"Best swap ({dataset})", f"{best['hybrid']}",
                           f"{metric} {best['value']:.3g} (unswapped: {ref_text}; blocks {best.get('blocks', '')})",
                           run, kind, evidence, figure))
    return out


def _ci(row: pd.Series, cols: dict, low: str = "ci_low", high: str = "ci_high") -> str:
    if low in cols and high in cols and pd.notna(row[cols[low]]) and pd.notna(row[cols[high]]):
        return f" [{row[cols[low]]:.3g}, {row[cols[high]]:.3g}]"
    return ""


def _basis(row: pd.Series) -> str:
    """'3 seeds x 116 items' / '3 seeds (seeds only ...)' from a sweep summary row."""
    seeds = int(row["vs_all_n"]) if "vs_all_n" in row and pd.notna(row["vs_all_n"]) else \
        int(row["n"]) if "n" in row and pd.notna(row["n"]) else 0
    items = int(row["vs_all_items"]) if "vs_all_items" in row and pd.notna(row["vs_all_items"]) else 0
    if items >= 2:
        return f"{seeds} seeds x {items} items"
    if "vs_all_items" in row:
        return f"{seeds} seeds (seeds only: no per-item scores)"
    return f"{seeds} seeds (older summary: seeds only)"


def best_vs_all(df: pd.DataFrame, cols: dict, metric: str | None, level: float = 0.95) -> Claim | None:
    """The sweep's best configuration against all-layer LoRA (when all-layer LoRA is itself the best: the
    runner-up against it). The best is picked among m configurations, so its interval is Bonferroni-simultaneous
    over the m comparisons (t quantile at 1 - (1 - level) / (2 m) with the row's df); an older summary without
    se/df columns is read with its own interval. None without a paired comparison."""
    higher = higher_is_better(metric or "")
    if "diff" not in cols:
        return None
    compared = df[pd.to_numeric(df[cols["diff"]], errors="coerce").notna()]
    if compared.empty:
        return None
    # the best configuration that has a comparison (the runner-up when all-layer LoRA itself is the best)
    best = compared.loc[compared[cols["mean"]].idxmax() if higher else compared[cols["mean"]].idxmin()]
    reference_best = len(compared) < len(df) and (
        (df[cols["mean"]].max() > best[cols["mean"]]) if higher else (df[cols["mean"]].min() < best[cols["mean"]]))
    m = max(len(compared), 1)
    diff = float(best[cols["diff"]])
    proportion = is_proportion(str(metric).split(" ")[-1])
    if {"vs_all_se", "vs_all_df"} <= set(df.columns) and pd.notna(best["vs_all_se"]):
        q = float(stats.t.ppf(1 - (1 - level) / (2 * m), best["vs_all_df"]))
        low, high = diff - q * float(best["vs_all_se"]), diff + q * float(best["vs_all_se"])
        if proportion:
            low, high = max(low, -1.0), min(high, 1.0)
        note = f"simultaneous over {m} comparisons" if m > 1 else ""
    else:
        low = float(best[cols["diff_ci_low"]]) if "diff_ci_low" in cols else math.nan
        high = float(best[cols["diff_ci_high"]]) if "diff_ci_high" in cols else math.nan
        note = "not adjusted for picking the best"
    basis = _basis(best) + (f"; {note}" if note else "")
    what = f"{best[cols['spec']]} vs all-layer LoRA" + (" (the best; this is the runner-up)" if reference_best else "")
    return compare(diff, low, high, basis, higher, MARGINS["proportion"] if proportion else None, what=what,
                   level=level)


def sweep_findings(sweep: pd.DataFrame) -> list[Finding]:
    """The sweep's best block choice against all-layer LoRA: better / worse only when the (simultaneous)
    interval of the paired difference excludes 0 (`best_vs_all`)."""
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
    claim = best_vs_all(df, cols, metric)
    kind, evidence = "", f"{metric or 'score'} {best[cols['mean']]:.3g}{_ci(best, cols)}"
    reference_best = is_all.any() and best.name == df[is_all].index[0]
    if reference_best:
        detail += " (all-layer LoRA itself is the best)"
    if claim is not None:
        kind = claim.kind
        detail += f"; {claim.statement}"
        runner = claim.statement.split(" vs all-layer LoRA")[0]
        evidence = (f"runner-up {runner}: {claim.kind}, " if reference_best else f"vs all-layer LoRA: {claim.kind}, ") \
            + claim.evidence()
    if "uncertainty" in df.columns:
        detail += f"; intervals count {best['uncertainty']}"
    run = str(best["run"]) if "run" in df.columns else ""
    return [Finding("Best block choice (sweep)", label, detail, run, kind, evidence, SWEEP_CHART)]


def suggestion_findings(data: dict, sweep: pd.DataFrame | None, run: str = "", tune_eval: pd.DataFrame | None = None,
                        tune_items: pd.DataFrame | None = None) -> tuple[list[Finding], dict | None]:
    """The training-free suggestion and, when a sweep exists, its honest comparison with the sweep's best (a
    paired comparison over seeds and items when the sweep's tune_eval / tune_items tables are there)."""
    s = Suggestion.from_dict(data)
    findings = [Finding("Suggested blocks (training-free)", f"{format_layers(s.layers)} of 0-{s.num_blocks - 1}",
                        f"mask {s.mask} (k={s.k}), depth {s.depth}, {s.layer_spec}", run,
                        evidence=f"late region from block {s.late_start}" if s.late_start < s.num_blocks
                        else "no late region found", figure=SUGGESTION_PROFILES)]
    comparison = None
    if sweep is not None:
        try:
            comparison = compare_with_sweep(s, sweep, tune_eval=tune_eval, tune_items=tune_items)
        except Exception as exc:  # noqa: BLE001  a summary of another shape: say so instead of failing the report
            findings.append(Finding("Suggestion vs sweep", "not comparable", str(exc), run))
            return findings, None
        rank = f"rank {comparison['rank']} of {comparison['n_configs']}"
        verdict = ("agrees with the best" if comparison["agreement"] else rank if comparison["evaluated"]
                   else f"nearest evaluated: {rank}")
        detail = (f"{comparison['metric']}: suggested {comparison['suggested']['mean']:.3g} "
                  f"({comparison['suggested']['spec']}), best {comparison['best']['mean']:.3g} "
                  f"({comparison['best']['spec']}), gap {_fmt(comparison['score_gap'])}")
        kind, evidence = "", f"gap to best {_fmt(comparison['score_gap'])} (no paired comparison)"
        pair = comparison.get("vs_best")
        if pair:
            claim = compare(pair["diff"], pair["ci_low"], pair["ci_high"], pair["basis"],
                            bool(comparison["higher_is_better"]),
                            MARGINS["proportion"] if is_proportion(str(comparison["metric"]).split(" ")[-1]) else None,
                            what=f"suggested {comparison['suggested']['spec']} vs best {comparison['best']['spec']}",
                            p=pair["p"])
            kind = claim.kind
            detail += f"; {claim.statement}"
            evidence = f"vs best: {claim.kind}, {claim.evidence()}"
        findings.append(Finding("Suggestion vs sweep", verdict, detail, run, kind, evidence, SWEEP_CHART))
    return findings, comparison


def correlation_findings(corr: pd.DataFrame) -> list[Finding]:
    """Per run: Pearson r of weight change with cosine similarity (the paper's strong negative), and the
    representation metric that tracks weight change most strongly; r with its 95% Fisher-z interval over the
    n blocks joined (arctanh(r) +- z / sqrt(n - 3), Fisher 1921)."""
    out = []
    part = corr[corr["method"] == "pearson"] if "method" in corr.columns else corr
    part = part[np.isfinite(pd.to_numeric(part["value"], errors="coerce"))]
    for run, group in part.groupby("run", sort=True):
        strongest = group.loc[group["value"].abs().idxmax()]
        cosine = group[group["metric"] == "cosine_similarity"]
        n = int(strongest["n"]) if "n" in group.columns and pd.notna(strongest["n"]) else 0
        blocks = f", {n} blocks" if n else ""
        p = f", p = {strongest['p_value']:.2g}" if "p_value" in group.columns else ""
        detail = (f"strongest: {strongest['metric']} [{strongest.get('mode', '')}, {strongest.get('preset', '')}, "
                  f"{strongest.get('side', '')}] on {strongest['dataset']}: r = {strongest['value']:+.2f}"
                  f"{_fisher(strongest['value'], n)}{p}{blocks}; weight metric "
                  f"{strongest.get('weight_metric', 'weight change')}")
        figure = f"correlation_{strongest.get('weight_metric', '')}" if "weight_metric" in group.columns else ""
        if cosine.empty:
            out.append(Finding("Strongest correlation with weight change", f"r = {strongest['value']:+.2f}", detail,
                               run, evidence=f"r = {strongest['value']:+.2f}{_fisher(strongest['value'], n)}{blocks}",
                               figure=figure))
        else:
            r = cosine.groupby("dataset")["value"].mean()
            n_cos = int(cosine["n"].min()) if "n" in cosine.columns and cosine["n"].notna().any() else 0
            first = r.index[0]
            out.append(Finding("Weight change vs cosine similarity", f"r = {r.mean():+.2f}",
                               "Pearson across blocks, mean over data sets ("
                               + ", ".join(f"{d} {v:+.2f}{_fisher(v, n_cos)}" for d, v in r.items()) + f"); {detail}",
                               run, evidence=f"{first}: r = {r[first]:+.2f}{_fisher(r[first], n_cos)}, {n_cos} blocks",
                               figure=figure))
    return out


def _fisher(r: float, n: int, level: float = 0.95) -> str:
    """' [low, high]' of a Pearson r over n pairs (Fisher z); '' when n < 4."""
    if n < 4 or not np.isfinite(r) or abs(r) >= 1:
        return ""
    z, half = math.atanh(r), stats.norm.ppf((1 + level) / 2) / math.sqrt(n - 3)
    return f" [{math.tanh(z - half):+.2f}, {math.tanh(z + half):+.2f}]"


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
