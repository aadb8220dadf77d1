"""The report's sections, one renderer per stage: its figures (with captions) and compact per-layer tables.

Each renderer takes one run directory's contents and returns an HTML fragment ("" when the stage did not run).
"""

from __future__ import annotations

import re
from pathlib import Path

from sftscope.report import figures as figs
from sftscope.report import findings as fnd
from sftscope.report.data import RunData
from sftscope.report.markup import (
    esc,
    figure_html,
    figure_id,
    kv_html,
    pivot_layers,
    sub_heading,
    table_html,
)
from sftscope.results.schema import (
    MODE_ALIGNMENT,
    MODE_DATASET_DIFF,
    MODE_SAMPLE_DIFF,
    MODE_VALUE,
    Tables,
)
from sftscope.tuning.blocks import format_layers

CAPTIONS = [
    (r"overview__(.+)", "All representation metrics per layer (rows) and data set (columns), preset {0}; Base "
     "dashed, variants solid, x = relative depth."),
    (r"alignment__(.+)", "Base-vs-variant alignment on {0}: linear CKA (biased solid, debiased dotted), cosine "
     "similarity and mean shift of pooled states per layer."),
    (r"differences__(.+)__(.+)", "Change from the Base on {0} (preset {1}): sample-level and dataset-level "
     "differences, variant minus Base, per layer."),
    (r"probe_(.+)", "Logit lens on {0}: next-token accuracy, loss, KL to the final layer and top-1 agreement with "
     "the Base when the final norm and head read each layer."),
    (r"swap_(.+?)_(.+)", "Layer swapping on {0}, {1}: each bar is a hybrid with one segment's blocks taken from "
     "the other model; lines are the unswapped models."),
    (r"weights", "Weight change per block: Frobenius norm of the difference (left) and relative to the Base's "
     "norm (right), attention q,k,v,o, MLP and whole block."),
    (r"correlation_(.+)", "Correlation across blocks of weight change ({0}) with each representation metric."),
    (r"sweep_scores__(.+?)__(.+)", "Tuning sweep on {0}, {1}: mean over seeds per configuration with its 95% "
     "interval (seeds x items where per-item scores exist, else seeds only)."),
    (r"sweep_segments__(.+?)__(.+)", "Tuning sweep on {0}, {1}: single-segment masks, score over the segment's "
     "position, one panel per segment count k."),
    (r"(.+?)__(.+)", "{0} per layer on {1}, one panel per preset; Base dashed, variants solid."),
]
SECTION_FIGURES = {"representations": ("alignment__", "overview__", "differences__"), "probe": ("probe_",),
                   "weights": ("weights",), "correlation": ("correlation_",), "swap": ("swap_",)}


def caption_for(path: Path) -> str:
    """A sentence describing a figure of the run directory, from its file name."""
    for pattern, template in CAPTIONS:
        m = re.fullmatch(pattern, path.stem)
        if m:
            return template.format(*m.groups())
    return path.stem.replace("_", " ")


class Figures:
    """A run's figures, handed out once each, so the last section can show every figure not shown yet."""

    def __init__(self, run: RunData):
        self.left = list(run.figures)
        self.run = run.name

    def take(self, *prefixes: str, exact: bool = False) -> list[Path]:
        chosen = [p for p in self.left if (p.stem in prefixes if exact else p.stem.startswith(prefixes))]
        self.left = [p for p in self.left if p not in chosen]
        return chosen


def figures_html(paths: list[Path], run: str = "") -> str:
    """Each figure with its caption and the id findings link to (figure_id(run, stem))."""
    return "".join(figure_html(p, caption_for(p), p.stem, figure_id(run, p.stem)) for p in paths)


def compared(runs: list[RunData]) -> str:
    out = []
    for run in runs:
        env, cfg = run.environment, run.config
        stage_cfgs = list(cfg.values())
        pick = lambda key: next((c[key] for c in stage_cfgs if isinstance(c, dict) and c.get(key) is not None), None)  # noqa: E731
        models = [f"{m.get('name')}: {m.get('id')}" + (f" @ {m['revision']}" if m.get("revision") else "")
                  + (f" (resolved {m['resolved_revision'][:12]})" if m.get("resolved_revision") else "")
                  + "".join(f", {k} {m[k]}" for k in ("model_type", "num_layers", "dtype") if m.get(k))
                  + (f", {m['num_parameters'] / 1e6:.3g}M params" if m.get("num_parameters") else "")
                  for m in run.models()]
        versions = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v)
        pairs = [("run directory", str(run.path.resolve())), ("models", "\n".join(models) or "not recorded"),
                 ("data", ", ".join(pick("data") or []) or "-"), ("preset", str(pick("preset") or "-")),
                 ("seed", str(env.get("seed") if env.get("seed") is not None else pick("seed"))),
                 ("stages", ", ".join(cfg) or "-"), ("device", str(env.get("device", "-"))),
                 ("versions", f"python {env.get('python', '?')}; {versions}"),
                 ("sftscope git", str(env.get("sftscope_git") or "-"))]
        out.append((sub_heading("What was compared", run.name) if len(runs) > 1 else "")
                   + kv_html(pairs).replace("\n", "<br>"))
    return "".join(out)


