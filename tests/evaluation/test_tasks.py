"""The task registry: names, lookup errors, tidy rows, per-task options, limit and the model's mode."""

import pytest

import sftscope.evaluation.gsm8k as gsm8k
from sftscope.errors import SftscopeError, UnknownNameError
from sftscope.evaluation.tasks import TASKS, TaskResult, evaluate, first_n, get_task, result_rows, run_task
from sftscope.listing import listing
from tests.conftest import SHARED_DATA, build_tiny, make_tokenizer

EXPECTED = {"gsm8k", "mmlu", "toxigen", "ppl:wikitext", "ppl:ifeval", "ppl:mt_bench", "organism-qa", "organism-mc",
            "organism-facts"}


def test_registry_names_kinds_and_listing():
    assert EXPECTED <= set(TASKS)
    assert {TASKS[name].kind for name in EXPECTED} == {"generate", "loglik", "perplexity"}
    assert TASKS["gsm8k"].kind == "generate" and TASKS["mmlu"].kind == "loglik"
    table = listing("tasks")
    assert all(name in table for name in EXPECTED)


def test_unknown_task_is_a_clean_error():
    with pytest.raises(UnknownNameError, match="unknown task 'gsm9k'; known: .*gsm8k"):
        get_task("gsm9k")
    assert get_task("ppl:/some/notes.txt").kind == "perplexity"  # any text file, resolved when run


def test_first_n():
    assert first_n([1, 2, 3], 2) == [1, 2] and first_n([1, 2], None) == [1, 2] and first_n([1], 5) == [1]
    with pytest.raises(SftscopeError, match="positive"):
        first_n([1], 0)


def test_result_rows_are_tidy_and_name_their_protocol():
    result = TaskResult("mmlu", {"acc": 0.25, "acc_macro": 0.3}, 40,
                        protocols={"acc": "lm-eval:mmlu@2", "acc_macro": "sftscope:mmlu-macro@1"}, num_fewshot=0)
    rows = result_rows(result, "sft", run="r1", preset="p", extra={"mask": "01100"})
    assert [(r.dataset, r.layer, r.metric, r.value, r.n, r.mode, r.side) for r in rows] == [
        ("mmlu", -1, "acc", 0.25, 40, "task", "sft"), ("mmlu", -1, "acc_macro", 0.3, 40, "task", "sft")]
    first = rows[0].as_dict()
    assert first["mask"] == "01100" and first["run"] == "r1"
    assert (first["protocol"], first["backend"], first["num_fewshot"]) == ("lm-eval:mmlu@2", "sftscope", 0)
    assert rows[1].as_dict()["protocol"] == "sftscope:mmlu-macro@1"
    assert "num_fewshot" not in result_rows(TaskResult("ppl:x", {"perplexity": 2.0}, 3), "sft")[0].as_dict()


def test_evaluate_runs_each_task_with_its_options_and_the_limit():
    model, tokenizer = build_tiny("llama"), make_tokenizer()
    model.train()
    rows = evaluate(model, tokenizer, ["mmlu", "toxigen", "ppl:ifeval"], side="base", data_dir=SHARED_DATA, limit=4,
                    batch_size=8, num_fewshot=1,
                    options={"mmlu": {"subjects": ["abstract_algebra"]}, "ppl:ifeval": {"limit": 2}})
    by_task = {}
    for row in rows:
        by_task.setdefault(row.dataset, {})[row.metric] = row
    assert set(by_task) == {"mmlu", "toxigen", "ppl:ifeval"}
    assert by_task["mmlu"]["acc"].n == 4 and by_task["toxigen"]["balanced_accuracy"].n == 4
    assert by_task["mmlu"]["acc"].extra["num_fewshot"] == 1  # num_fewshot reaches the few-shot tasks only
    assert by_task["mmlu"]["acc"].extra["protocol"] == "lm-eval:mmlu@2"
    assert by_task["toxigen"]["accuracy"].extra["protocol"] == "sftscope:toxigen@1"
    assert by_task["ppl:ifeval"]["perplexity"].extra["protocol"] == "sftscope:perplexity@2"
    assert by_task["ppl:ifeval"]["perplexity"].n == 2  # per-task option beats the shared limit
    assert all(r.side == "base" and r.layer == -1 and r.mode == "task" for r in rows)
    assert model.training  # evaluation ran in eval mode and restored the caller's mode
    with pytest.raises(SftscopeError, match="not being run"):
        evaluate(model, tokenizer, ["mmlu"], options={"gsm8k": {"k_shot": 5}})


def test_run_task_sets_eval_mode(monkeypatch):
    seen = []

    def fake_generate(model, tokenizer, prompts, **kwargs):
        seen.append(model.training)
        return [""] * len(prompts)

    monkeypatch.setattr(gsm8k, "greedy_generate", fake_generate)
    model = build_tiny("llama").train()
    result = run_task("gsm8k", model, None, data_dir=SHARED_DATA, limit=2, k_shot=0)
    assert seen == [False] and model.training and result.task == "gsm8k" and result.n == 2
