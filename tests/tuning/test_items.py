"""Per-item rows of a task result: written only where the items' mean reproduces the score."""

import pytest

from sftscope.evaluation.tasks import TaskResult
from sftscope.tuning.pipeline import item_rows


def test_item_rows_follow_the_details_and_agree_with_the_score():
    details = [{"id": "a", "correct": True, "strict_correct": True, "flexible_correct": True},
               {"id": "b", "correct": False, "strict_correct": False, "flexible_correct": True}]
    result = TaskResult("t", {"accuracy": 0.5, "exact_match_strict": 0.5, "exact_match_flexible": 1.0,
                              "accuracy_macro": 0.7, "n_tokens": 10.0}, 2, details)
    rows = item_rows(result, "tuned", "run", {"seed": 3})
    got = {(r.metric, r.extra["item"]): r.value for r in rows}
    assert got == {("accuracy", "a"): 1.0, ("accuracy", "b"): 0.0, ("exact_match_strict", "a"): 1.0,
                   ("exact_match_strict", "b"): 0.0, ("exact_match_flexible", "a"): 1.0,
                   ("exact_match_flexible", "b"): 1.0}  # macro accuracy and counts have no per-item field
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
