"""Per-item rows of a task result: written only where the items' mean reproduces the score."""

import pytest

from sftscope.evaluation.tasks import TaskResult
from sftscope.tuning.pipeline import item_rows


def test_item_rows_follow_the_details_and_agree_with_the_score():
    details = [{"id": "a", "correct": True, "strict_correct": True, "flexible_correct": True},
               {"id": "b", "correct": False, "strict_correct": False, "flexible_correct": True}]
    # the metric names of sftscope's tasks (lm-eval's for gsm8k and mmlu)
    result = TaskResult("t", {"acc": 0.5, "exact_match_strict-match": 0.5, "exact_match_flexible-extract": 1.0,
                              "acc_macro": 0.7, "n_tokens": 10.0}, 2, details)
    rows = item_rows(result, "tuned", "run", {"seed": 3})
    got = {(r.metric, r.extra["item"]): r.value for r in rows}
    assert got == {("acc", "a"): 1.0, ("acc", "b"): 0.0, ("exact_match_strict-match", "a"): 1.0,
                   ("exact_match_strict-match", "b"): 0.0, ("exact_match_flexible-extract", "a"): 1.0,
                   ("exact_match_flexible-extract", "b"): 1.0}  # macro accuracy and counts have no per-item field
    assert all(r.mode == "item" and r.extra["seed"] == 3 and r.n == 1 for r in rows)


@pytest.mark.parametrize("details", [
    [{"id": "a", "accuracy": 1.0}, {"id": "b", "accuracy": 1.0}],   # mean 1.0 is not the score 0.5: skipped
    [{"id": "a", "accuracy": 1.0}, {"id": "b", "accuracy": None}],  # a non-numeric item score: skipped
    [],
])
def test_no_item_rows_that_disagree_with_the_score(details):
    assert item_rows(TaskResult("t", {"accuracy": 0.5}, 2, details), "tuned", "run", {}) == []


def test_missing_or_repeated_ids_fall_back_to_positions():
    details = [{"id": "x", "accuracy": 1.0}, {"id": "x", "accuracy": 0.0}]
    rows = item_rows(TaskResult("t", {"accuracy": 0.5}, 2, details), "base", "run", {})
    assert [r.extra["item"] for r in rows] == ["0", "1"]


def test_per_kind_scores_come_from_the_items_of_that_kind():
    details = [{"id": "a", "exact_match": 1.0, "exact_match:city": 1.0},
               {"id": "b", "exact_match": 0.0, "exact_match:job": 0.0},
               {"id": "c", "exact_match": 1.0, "exact_match:job": 1.0}]
    result = TaskResult("organism-qa", {"exact_match": 2 / 3, "exact_match:city": 1.0, "exact_match:job": 0.5}, 3,
                        details)
    rows = item_rows(result, "tuned", "run", {})
    by_metric = {}
    for r in rows:
        by_metric.setdefault(r.metric, []).append(r.extra["item"])
    assert by_metric == {"exact_match": ["a", "b", "c"], "exact_match:city": ["a"], "exact_match:job": ["b", "c"]}


def test_every_item_metric_of_the_real_scorers_gets_item_rows():
    """The per-item field names follow the task scorers' own metric names (a renamed metric must not silently
    lose its item rows, which the sweep's item-level uncertainty needs)."""
    from sftscope.evaluation.gsm8k import score_generations
    from sftscope.evaluation.mmlu import score_mmlu
    from sftscope.evaluation.toxigen import score_toxigen

    gsm = [{"id": f"g{i}", "question": "q", "answer": f"work\n#### {i}"} for i in range(3)]
    metrics, details = score_generations(["#### 0", "The answer is 1.", "no number"], gsm)
    got = {r.metric for r in item_rows(TaskResult("gsm8k", metrics, 3, details), "tuned", "run", {})}
    assert {"exact_match_strict-match", "exact_match_flexible-extract", "exact_match_value_strict",
            "exact_match_value_flexible"} <= got
    mmlu = [{"id": f"m{i}", "subject": "s", "question": "q", "choice0": "a", "choice1": "b", "choice2": "c",
             "choice3": "d", "answer": i % 4} for i in range(4)]
    metrics, details = score_mmlu([[0.0, -1.0, -2.0, -3.0]] * 4, mmlu)
    assert "acc" in {r.metric for r in item_rows(TaskResult("mmlu", metrics, 4, details), "tuned", "run", {})}
    tox = [{"id": f"t{i}", "label": "hate" if i % 2 else "neutral", "target_group": "g"} for i in range(4)]
    metrics, details = score_toxigen([[0.0, -1.0]] * 4, tox)
    assert "accuracy" in {r.metric for r in item_rows(TaskResult("toxigen", metrics, 4, details), "t", "r", {})}


def test_every_metric_of_the_scorers_is_declared_by_its_task():
    """A task says which of its metrics are shares of items and which are counts (the report's intervals and the
    sweep's scores read those declarations): a new or renamed metric must be declared there."""
    from sftscope.evaluation.gsm8k import score_generations
    from sftscope.evaluation.mmlu import score_mmlu
    from sftscope.evaluation.tasks import get_task
    from sftscope.evaluation.toxigen import score_toxigen

    outputs = {
        "gsm8k": score_generations(["#### 1"], [{"id": "g", "question": "q", "answer": "#### 1"}])[0],
        "mmlu": score_mmlu([[0.0, -1.0, -2.0, -3.0]], [{"id": "m", "subject": "s", "answer": 0}])[0],
        "toxigen": score_toxigen([[0.0, -1.0]], [{"id": "t", "label": "hate", "target_group": "g"}])[0],
    }
    for task, metrics in outputs.items():
        spec = get_task(task)
        assert set(metrics) <= set(spec.proportions) | set(spec.counts), (task, set(metrics))
