"""Parity with lm-evaluation-harness: sftscope's native gsm8k and mmlu against lm-eval's own tasks (run in-process
through the lm-eval backend, offline on the local copies), on the same tiny model and the same items.

Per item: the same prompt string, the same continuations, the same generation, the same strict-match and
flexible-extract strings and exact_match, the same predicted letter, log-likelihoods within 1e-5.
Three tokenizer families: SentencePiece/Metaspace with BOS (Llama-2 style; where separate encoding was wrong),
byte-level BPE without BOS (GPT-2 style), and byte-level with BOS under a chat template (Llama-3 style, lm-eval's
apply_chat_template with multi-turn few-shot). Both sides run with batch size 1, so the forward passes are the
same arithmetic (batch composition changes float rounding, ~1e-5 on these random weights).
Random weights (initializer_range 0.5) give varied text with numbers, '$', '<<', so the filters see real work.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from sftscope.data.registry import load_records
from sftscope.evaluation.gsm8k import build_prompts, run_gsm8k
from sftscope.evaluation.mmlu import build_context, load_items, run_mmlu
from tests.conftest import SHARED_DATA, lm_eval_or_skip
from tests.tokenizer_families import make_family

pytestmark = pytest.mark.integration
lm_eval_or_skip()
from sftscope.evaluation.lm_eval_backend import run_lm_eval  # noqa: E402

SUBJECTS = ["abstract_algebra", "anatomy", "astronomy"]
TOLERANCE = 1e-5
SETUPS = {  # family, chat template, gsm8k items, mmlu items (0-shot), mmlu items with k-shot, k
    "llama2": ("llama2", False, 20, 30, 9, 5),
    "gpt2-no-bos": ("gpt2", False, 8, 15, 6, 2),
    "llama3-chat": ("llama3", True, 5, 12, 6, 1),
}


def random_model(tok) -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, initializer_range=0.5,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).eval()


def compare_gsm8k(model, tok, n: int, chat: bool) -> dict:
    ours = run_gsm8k(model, tok, data_dir=SHARED_DATA, limit=n, max_new_tokens=48, batch_size=1, chat_template=chat)
    theirs = run_lm_eval(model, tok, ["gsm8k"], data_dir=SHARED_DATA, limit=n, max_new_tokens=48, batch_size=1,
                         chat_template=chat, log_samples=True)
    records = load_records("gsm8k", SHARED_DATA, "test")[:n]
    prompts = build_prompts(records, load_records("gsm8k", SHARED_DATA, "train"), 5, tokenizer=tok,
                            chat_template=chat)
    samples = theirs["samples"]["gsm8k"]
    assert len(samples) == 2 * n  # one per item and filter
    key = {"strict-match": ("strict", "strict_correct"), "flexible-extract": ("flexible", "flexible_correct")}
    for sample in samples:
        mine = ours.details[sample["doc_id"]]
        assert sample["arguments"][0][0] == prompts[sample["doc_id"]]  # the same 5-shot prompt
        assert sample["resps"][0][0] == mine["generation"]             # the same greedy generation
        field, correct = key[sample["filter"]]
        assert sample["filtered_resps"][0] == mine[field]
        assert bool(sample["exact_match"]) == mine[correct]
    for name in ("strict-match", "flexible-extract"):
        assert theirs["results"]["gsm8k"][f"exact_match,{name}"] == ours.metrics[f"exact_match_{name}"]
    assert sum(d["flexible"] != "[invalid]" for d in ours.details) >= n // 3  # the filters had numbers to read
    return {"items": n, "same": sum(s["resps"][0][0] == ours.details[s["doc_id"]]["generation"]
                                    for s in samples) // 2}


def compare_mmlu(model, tok, n: int, k: int, chat: bool) -> dict:
    ours = run_mmlu(model, tok, data_dir=SHARED_DATA, limit=n, subjects=SUBJECTS, k_shot=k, batch_size=1,
                    chat_template=chat)
    theirs = run_lm_eval(model, tok, ["mmlu"], data_dir=SHARED_DATA, limit=n, subjects=SUBJECTS, num_fewshot=k,
                         batch_size=1, chat_template=chat, log_samples=True)
    records, dev = load_items(SHARED_DATA, n, SUBJECTS, k)
    by_subject = defaultdict(list)
    for record, detail in zip(records, ours.details):
        by_subject[record["subject"]].append((record, detail))
    worst, n_seen = 0.0, 0
    for subject, items in by_subject.items():
        for sample in theirs["samples"][f"mmlu_{subject}"]:
            record, detail = items[sample["doc_id"]]
            context = build_context(record, dev, k, tokenizer=tok, chat_template=chat)
            assert [a[0] for a in sample["arguments"]] == [context] * 4
            assert [a[1] for a in sample["arguments"]] == ([f"{x}" for x in "ABCD"] if chat else
                                                           [f" {x}" for x in "ABCD"])
            lls = [r[0][0] for r in sample["resps"]]
            worst = max(worst, max(abs(ll - detail[f"logprob_{x}"]) for ll, x in zip(lls, "ABCD")))
            assert "ABCD"[max(range(4), key=lls.__getitem__)] == detail["predicted"]
            assert bool(sample["acc"]) == detail["correct"]
            n_seen += 1
    assert n_seen == n and worst <= TOLERANCE
    assert theirs["results"]["mmlu"]["acc,none"] == pytest.approx(ours.metrics["acc"], abs=1e-12)
    return {"items": n, "max_abs_loglik_diff": worst}


@pytest.mark.parametrize("setup", list(SETUPS))
def test_native_tasks_equal_lm_eval_per_item(setup, capsys):
    family, chat, n_gsm8k, n_mmlu, n_mmlu_k, k = SETUPS[setup]
    tok = make_family(family, chat=chat)
    model = random_model(tok)
    figures = {"gsm8k": compare_gsm8k(model, tok, n_gsm8k, chat),
               "mmlu": compare_mmlu(model, tok, n_mmlu, 0, chat),
               f"mmlu-{k}shot": compare_mmlu(model, tok, n_mmlu_k, k, chat)}
    with capsys.disabled():
        print(f"\nparity {setup}: {figures}")
