"""The lm-eval backend: a one-line error without the package, rows from its result dict, local task configs."""

import json
import sys

import pytest

from sftscope.errors import SftscopeError
from sftscope.evaluation.lm_eval_backend import evaluate_with_lm_eval, rows_from_lm_eval, write_local_tasks
from sftscope.evaluation.mmlu import select_items
from sftscope.data.registry import load_records
from tests.conftest import SHARED_DATA, lm_eval_or_skip


def test_missing_lm_eval_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # makes `import lm_eval` raise ImportError
    with pytest.raises(SftscopeError, match=r"needs the 'lm_eval' package.*pip install 'sftscope\[eval\]'") as err:
        evaluate_with_lm_eval(object(), object(), ["gsm8k"], limit=2)
    assert "\n" not in str(err.value)


def test_missing_lm_eval_fails_in_the_config(monkeypatch):
    from sftscope.evaluation.config import EvaluateConfig
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    cfg = EvaluateConfig(models=["m"], tasks=["gsm8k"], backend="lm-eval")
    with pytest.raises(SftscopeError, match="lm_eval"):
        cfg.check_tasks(cfg.tasks)


def test_rows_from_a_simple_evaluate_result():
    results = {
        "results": {"gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.1,
                              "exact_match,flexible-extract": 0.5, "exact_match_stderr,flexible-extract": "N/A"},
                    "mmlu_anatomy": {"alias": "anatomy", "acc,none": 0.5, "acc_stderr,none": "N/A"},
                    "mmlu_astronomy": {"alias": "astronomy", "acc,none": 0.25, "acc_stderr,none": "N/A"},
                    "mmlu": {"alias": "mmlu", "acc,none": 0.4, "acc_stderr,none": 0.02}},
        "n-samples": {"gsm8k": {"original": 1319, "effective": 8}, "mmlu_anatomy": {"original": 2, "effective": 2},
                      "mmlu_astronomy": {"original": 4, "effective": 4}},
        "versions": {"gsm8k": 3.0, "mmlu": "2", "mmlu_anatomy": 1.0, "mmlu_astronomy": 1.0},
        "n-shot": {"gsm8k": 5, "mmlu": 0, "mmlu_anatomy": 0, "mmlu_astronomy": 0},
        "group_subtasks": {"mmlu": ["mmlu_anatomy", "mmlu_astronomy"]},
    }
    rows = {(r.dataset, r.metric): r for r in rows_from_lm_eval(results, "sft", extra={"cell": "c"})}
    assert set(rows) == {("gsm8k", "exact_match_strict-match"), ("gsm8k", "exact_match_flexible-extract"),
                         ("mmlu", "acc"), ("mmlu_anatomy", "acc"), ("mmlu_astronomy", "acc")}
    strict = rows[("gsm8k", "exact_match_strict-match")]
    assert strict.extra == {"cell": "c", "backend": "lm-eval", "protocol": "lm-eval:gsm8k@3.0", "stderr": 0.1,
                            "num_fewshot": 5}
    assert "stderr" not in rows[("gsm8k", "exact_match_flexible-extract")].extra
    group = rows[("mmlu", "acc")]
    assert group.n == 6 and group.mode == "task" and group.extra["protocol"] == "lm-eval:mmlu@2"


