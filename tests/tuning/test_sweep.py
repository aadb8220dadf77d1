"""Sweep: cell expansion (counts, same-size controls, unique dirs), summary statistics against closed forms
and scipy, the `sweep --list` lines rebuilding each cell exactly, and a real tiny sweep through the CLI."""

from __future__ import annotations

import math
import shlex

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import sftscope.tuning.pipeline as pipeline
from sftscope import cli
from sftscope.report.plots.sweep import plot_sweep
from sftscope.tuning.blocks import parse_block_spec
from sftscope.config import config_from_namespace
from sftscope.tuning.config import DEFAULT_CONTROLS, SweepConfig, TuneConfig
from sftscope.tuning.summary import compare_configs, summarize, summary_wide
from sftscope.tuning.sweep import configurations, default_masks, expand_cells

from .test_pipeline import tiny_organism

L = 16  # k = 5 segments of 16 blocks: 0-2, 3-5, 6-8, 9-11, 12-15


def sweep_config(**kw) -> SweepConfig:
    return SweepConfig(base="org/model", train="gsm8k", rank=8, lr=1e-4, max_steps=7, **kw)


def test_default_masks():
    assert default_masks(5) == ["10000", "01000", "00100", "00010", "00001", "01100", "01110", "all"]
    assert default_masks(3) == ["100", "010", "001", "all"]


def test_expansion_counts_controls_and_unique_dirs(tmp_path):
    cfg = sweep_config(seeds=(0, 1, 2), controls=DEFAULT_CONTROLS, also_k=(3,))
    configs = configurations(cfg, L)
    specs = [(m, s) for _, m, s in configs]
    # 8 masks + 3 singles of k=3 (0-4, 5-9, 10-15); early runs of 3, 6, 9 blocks minus layers:0-2 (= mask
    # 10000); late runs 13-15, 7-15 and 10-15 (= mask 001, dropped); random:3, :6, :9; 4 full positions.
    expected_lora_controls = {"layers:0-5", "layers:0-8", "layers:13-15", "layers:7-15",
                              "random:3", "random:6", "random:9"}
    assert {s for m, s in specs if m == "lora"} == set(default_masks(5)) | {"100", "010", "001"} | \
        expected_lora_controls
    assert [s for m, s in specs if m == "full"] == ["early", "middle", "late", "random"]
    cells = expand_cells(cfg, tmp_path, num_layers=L)
    assert len(cells) == len(configs) * 3 == (11 + 7 + 4) * 3
    assert len({c.name for c in cells}) == len({c.path for c in cells}) == len(cells)
    assert [c.index for c in cells] == list(range(len(cells)))
    middle_sizes = {3, 6, 9}  # blocks of 01000/00100/00010, 01100, 01110
    for c in cells:
        assert c.config.seed in (0, 1, 2) and c.config.base_eval == str(tmp_path / "base")
        assert (c.config.rank, c.config.lr, c.config.max_steps) == (8, 1e-4, 7)  # same budget
        if c.role.startswith("control:lora"):
            assert len(parse_block_spec(c.config.blocks, L, c.config.seed).layers) in middle_sizes


def test_a_control_equal_to_a_mask_is_dropped_and_seed_major_order(tmp_path):
    cfg = sweep_config(masks=("01000", "10000", "all"), seeds=(3, 4), controls=("lora-early",))
    cells = expand_cells(cfg, tmp_path, num_layers=L)
    assert [c.name for c in cells] == ["lora-01000-seed3", "lora-10000-seed3", "lora-all-seed3",
                                       "lora-01000-seed4", "lora-10000-seed4", "lora-all-seed4"]
    assert cells[0].config.segments == 5 and cells[2].config.segments is None


def test_bad_sweep_settings_are_user_errors():
    from sftscope.errors import SftscopeError
    for kw, needle in [({"controls": ("lora-middle",)}, "controls must be one of"), ({"seeds": (1, 1)}, "distinct"),
                       ({"masks": ("01200",)}, "bad mask"), ({"masks": ("000",)}, "bad mask")]:
        with pytest.raises(SftscopeError, match=needle):
            sweep_config(**kw)


