"""compare_with_sweep on hand-made sweep summaries with known answers."""

import pandas as pd
import pytest

from sftscope.errors import SftscopeError
from sftscope.suggest.compare import compare_with_sweep, sweep_columns
from sftscope.suggest.decide import Suggestion, depth_spec, mask_for


def suggestion(start: int, stop: int, n: int = 10, k: int = 5) -> Suggestion:
    return Suggestion(start=start, stop=stop, num_blocks=n, k=k, mask=mask_for(start, stop, n, k),
                      depth=depth_spec(start, stop, n), layer_spec=f"layers:{start}-{stop - 1}", early_end=start,
                      late_start=stop)


def sweep(metric: str = "gsm8k:exact_match") -> pd.DataFrame:
    rows = [("lora", "all", 0.28, 0.25, 0.31), ("lora", "01000", 0.375, 0.35, 0.40), ("lora", "01110", 0.36, 0.33, 0.39),
            ("lora", "10000", 0.20, 0.18, 0.22), ("full", "middle", 0.5, 0.4, 0.6)]
    return pd.DataFrame([dict(method=m, blocks=s, metric=metric, value=v, ci_low=lo, ci_high=hi, vs_all_diff=v - 0.28)
                         for m, s, v, lo, hi in rows])


def test_exact_match_ranked_with_gap_and_all_layer_difference():
    result = compare_with_sweep(suggestion(2, 8), sweep())  # blocks 2-7 = mask 01110 of 10 blocks
    assert result["evaluated"] and result["suggested"]["spec"] == "01110"
    assert result["rank"] == 2 and result["n_configs"] == 4  # the full-block row is not a LoRA placement
    assert not result["agreement"]
    assert result["score_gap"] == pytest.approx(0.015)
    assert result["within_best_ci"] is True
    assert result["vs_all_layer"] == pytest.approx(0.08)
    assert result["overlap_with_best"] == pytest.approx(2 / 6)


def test_agreement_when_suggestion_is_the_best():
    result = compare_with_sweep(suggestion(2, 4), sweep())
    assert result["agreement"] and result["rank"] == 1 and result["score_gap"] == 0


def test_nearest_evaluated_spec_stands_in():
    result = compare_with_sweep(suggestion(2, 7), sweep())  # 5 of the 6 blocks of 01110
    assert not result["evaluated"] and result["suggested"]["spec"] == "01110"
    assert result["overlap_with_evaluated"] == pytest.approx(5 / 6)


def test_lower_is_better_metric_flips_the_order():
    df = sweep("retention:perplexity")
    result = compare_with_sweep(suggestion(2, 8), df)
    assert result["higher_is_better"] is False
    assert result["best"]["spec"] == "10000" and result["rank"] == 3
    assert result["score_gap"] == pytest.approx(0.16)


def test_a_summary_with_fewer_columns_and_one_without_the_required_ones():
    df = sweep().drop(columns=["ci_low", "ci_high", "method"])
    assert sweep_columns(df)["spec"] == "blocks" and "ci_low" not in sweep_columns(df)
    result = compare_with_sweep(suggestion(2, 4), df[df["blocks"] != "middle"])
    assert result["agreement"] and "within_best_ci" not in result
    with pytest.raises(SftscopeError, match="blocks and value"):
        compare_with_sweep(suggestion(2, 4), pd.DataFrame({"x": [1]}))


def test_summary_table_of_the_sweep_stage_two_tasks_not_mixed():
    """The sweep stage's tidy summary: value = mean, dataset = task, vs_all_* paired columns."""
    rows = []
    for task, scores in (("organism-qa", {"all": 0.3, "01000": 0.5, "00010": 0.1}),
                         ("organism-mc", {"all": 0.9, "01000": 0.2, "00010": 0.95})):
        for spec, v in scores.items():
            rows.append(dict(run="r", side="tuned", dataset=task, layer=-1, metric="accuracy", value=v, n=3,
                             preset="", mode="summary", method="lora", blocks=spec, ci_low=v - 0.01,
                             ci_high=v + 0.01, vs_all_diff=v - scores["all"]))
    df = pd.DataFrame(rows)
    assert sweep_columns(df)["diff"] == "vs_all_diff" and sweep_columns(df)["mean"] == "value"
    result = compare_with_sweep(suggestion(2, 4), df)  # blocks 2-3 = 01000 of 10
    assert result["metric"] == "organism-qa accuracy" and result["agreement"] and result["n_configs"] == 3
    other = compare_with_sweep(suggestion(2, 4), df, metric="organism-mc accuracy")
    assert other["rank"] == 3 and other["best"]["spec"] == "00010"


def test_the_first_evaluation_task_is_the_judged_metric():
    import pandas as pd
    from sftscope.suggest.compare import normalize_sweep, pick_metric, sweep_columns
    rows = []
    for task, order, scores in (("organism-mc", 1, {"10000": 0.90, "all": 0.99}),
                                ("organism-qa", 0, {"10000": 0.98, "all": 0.97})):
        for spec, value in scores.items():
            metric = "accuracy" if task == "organism-mc" else "exact_match"
            rows.append({"dataset": task, "metric": metric, "blocks": spec, "method": "lora", "value": value,
                         "task_order": order})
    df = normalize_sweep(pd.DataFrame(rows))
    assert pick_metric(df, sweep_columns(df)) == "organism-qa exact_match"


def test_paired_comparison_with_the_best_over_seeds_and_items():
    """With the sweep's tune_eval / tune_items tables the suggestion is compared with the best pair-wise, and the
    claim is decided by the interval (here the best is clearly better: 30 more items right in every seed)."""
    import numpy as np

    from sftscope.results.rundir import rows_to_frame
    from sftscope.tuning.summary import summarize
    from tests.tuning.test_sweep import item_tables

    rng = np.random.default_rng(0)
    base = (rng.random((3, 116)) < 0.5).astype(float)
    best = base.copy()
    best[:, :30] = 1.0
    evals, tuning, items = item_tables({("lora", "all"): base, ("lora", "01000"): best, ("lora", "01110"): base}, 116)
    summary = rows_to_frame(summarize(evals, tuning, items=items))
    result = compare_with_sweep(suggestion(2, 8), summary, tune_eval=evals, tune_items=items)
    assert result["best"]["spec"] == "01000" and result["suggested"]["spec"] == "01110"
    pair = result["vs_best"]
    assert pair["basis"] == "3 seeds x 116 items" and pair["claim"] == "worse"
    assert pair["diff"] == pytest.approx(base.mean() - best.mean()) and pair["ci_high"] < 0
    assert "vs_best" not in compare_with_sweep(suggestion(2, 4), summary, tune_eval=evals, tune_items=items)