def details_html(summary: str, content: str) -> str:
    return f"<details><summary>{esc(summary)}</summary>{content}</details>" if content else ""


def representations(run: RunData, figures: Figures) -> str:
    df = run.table(Tables.METRICS)
    aligned_figs, overview, differences = (figures.take(p) for p in SECTION_FIGURES["representations"])
    if df is None and not (aligned_figs or overview or differences):
        return ""
    parts = [figures_html(aligned_figs, run.name)]
    if df is not None:
        first = lambda d: d[d["preset"] == sorted(d["preset"].unique(), key=lambda p: (p != "paper", p))[0]]  # noqa: E731
        for dataset, part in df[df["layer"] >= 0].groupby("dataset", sort=True):
            aligned = part[part["mode"] == MODE_ALIGNMENT]
            if not aligned.empty:
                parts.append(table_html(pivot_layers(first(aligned), ["side", "metric"]),
                                        f"Base-vs-variant alignment per layer on {dataset} (side | metric)."))
    parts.append(details_html(f"Every metric per layer at a glance ({len(overview)} overview grids)", figures_html(overview, run.name)))
    parts.append(details_html(f"Change from the Base per layer ({len(differences)} figures)", figures_html(differences, run.name)))
    if df is not None:
        for dataset, part in df[df["layer"] >= 0].groupby("dataset", sort=True):
            diffs = part[part["mode"].isin([MODE_SAMPLE_DIFF, MODE_DATASET_DIFF])]
            values = part[part["mode"] == MODE_VALUE]
            parts.append(details_html(f"Table: differences from the Base per layer on {dataset}", table_html(
                pivot_layers(diffs, ["side", "metric", "preset", "mode"]),
                "variant minus Base (side | metric | preset | mode).") if not diffs.empty else ""))
            parts.append(details_html(f"Table: metric values per layer on {dataset}", table_html(
                pivot_layers(values, ["side", "metric", "preset"]), "side | metric | preset.") if not values.empty else ""))
    rest = figures.take(*(f"{m}__" for m in (df["metric"].unique() if df is not None else [])))
    parts.append(details_html(f"Every metric on its own ({len(rest)} figures)",
                          f'<div class="figgrid">{figures_html(rest, run.name)}</div>' if rest else ""))
    return "".join(parts)


def probe(run: RunData, figures: Figures) -> str:
    df, shown = run.table(Tables.PROBE), figures.take(*SECTION_FIGURES["probe"])
    tables = [table_html(pivot_layers(part, ["side", "metric"]), f"Logit lens per layer on {dataset}.")
              for dataset, part in df.groupby("dataset", sort=True)] if df is not None else []
    return figures_html(shown, run.name) + "".join(tables)


def weights(run: RunData, figures: Figures) -> str:
    df, shown = run.table(Tables.WEIGHTS), figures.take(*SECTION_FIGURES["weights"], exact=True)
    table = ""
    if df is not None:
        blocks = df[df["metric"].str.match(r"(attn_qkvo|mlp|block)_delta_(fro|rel)$") & (df["layer"] >= 1)]
        table = table_html(pivot_layers(blocks, ["side", "metric"]),
                           "Weight change per block (layer l = block l, 1-based; side | metric).")
    return figures_html(shown, run.name) + table


def correlation(run: RunData, figures: Figures) -> str:
    df, shown = run.table(Tables.CORRELATION), figures.take(*SECTION_FIGURES["correlation"])
    table = ""
    if df is not None:
        cols = [c for c in ("side", "dataset", "metric", "preset", "mode", "method", "value", "p_value", "n",
                            "weight_metric") if c in df.columns]
        table = details_html("Table: every correlation", table_html(df[cols].rename(columns={"value": "r"}),
                                                                "Correlation across blocks (click a header to sort)."))
    return figures_html(shown, run.name) + table