def synthetic_tables():
    """tune_eval/tuning rows of three configurations over seeds 0-2, with known values."""
    scores = {("lora", "all"): [0.20, 0.24, 0.22], ("lora", "01000"): [0.30, 0.35, 0.31],
              ("full", "middle"): [0.25, 0.20]}
    params = {("lora", "all"): 100, ("lora", "01000"): 101, ("full", "middle"): 5000}
    evals, tuning = [], []
    for (method, spec), values in scores.items():
        for seed, v in enumerate(values):
            tags = {"method": method, "blocks": spec, "seed": seed, "k": 5 if spec == "01000" else -1,
                    "layers": "3-5", "side": "tuned", "dataset": "gsm8k"}
            evals += [{**tags, "metric": "exact_match", "value": v}, {**tags, "metric": "chance", "value": 0.1}]
            tuning += [{**tags, "metric": "trainable_params", "value": params[(method, spec)]},
                       {**tags, "metric": "budget_rel_error", "value": params[(method, spec)] / 100 - 1}]
    evals.append({"side": "base", "dataset": "gsm8k", "metric": "exact_match", "value": 0.1, "method": "none",
                  "blocks": "", "seed": -1, "k": -1, "layers": ""})
    return pd.DataFrame(evals), pd.DataFrame(tuning)


