"""Sweep statistics: per configuration (method, blocks), the mean score over seeds with an interval that counts
both the seeds and the evaluation items, the paired comparison with all-layer LoRA (and between any two
configurations), trainable parameters and the Base's score side by side.

Statistics (sftscope.stats.scores): a configuration's per-item scores x[s, i] over its seeds (rows) and the
items every seed scored (columns, from the `tune_items` table) give the variance of the mean
var(seed means) / S + s2_item / I with Satterthwaite df; a paired comparison uses d[s, i] = x[s, i] - ref[s, i]
on the common seeds and items. Accuracy-like intervals are Wilson intervals at the effective sample size (inside
[0, 1]); a variance of 0 is floored by the 1/I resolution of a score (never p = 0). Cells written before item
rows existed (or metrics without per-item scores, e.g. perplexity) fall back to the per-seed values: the column
`uncertainty` then says "seeds only". A configuration is "better" than all-layer LoRA (`vs_all_claim`) only when
the interval of the difference excludes 0 (sftscope.stats.claims.compare).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sftscope.evaluation.tasks import count_metrics
from sftscope.results.schema import MODE_SUMMARY, Row
from sftscope.stats.claims import MARGINS, compare
from sftscope.stats.scores import (
    MeanVariance,
    crossed_mean_variance,
    describe_basis,
    difference_test,
    higher_is_better,
    is_proportion,
    mean_interval,
    safe_float,
    score_grid,
)
from sftscope.tuning.blocks import BlockSpec

REFERENCE = ("lora", "all")



def config_role(method: str, blocks: str) -> str:
    """reference (all-layer LoRA), mask, lora-control or full-control: from the configuration alone."""
    if (method, blocks) == REFERENCE:
        return "reference"
    if method == "full":
        return "full-control"
    return "mask" if BlockSpec.parse(blocks).kind == "mask" else "lora-control"


class Scores:
    """One configuration's scores on one task metric: per seed (seed -> value, n items) and, where every seed
    has them, per item (seed -> {item: score})."""

    def __init__(self, per_seed: dict[int, float], n_items: dict[int, int], items: dict[int, dict] | None):
        self.per_seed, self.n_items = per_seed, n_items
        self.items = items if items and set(per_seed) <= set(items) else None

    def variance(self, metric: str, seeds=None) -> MeanVariance:
        """Variance of the mean over `seeds` (default: all): seeds x items where item scores exist, else seeds only."""
        seeds = sorted(self.per_seed) if seeds is None else list(seeds)
        if self.items is not None:
            grid, _, keys = score_grid(self.items, seeds)
            if keys:
                return crossed_mean_variance(grid, 1 / len(keys) if is_proportion(metric) else None)
        values = np.array([[self.per_seed[s]] for s in seeds])
        n = min(self.n_items.get(s, 0) for s in seeds)
        return crossed_mean_variance(values, 1 / n if is_proportion(metric) and n > 0 else None)

    def n_max(self, mv: MeanVariance) -> float:
        """Item scores behind a mean (caps a proportion's effective sample size)."""
        if mv.items >= 2:
            return float(mv.seeds * mv.items)
        return float(sum(self.n_items.values()) or len(self.per_seed))


def paired_difference(a: Scores, b: Scores, metric: str, level: float = 0.95) -> dict:
    """A - B on their common seeds (and common items where both have item scores): diff, interval, p (two-sided
    t), its basis, and the claim (better / worse / no difference / inconclusive). Keys: diff, ci_low, ci_high, p,
    se, df, n (seeds), items (0 when seeds only), basis, claim."""
    seeds = sorted(set(a.per_seed) & set(b.per_seed))
    out = {"diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan, "se": math.nan,
           "df": math.nan, "n": len(seeds), "items": 0, "basis": "", "claim": ""}
    if not seeds:
        return out
    proportion = is_proportion(metric)
    mv = None
    if a.items is not None and b.items is not None:
        grid_a, _, keys_a = score_grid(a.items, seeds)
        grid_b, _, keys_b = score_grid(b.items, seeds)
        common = sorted(set(keys_a) & set(keys_b), key=str)
        if common:
            pos_a, pos_b = {k: i for i, k in enumerate(keys_a)}, {k: i for i, k in enumerate(keys_b)}
            d = grid_a[:, [pos_a[k] for k in common]] - grid_b[:, [pos_b[k] for k in common]]
            mv = crossed_mean_variance(d, 1 / len(common) if proportion else None, quantized=2)
    if mv is None:
        d = np.array([[a.per_seed[s] - b.per_seed[s]] for s in seeds])
        n = min(min(a.n_items.get(s, 0), b.n_items.get(s, 0)) for s in seeds)
        mv = crossed_mean_variance(d, 1 / n if proportion and n > 0 else None, quantized=2)
    low, high, p = difference_test(mv, level, bounded=proportion)
    basis = describe_basis(mv)
    out.update(diff=safe_float(mv.mean), ci_low=safe_float(low), ci_high=safe_float(high), p=safe_float(p),
               se=safe_float(np.sqrt(mv.var)), df=safe_float(mv.df), items=mv.items if mv.items >= 2 else 0,
               basis=basis)
    claim = compare(out["diff"], out["ci_low"], out["ci_high"], basis, higher_is_better(metric),
                    MARGINS["proportion"] if proportion else None, p=out["p"], level=level)
    out["claim"] = claim.kind
    return out


def _config_columns(tuning: pd.DataFrame) -> dict[tuple[str, str], dict]:
    """Per configuration: mean trainable params, mean budget error, blocks (or 'varies by seed')."""
    out = {}
    metrics = tuning.pivot_table(index=["method", "blocks", "seed"], columns="metric", values="value", aggfunc="mean")
    for (method, blocks), part in tuning.groupby(["method", "blocks"]):
        m = metrics.loc[(method, blocks)]
        layers = sorted(set(part["layers"]))
        out[(method, blocks)] = {"trainable_params": float(m["trainable_params"].mean()),
                               "budget_rel_error": float(m["budget_rel_error"].mean()),
                               "layers": layers[0] if len(layers) == 1 else "varies by seed"}
    return out


def _task_order(rows: pd.DataFrame) -> int:
    """Position of the rows' task in the cells' evaluation list (0 = the judged task); 0 if not recorded."""
    known = rows["task_order"].dropna() if "task_order" in rows else []
    return int(known.min()) if len(known) else 0


def _item_scores(items: pd.DataFrame | None) -> dict:
    """(dataset, metric, method, blocks) -> seed -> {item: score} from tune_items rows (side tuned)."""
    if items is None or items.empty:
        return {}
    tuned = items[items["side"] == "tuned"]
    out: dict = {}
    for (dataset, metric, method, blocks, seed), part in tuned.groupby(["dataset", "metric", "method", "blocks", "seed"]):
        out.setdefault((dataset, metric, method, blocks), {})[int(seed)] = dict(
            zip(part["item"].astype(str), part["value"].astype(float)))
    return out


def _scores(cfg: pd.DataFrame, items: dict | None) -> Scores:
    per_seed = cfg.groupby("seed")["value"].mean().to_dict()
    n = cfg.groupby("seed")["n"].max().to_dict() if "n" in cfg else {}
    return Scores({int(s): float(v) for s, v in per_seed.items()},
                  {int(s): int(v) for s, v in n.items() if pd.notna(v)}, items)


def summarize(tune_eval: pd.DataFrame, tuning: pd.DataFrame, level: float = 0.95,
              items: pd.DataFrame | None = None) -> list[Row]:
    """One Row per (configuration, task, metric): mean over seeds (value), its interval, the paired comparison
    with all-layer LoRA. `items`: the tune_items table (per-item scores); without it, or for configurations
    whose cells have none, the intervals count seeds only (column `uncertainty`)."""
    not_scores = count_metrics()  # bookkeeping numbers among the task metrics (n_tokens, chance, ...)
    tuned = tune_eval[(tune_eval["side"] == "tuned") & ~tune_eval["metric"].isin(not_scores)]
    base = tune_eval[(tune_eval["side"] == "base") & ~tune_eval["metric"].isin(not_scores)]
    base_value = base.groupby(["dataset", "metric"])["value"].mean().to_dict()
    configs = _config_columns(tuning)
    by_item = _item_scores(items)
    rows = []
    for (dataset, metric), part in tuned.groupby(["dataset", "metric"]):
        scores = {key: _scores(cfg, by_item.get((dataset, metric, *key)))
                  for key, cfg in part.groupby(["method", "blocks"])}
        ref = scores.get(REFERENCE)
        for (method, blocks), cfg in part.groupby(["method", "blocks"]):
            s = scores[(method, blocks)]
            mv = s.variance(metric)
            low, high = mean_interval(mv, level, is_proportion(metric), s.n_max(mv))
            values = list(s.per_seed.values())
            extra = {"method": method, "blocks": blocks, "role": config_role(method, blocks),
                     "k": int(cfg["k"].iloc[0]), "task_order": _task_order(cfg),
                     "segment": BlockSpec.parse(blocks).segment, "ci_low": safe_float(low),
                     "ci_high": safe_float(high), "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                     "se": safe_float(np.sqrt(mv.var)), "df": safe_float(mv.df),
                     "n_items": mv.items if mv.items >= 2 else 0, "uncertainty": mv.basis,
                     "seeds": ",".join(str(int(v)) for v in sorted(s.per_seed)),
                     "base_value": base_value.get((dataset, metric), math.nan),
                     **configs.get((method, blocks), {"trainable_params": math.nan, "budget_rel_error": math.nan,
                                                      "layers": ""})}
            pair = paired_difference(s, ref, metric, level) if ref is not None and (method, blocks) != REFERENCE \
                else {"diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan, "se": math.nan,
                      "df": math.nan, "n": 0, "items": 0, "basis": "", "claim": ""}
            extra.update({"vs_all_diff": pair["diff"], "vs_all_ci_low": pair["ci_low"],
                          "vs_all_ci_high": pair["ci_high"], "vs_all_p": pair["p"], "vs_all_se": pair["se"],
                          "vs_all_df": pair["df"], "vs_all_n": pair["n"], "vs_all_items": pair["items"],
                          "vs_all_claim": pair["claim"]})
            rows.append(Row(side="tuned", dataset=dataset, layer=-1, metric=metric, value=float(np.mean(values)),
                            n=len(values), mode=MODE_SUMMARY, extra=extra))
    return rows


def compare_configs(tune_eval: pd.DataFrame, items: pd.DataFrame | None, a: tuple[str, str], b: tuple[str, str],
                    dataset: str, metric: str, level: float = 0.95) -> dict:
    """Paired comparison of configuration a = (method, blocks) with b on one task metric, from the gathered
    tune_eval (and tune_items) tables of a sweep: `paired_difference`'s keys.

    Raises:
        KeyError: a or b has no scores on this task metric.
    """
    tuned = tune_eval[(tune_eval["side"] == "tuned") & (tune_eval["dataset"] == dataset)
                      & (tune_eval["metric"] == metric)]
    by_item = _item_scores(items)
    found = {}
    for key in (a, b):
        cfg = tuned[(tuned["method"] == key[0]) & (tuned["blocks"] == key[1])]
        if cfg.empty:
            raise KeyError(f"no {dataset} {metric} scores for {key[0]} {key[1]}")
        found[key] = _scores(cfg, by_item.get((dataset, metric, *key)))
    return paired_difference(found[a], found[b], metric, level)


def summary_wide(summary: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """One line per configuration: 'mean [low, high]' per task:metric, trainable params, and the comparison with
    all-layer LoRA ('vs all +diff [low, high] claim')."""
    df = summary if metrics is None else summary[summary["metric"].isin(metrics)]
    df = df[~df["metric"].str.contains(":")]  # per-kind breakdowns stay in the long table
    lines = {}
    for _, r in df.iterrows():
        line = lines.setdefault((r["method"], r["blocks"]), {"method": r["method"], "blocks": r["blocks"],
                                                           "layers": r["layers"], "seeds": r["seeds"],
                                                           "params": int(r["trainable_params"])})
        ci = "" if math.isnan(r["ci_low"]) else f" [{r['ci_low']:.3g}, {r['ci_high']:.3g}]"
        diff = ""
        if not math.isnan(r["vs_all_diff"]):
            interval = "" if math.isnan(r["vs_all_ci_low"]) else f" [{r['vs_all_ci_low']:+.3g}, {r['vs_all_ci_high']:+.3g}]"
            diff = f" (vs all {r['vs_all_diff']:+.3g}{interval} {r.get('vs_all_claim', '')})".replace(" )", ")")
        line[f"{r['dataset']}:{r['metric']}"] = f"{r['value']:.3g}{ci}{diff}"
    return pd.DataFrame(list(lines.values()))
