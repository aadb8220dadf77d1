"""The optional lm-evaluation-harness backend: a clean error without the package, rows from its result dict."""

import sys

import pytest

from sftscope.errors import SftscopeError
from sftscope.evaluation.lm_eval_backend import evaluate_with_lm_eval, rows_from_lm_eval


def test_missing_lm_eval_is_a_clean_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # makes `import lm_eval` raise ImportError
    with pytest.raises(SftscopeError, match="needs the 'lm_eval' package.*pip install"):
        evaluate_with_lm_eval(object(), object(), ["gsm8k"], limit=2)


def test_rows_from_a_simple_evaluate_result():
    results = {
        "results": {"gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.1,
                              "exact_match,flexible-extract": 0.5, "exact_match_stderr,flexible-extract": "N/A"},
                    "mmlu": {"alias": "mmlu", "acc,none": 0.4, "acc_stderr,none": 0.02}},
        "n-samples": {"gsm8k": {"original": 1319, "effective": 8}, "mmlu": {"original": 14042, "effective": 570}},
    }
    rows = {(r.dataset, r.metric): r for r in rows_from_lm_eval(results, "sft")}
    assert set(rows) == {("gsm8k", "exact_match_strict-match"), ("gsm8k", "exact_match_flexible-extract"),
                         ("mmlu", "acc")}
    assert rows[("gsm8k", "exact_match_strict-match")].extra == {"backend": "lm_eval", "stderr": 0.1}
    assert rows[("gsm8k", "exact_match_flexible-extract")].extra == {"backend": "lm_eval"}
    assert rows[("mmlu", "acc")].n == 570 and rows[("mmlu", "acc")].mode == "task"