def test_summary_on_synthetic_tables():
    evals, tuning = synthetic_tables()
    rows = {r.extra["blocks"]: r for r in summarize(evals, tuning)}
    assert set(rows) == {"all", "01000", "middle"}  # 'chance' is bookkeeping, not a score
    mid = rows["01000"]
    assert mid.value == pytest.approx(0.32) and mid.n == 3 and mid.extra["seeds"] == "0,1,2"
    assert mid.extra["segment"] == 1 and mid.extra["role"] == "mask" and mid.extra["base_value"] == 0.1
    assert mid.extra["trainable_params"] == 101 and mid.extra["budget_rel_error"] == pytest.approx(0.01)
    # no per-item scores: seeds only, the paired t-test over seeds (no item count known, so no resolution floor)
    assert mid.extra["uncertainty"] == "seeds only" and mid.extra["n_items"] == 0
    d = np.array([0.30, 0.35, 0.31]) - np.array([0.20, 0.24, 0.22])
    assert mid.extra["vs_all_diff"] == pytest.approx(d.mean())
    assert mid.extra["vs_all_p"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert (mid.extra["vs_all_ci_low"], mid.extra["vs_all_ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert mid.extra["vs_all_claim"] == "better"
    # a proportion's interval is a Wilson interval at the effective n: inside [0, 1], around the mean
    assert 0 <= mid.extra["ci_low"] < 0.32 < mid.extra["ci_high"] <= 1
    full = rows["middle"]
    assert full.extra["role"] == "full-control" and full.extra["vs_all_n"] == 2 and full.n == 2
    assert full.extra["vs_all_diff"] == pytest.approx(np.mean([0.25 - 0.20, 0.20 - 0.24]))
    assert full.extra["vs_all_claim"] == "inconclusive"
    assert rows["all"].extra["role"] == "reference" and math.isnan(rows["all"].extra["vs_all_diff"])
    assert rows["all"].extra["vs_all_claim"] == ""


def item_tables(scores: dict, items: int, with_items=lambda method, spec, seed: True):
    """tune_eval / tuning / tune_items of configurations whose per-item 0/1 scores are given as [seeds, items]."""
    evals, tuning, item_rows = [], [], []
    for (method, spec), grid in scores.items():
        for seed, row in enumerate(np.asarray(grid, dtype=float)):
            tags = {"method": method, "blocks": spec, "seed": seed, "k": -1, "layers": "0-3", "side": "tuned",
                    "dataset": "organism-qa"}
            evals.append({**tags, "metric": "exact_match", "value": row.mean(), "n": items})
            tuning += [{**tags, "metric": "trainable_params", "value": 100},
                       {**tags, "metric": "budget_rel_error", "value": 0.0}]
            if with_items(method, spec, seed):
                item_rows += [{**tags, "metric": "exact_match", "item": f"q{i}", "value": v, "n": 1, "mode": "item"}
                              for i, v in enumerate(row)]
    return pd.DataFrame(evals), pd.DataFrame(tuning), pd.DataFrame(item_rows)


def test_summary_over_items_and_seeds_and_the_issue_cases():
    """The issue's cases: an interval of accuracies past 1 (t on 3 values), p = 0 for 3 identical differences."""
    rng = np.random.default_rng(0)
    ref = (rng.random((3, 116)) < 0.6).astype(float)
    better = ref.copy()
    better[:, :12] = 1.0  # 12 more items right in every seed: the same difference in each seed
    perfect = np.ones((3, 116))
    perfect[1, 0] = 0  # seeds 1.0, 0.991, 1.0: a seeds-only t-interval runs past 1
    evals, tuning, items = item_tables({("lora", "all"): ref, ("lora", "01000"): better, ("lora", "00010"): perfect},
                                       116)
    rows = {r.extra["blocks"]: r for r in summarize(evals, tuning, items=items)}
    for r in rows.values():
        assert r.extra["uncertainty"] == "seeds x items" and r.extra["n_items"] == 116
        assert 0 <= r.extra["ci_low"] <= r.value <= r.extra["ci_high"] <= 1
    mid = rows["01000"]
    gained = (1 - ref[:, :12]).sum(1) / 116  # per-seed difference from all-layer LoRA
    assert mid.extra["vs_all_diff"] == pytest.approx(gained.mean())
    assert 0 < mid.extra["vs_all_p"] < 0.05 and mid.extra["vs_all_claim"] == "better"
    assert mid.extra["vs_all_items"] == 116 and mid.extra["vs_all_n"] == 3
    # identical item scores in every seed: no seed variance, yet p > 0 and a finite interval
    same = {("lora", "all"): np.tile(ref[0], (3, 1)), ("lora", "01000"): np.tile(better[0], (3, 1))}
    evals, tuning, items = item_tables(same, 116)
    mid = {r.extra["blocks"]: r for r in summarize(evals, tuning, items=items)}["01000"]
    assert mid.extra["vs_all_p"] > 0 and mid.extra["vs_all_ci_low"] < mid.extra["vs_all_diff"] < mid.extra["vs_all_ci_high"]
    # and with seeds only (no items), identical per-seed differences are floored by the 1/116 resolution
    evals, tuning, _ = item_tables(same, 116)
    mid = {r.extra["blocks"]: r for r in summarize(evals, tuning)}["01000"]
    assert mid.extra["uncertainty"] == "seeds only" and 0 < mid.extra["vs_all_p"] < 0.05
    assert math.isfinite(mid.extra["vs_all_ci_low"]) and mid.extra["vs_all_ci_low"] < mid.extra["vs_all_diff"]


def test_cells_without_item_rows_are_summarised_over_seeds():
    rng = np.random.default_rng(1)
    grids = {("lora", "all"): (rng.random((3, 50)) < 0.5), ("lora", "01000"): (rng.random((3, 50)) < 0.5)}
    # seed 2 of 01000 was written by an older version: no item rows
    evals, tuning, items = item_tables(grids, 50, lambda method, spec, seed: not (spec == "01000" and seed == 2))
    rows = {r.extra["blocks"]: r for r in summarize(evals, tuning, items=items)}
    assert rows["01000"].extra["uncertainty"] == "seeds only" and rows["all"].extra["uncertainty"] == "seeds x items"
    assert rows["01000"].extra["vs_all_items"] == 0  # the comparison falls back to seeds as well
    wide = summary_wide(pd.DataFrame([{**r.as_dict()} for r in summarize(evals, tuning, items=items)]))
    assert "vs all" in wide.set_index("blocks").loc["01000", "organism-qa:exact_match"]
    pair = compare_configs(evals, items, ("lora", "all"), ("lora", "01000"), "organism-qa", "exact_match")
    assert pair["diff"] == pytest.approx(-rows["01000"].extra["vs_all_diff"]) and pair["basis"].startswith("3 seeds")


@pytest.mark.integration
def test_plots_from_a_summary_table(tmp_path):
    rows = []
    for k in (3, 10):
        for i in range(k):
            mask = "".join("1" if j == i else "0" for j in range(k))
            rows.append({"method": "lora", "blocks": mask, "role": "mask", "k": k, "segment": i,
                         "value": 1 - abs(i - k / 2) / k, "ci_low": 0.1, "ci_high": 1.0, "n": 3})
    rows.append({"method": "lora", "blocks": "all", "role": "reference", "k": -1, "segment": -1, "value": 0.6,
                 "ci_low": 0.5, "ci_high": 0.7, "n": 3})
    df = pd.DataFrame(rows).assign(dataset="toxigen", metric="accuracy", trainable_params=1234.0, base_value=0.4)
    paths = plot_sweep(df, tmp_path)
    assert sorted(p.name for p in paths) == ["sweep_scores__toxigen__accuracy.png",
                                             "sweep_segments__toxigen__accuracy.png"]
    assert all(p.stat().st_size > 5000 for p in paths)


def _run_cli(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


@pytest.fixture(scope="module")
def organism(tmp_path_factory):
    return tiny_organism(tmp_path_factory.mktemp("sweep"))


def _sweep_argv(base, data, out):
    return ["sweep", "--base", base, "--train", "organism-sft", "--data-dir", data, "--k", "2", "--masks", "10,all",
            "--seeds", "0,1", "--controls", "none", "--tasks", "organism-qa", "--retention", "organism-facts",
            "--max-steps", "2", "--batch-size", "4", "--max-length", "32", "--lr", "0.01", "--out", out]


@pytest.mark.integration
def test_list_prints_one_tune_line_per_cell_that_rebuilds_it(capsys, organism, tmp_path):
    base, data = organism
    argv = _sweep_argv(base, data, tmp_path / "sw")
    argv[argv.index("--controls") + 1] = "lora-early,full-late"
    lines = _run_cli(capsys, *argv, "--list").strip().splitlines()
    parser = cli.build_parser()[0]
    cfg = config_from_namespace(SweepConfig, parser.parse_args([str(a) for a in argv]))
    assert (cfg.k, cfg.masks, cfg.seeds, cfg.controls) == (2, ["10", "all"], [0, 1], ["lora-early", "full-late"])
    cells = expand_cells(cfg, tmp_path / "sw")
    assert len(lines) == len(cells) == 2 * 3  # no middle mask at k = 2, so lora-early adds nothing
    for line, c in zip(lines, cells):
        words = shlex.split(line)
        assert words[:2] == ["sftscope", "tune"]
        parsed = parser.parse_args(words[1:])
        assert config_from_namespace(TuneConfig, parsed) == c.config and parsed.out == str(c.path)


@pytest.mark.integration
def test_real_tiny_sweep_through_the_cli_and_resume(capsys, organism, tmp_path, monkeypatch):
    base, data = organism
    out = tmp_path / "sw"
    _run_cli(capsys, *_sweep_argv(base, data, out), "--cell", "1")
    assert (out / "cells" / "lora-all-seed0" / "tune_eval.parquet").exists()
    assert not (out / "cells" / "lora-10-seed0").exists()
    printed = _run_cli(capsys, *_sweep_argv(base, data, out))
    assert "organism-qa:exact_match" in printed
    summary = pd.read_parquet(out / "sweep_summary.parquet")
    assert set(summary["blocks"]) == {"10", "all"} and set(summary["n"]) == {2}
    assert {"perplexity", "perplexity_change"} <= set(summary[summary["dataset"] == "organism-facts"]["metric"])
    row = summary[(summary["blocks"] == "10") & (summary["metric"] == "perplexity_change")].iloc[0]
    cells = pd.read_parquet(out / "tune_eval.parquet")
    mine = cells[(cells["blocks"] == "10") & (cells["metric"] == "perplexity_change")]
    assert row["value"] == pytest.approx(mine["value"].mean()) and len(mine) == 2
    assert (cells["side"] == "base").sum() == len(cells[cells["cell"] == "base"]) > 0
    qa = summary[(summary["dataset"] == "organism-qa") & (summary["metric"] == "exact_match")]
    assert set(qa["uncertainty"]) == {"seeds x items"} and set(qa["n_items"]) == {4}  # the 4 qa items, 2 seeds
    assert ((qa["ci_low"] >= 0) & (qa["ci_high"] <= 1)).all()
    assert set(summary[summary["metric"] == "perplexity"]["uncertainty"]) == {"seeds only"}  # no per-item scores
    items = pd.read_parquet(out / "tune_items.parquet")
    assert set(items["side"]) == {"tuned", "base"} and set(items["seed"]) >= {0, 1}
    assert sorted(p.name for p in (out / "figures").iterdir())[0].startswith("sweep_")

    def boom(*args, **kwargs):
        raise AssertionError("finished cells must not be trained again")
    monkeypatch.setattr(pipeline, "train_cell", boom)
    _run_cli(capsys, *_sweep_argv(base, data, out))
    _run_cli(capsys, *_sweep_argv(base, data, out), "--summarize-only")