@pytest.mark.integration
def test_local_task_configs_hold_exactly_the_native_items(tmp_path):
    lm_eval_or_skip()
    import yaml
    subjects = ["anatomy", "astronomy"]
    assert write_local_tasks(tmp_path, ["gsm8k", "mmlu", "hellaswag"], SHARED_DATA, limit=5,
                             subjects=subjects) == ["gsm8k", "mmlu"]
    gsm8k = yaml.safe_load((tmp_path / "gsm8k.yaml").read_text())
    assert gsm8k["include"].endswith("tasks/gsm8k/gsm8k.yaml") and gsm8k["dataset_path"] == "json"
    test = [json.loads(line) for line in open(gsm8k["dataset_kwargs"]["data_files"]["test"])]
    assert [r["question"] for r in test] == [r["question"] for r in load_records("gsm8k", SHARED_DATA, "test")[:5]]
    group = yaml.safe_load((tmp_path / "_mmlu.yaml").read_text())
    assert group["group"] == "mmlu" and group["task"] == ["mmlu_anatomy", "mmlu_astronomy"]
    chosen = select_items(load_records("mmlu", SHARED_DATA, "test"), 5, subjects)
    for subject in subjects:
        config = yaml.safe_load((tmp_path / f"mmlu_{subject}.yaml").read_text())
        assert config["include"].endswith(f"tasks/mmlu/default/mmlu_{subject}.yaml")
        items = [json.loads(line) for line in open(config["dataset_kwargs"]["data_files"]["test"])]
        assert [r["question"] for r in items] == [r["question"] for r in chosen if r["subject"] == subject]
        assert all(len(r["choices"]) == 4 and isinstance(r["answer"], int) for r in items)


@pytest.fixture(scope="module")
def saved_llama2(tmp_path_factory):
    """A random tiny Llama with a Llama-2-style tokenizer, saved like a hub checkpoint (4096 positions)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from tests.tokenizer_families import make_family
    tok = make_family("llama2")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, initializer_range=0.5, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    path = tmp_path_factory.mktemp("llama2") / "model"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.integration
def test_cli_evaluate_with_both_backends_offline(saved_llama2, tmp_path, monkeypatch, capsys):
    """`sftscope evaluate --backend lm-eval --tasks gsm8k,mmlu --data-dir ...` runs offline and gives the native
    backend's numbers in the same tidy table."""
    lm_eval_or_skip()
    from sftscope.cli import main
    from sftscope.results.rundir import RunDir
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tables = {}
    for backend in ("lm-eval", "sftscope"):
        argv = ["evaluate", "--model", f"m={saved_llama2}", "--tasks", "gsm8k,mmlu", "--backend", backend,
                "--limit", "3", "--max-new-tokens", "8", "--batch-size", "1", "--data-dir", str(SHARED_DATA),
                "--out", str(tmp_path / backend)]
        assert main(argv) == 0, capsys.readouterr().err
        tables[backend] = RunDir(tmp_path / backend).read_table("tasks")
    lm, native = tables["lm-eval"], tables["sftscope"]
    assert set(lm["backend"]) == {"lm-eval"} and set(native["backend"]) == {"sftscope"}
    for dataset, metric in [("gsm8k", "exact_match_strict-match"), ("gsm8k", "exact_match_flexible-extract"),
                            ("mmlu", "acc")]:
        a = lm[(lm["dataset"] == dataset) & (lm["metric"] == metric)].iloc[0]
        b = native[(native["dataset"] == dataset) & (native["metric"] == metric)].iloc[0]
        assert (a["value"], a["n"], a["protocol"], a["num_fewshot"]) == (b["value"], b["n"], b["protocol"],
                                                                          b["num_fewshot"])


@pytest.mark.integration
def test_tune_scores_through_lm_eval(saved_llama2, tmp_path, monkeypatch):
    """tune --backend lm-eval: the Base and the tuned model scored by lm-eval's mmlu; retention stays native."""
    lm_eval_or_skip()
    from sftscope.tuning.config import TuneConfig
    from sftscope.tuning.pipeline import run_tune
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    cfg = TuneConfig(base=str(saved_llama2), train="gsm8k", train_limit=4, data_dir=str(SHARED_DATA), blocks="all",
                     max_steps=1, batch_size=2, max_length=64, tasks=["mmlu"], limit=2, backend="lm-eval",
                     retention=["ppl:ifeval"], retention_limit=2, eval_batch_size=2)
    evals = run_tune(cfg, tmp_path / "cell", progress=False).read_table("tune_eval")
    mmlu = evals[(evals["dataset"] == "mmlu") & (evals["metric"] == "acc")]
    assert set(mmlu["side"]) == {"base", "tuned"} and set(mmlu["backend"]) == {"lm-eval"}
    assert set(evals[evals["dataset"] == "ppl:ifeval"]["backend"]) == {"sftscope"}