def swap(run: RunData, figures: Figures) -> str:
    df, shown = run.table(Tables.SWAP), figures.take(*SECTION_FIGURES["swap"])
    table = ""
    if df is not None and "hybrid" in df.columns:
        wide = df.pivot_table(index="hybrid", columns=["dataset", "metric"], values="value", aggfunc="mean")
        wide.columns = [" | ".join(map(str, c)) for c in wide.columns]
        table = table_html(wide.reset_index(), "Score of every hybrid (data set | metric).")
    return figures_html(shown, run.name) + table


def sweep(run: RunData, figures: Figures) -> str:
    df = run.table(Tables.SWEEP_SUMMARY)
    shown = figures.take("sweep")
    if df is None:
        return figures_html(shown, run.name)
    chart = figs.sweep_chart(df)
    parts = [figure_html(chart, "Mean score per block choice with its 95% interval (seeds x items where per-item "
                         "scores exist, else seeds only); best at the top.", "sweep chart",
                         figure_id(run.name, fnd.SWEEP_CHART)) if chart else "", figures_html(shown, run.name)]
    df = fnd.normalize_sweep(df)
    cols = fnd.sweep_columns(df)
    order = df
    if "mean" in cols:
        metric = fnd.pick_metric(df, cols)
        order = df.sort_values([cols["metric"], cols["mean"]] if "metric" in cols else [cols["mean"]],
                               ascending=[True, not fnd.higher_is_better(metric or "")] if "metric" in cols
                               else not fnd.higher_is_better(metric or ""))
    keep = [c for c in order.columns if c not in ("run", "dataset", "layer", "preset", "mode") or order[c].nunique() > 1]
    parts.append(table_html(order[keep].reset_index(drop=True), "Sweep summary, one row per configuration.",
                            highlight=0))
    return "".join(parts)


def suggestion(run: RunData, comparison: dict | None) -> str:
    if not run.suggestion:
        return ""
    s = run.suggestion
    parts = [kv_html([("blocks", f"{format_layers(s.get('layers', []))} of 0-{s.get('num_blocks', 0) - 1}"),
                      (f"mask (k={s.get('k')})", s.get("mask", "")), ("depth range", s.get("depth", "")),
                      ("layer list", s.get("layer_spec", "")), ("data", ", ".join(s.get("data", [])))]),
             "<h4>Evidence</h4>", '<ul class="findings">' + "".join(f"<li>{esc(e)}</li>" for e in s.get("evidence", []))
             + "</ul>"]
    profile = run.table(Tables.SUGGEST)
    if profile is not None:
        png = figs.suggestion_profiles(profile, s)
        if png:
            parts.append(figure_html(png, "Training-free profiles of the Base (and variant) per layer with their 95% "
                                     "intervals where measured; block metrics sit at the layer their block outputs. "
                                     "Green: suggested blocks; red dotted: start of the late region.",
                                     "suggestion profiles", figure_id(run.name, fnd.SUGGESTION_PROFILES)))
    if comparison:
        parts.append("<h4>Against the tuning sweep</h4>" + kv_html([
            ("metric", f"{comparison['metric']} ({'higher' if comparison['higher_is_better'] else 'lower'} is better)"),
            ("suggested (evaluated as)", f"{comparison['suggested']['spec']}: {comparison['suggested']['mean']:.4g}"
             + ("" if comparison["evaluated"] else f" (nearest evaluated, overlap {comparison['overlap_with_evaluated']:.2f})")),
            ("sweep best", f"{comparison['best']['spec']}: {comparison['best']['mean']:.4g}"),
            ("rank / configurations", f"{comparison['rank']} / {comparison['n_configs']}"),
            ("score gap to best", fnd._fmt(comparison["score_gap"])),
            ("layer overlap with best (Jaccard)", f"{comparison['overlap_with_best']:.2f}"),
            ("inside best's CI", str(comparison.get("within_best_ci", "n/a"))),
            ("vs all-layer LoRA", fnd._fmt(comparison.get("vs_all_layer")))]
            + ([("paired vs best (suggested - best)", _pair_text(comparison["vs_best"]))]
               if comparison.get("vs_best") else [])))
    return "".join(parts)


def _pair_text(pair: dict) -> str:
    interval = "" if pair["ci_low"] != pair["ci_low"] else f" [{pair['ci_low']:+.3g}, {pair['ci_high']:+.3g}]"
    return f"{pair['diff']:+.3g}{interval}, p = {fnd._fmt(pair['p'])}: {pair['claim']} ({pair['basis']})"


def tasks(run: RunData) -> str:
    df = run.table(Tables.TASKS)
    if df is None:
        return ""
    wide = df.pivot_table(index="side", columns=["dataset", "metric"], values="value", aggfunc="mean")
    wide.columns = [" | ".join(map(str, c)) for c in wide.columns]
    return table_html(wide.reset_index(), "Task scores per model (task | metric).")
