"""Sweep statistics: per configuration (method, blocks), mean and t-interval over seeds, paired comparison with
all-layer LoRA, trainable parameters and the Base's score side by side.

For values x_1..x_n over seeds: mean, s = sample sd (ddof 1), CI = mean -+ t_{(1+level)/2, n-1} * s / sqrt(n)
(undefined for n = 1). Paired comparison on the seeds both configurations ran: d_s = x_s - ref_s,
mean(d) with its t-interval, and the two-sided paired t-test p = 2 * (1 - F_t(|mean(d)| / (sd(d)/sqrt(n)), n-1)).
When all d_s are equal the t statistic is undefined: p is 0 if they differ from 0, NaN if they are all 0.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from sftscope.results.schema import MODE_SUMMARY, Row
from sftscope.tuning.blocks import BlockSpec

REFERENCE = ("lora", "all")
NOT_SCORES = {"n_tokens", "chance"}  # bookkeeping numbers among the task metrics


def t_interval(values, level: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, ci_low, ci_high, sd) of values [n] with a Student t interval; NaN bounds and sd when n < 2."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, len(x) - 1)) * sd / math.sqrt(len(x))
    return mean, mean - half, mean + half, sd


def paired_comparison(values: dict[int, float], reference: dict[int, float], level: float = 0.95) -> dict:
    """Paired difference values - reference on their common seeds: diff, CI, p (two-sided paired t-test), n."""
    seeds = sorted(set(values) & set(reference))
    d = np.array([values[s] - reference[s] for s in seeds], dtype=float)
    out = {"vs_all_diff": math.nan, "vs_all_ci_low": math.nan, "vs_all_ci_high": math.nan, "vs_all_p": math.nan,
           "vs_all_n": len(seeds)}
    if not seeds:
        return out
    mean, low, high, sd = t_interval(d, level)
    out.update(vs_all_diff=mean, vs_all_ci_low=low, vs_all_ci_high=high)
    if len(d) >= 2:
        if sd > 0:
            t_stat = mean / (sd / math.sqrt(len(d)))
            out["vs_all_p"] = float(2 * stats.t.sf(abs(t_stat), len(d) - 1))
        elif mean != 0:
            out["vs_all_p"] = 0.0
    return out


def config_role(method: str, blocks: str) -> str:
    """reference (all-layer LoRA), mask, lora-control or full-control: from the configuration alone."""
    if (method, blocks) == REFERENCE:
        return "reference"
    if method == "full":
        return "full-control"
    return "mask" if BlockSpec.parse(blocks).kind == "mask" else "lora-control"


def _per_seed(df: pd.DataFrame) -> dict[int, float]:
    return df.groupby("seed")["value"].mean().to_dict()


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


def summarize(tune_eval: pd.DataFrame, tuning: pd.DataFrame, level: float = 0.95) -> list[Row]:
    """One Row per (configuration, task, metric): mean over seeds (value), CI, paired diff vs all-layer LoRA."""
    tuned = tune_eval[(tune_eval["side"] == "tuned") & ~tune_eval["metric"].isin(NOT_SCORES)]
    base = tune_eval[(tune_eval["side"] == "base") & ~tune_eval["metric"].isin(NOT_SCORES)]
    base_value = base.groupby(["dataset", "metric"])["value"].mean().to_dict()
    configs = _config_columns(tuning)
    rows = []
    for (dataset, metric), part in tuned.groupby(["dataset", "metric"]):
        ref = part[(part["method"] == REFERENCE[0]) & (part["blocks"] == REFERENCE[1])]
        ref_values = _per_seed(ref)
        for (method, blocks), cfg in part.groupby(["method", "blocks"]):
            values = _per_seed(cfg)
            mean, low, high, sd = t_interval(list(values.values()), level)
            extra = {"method": method, "blocks": blocks, "role": config_role(method, blocks),
                     "k": int(cfg["k"].iloc[0]), "task_order": _task_order(cfg),
                     "segment": BlockSpec.parse(blocks).segment, "ci_low": low, "ci_high": high, "std": sd,
                     "seeds": ",".join(str(int(s)) for s in sorted(values)),
                     "base_value": base_value.get((dataset, metric), math.nan),
                     **configs.get((method, blocks), {"trainable_params": math.nan, "budget_rel_error": math.nan,
                                                      "layers": ""})}
            if (method, blocks) == REFERENCE or not ref_values:
                extra.update(paired_comparison({}, {}))
            else:
                extra.update(paired_comparison(values, ref_values, level))
            rows.append(Row(side="tuned", dataset=dataset, layer=-1, metric=metric, value=mean, n=len(values),
                            mode=MODE_SUMMARY, extra=extra))
    return rows


def summary_wide(summary: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """One line per configuration: 'mean [low, high]' per task:metric, trainable params, diff vs all-layer."""
    df = summary if metrics is None else summary[summary["metric"].isin(metrics)]
    df = df[~df["metric"].str.contains(":")]  # per-kind breakdowns stay in the long table
    lines = {}
    for _, r in df.iterrows():
        line = lines.setdefault((r["method"], r["blocks"]), {"method": r["method"], "blocks": r["blocks"],
                                                           "layers": r["layers"], "seeds": r["seeds"],
                                                           "params": int(r["trainable_params"])})
        ci = "" if math.isnan(r["ci_low"]) else f" [{r['ci_low']:.3g}, {r['ci_high']:.3g}]"
        diff = "" if math.isnan(r["vs_all_diff"]) else f" (vs all {r['vs_all_diff']:+.3g}, p={r['vs_all_p']:.2g})"
        line[f"{r['dataset']}:{r['metric']}"] = f"{r['value']:.3g}{ci}{diff}"
    return pd.DataFrame(list(lines.values()))
