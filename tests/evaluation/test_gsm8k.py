"""GSM8K task mechanics: a fake generator that knows the answers, and a tiny random model for the plumbing."""

import pytest

import sftscope.evaluation.gsm8k as gsm8k
from sftscope.data.registry import load_records
from tests.conftest import SHARED_DATA, make_tokenizer
from tests.tokenizer_families import make_family


def _oracle(monkeypatch, suffix: str = ""):
    """Replace greedy_generate by a function returning each prompt's gold solution (+ suffix); records calls."""
    gold = {r["question"]: r["answer"] for r in load_records("gsm8k", SHARED_DATA, "test")}
    calls = []

    def fake_generate(model, tokenizer, prompts, max_new_tokens, stop, batch_size):
        calls.append({"prompts": prompts, "max_new_tokens": max_new_tokens, "stop": stop, "batch_size": batch_size})
        question = [p.rsplit("Question: ", 1)[1].removesuffix("\nAnswer:") for p in prompts]
        return [" " + gold[q] + suffix for q in question]

    monkeypatch.setattr(gsm8k, "greedy_generate", fake_generate)
    return calls


def test_gold_generations_score_one(monkeypatch):
    calls = _oracle(monkeypatch)
    result = gsm8k.run_gsm8k(None, None, data_dir=SHARED_DATA, limit=25)
    assert result.n == 25
    assert result.metrics == {"exact_match_strict-match": 1.0, "exact_match_flexible-extract": 1.0,
                              "exact_match_value_strict": 1.0, "exact_match_value_flexible": 1.0,
                              "strict_format_rate": 1.0}
    first = load_records("gsm8k", SHARED_DATA, "test")[:25]  # limit = the first N items, as lm-eval
    assert [d["id"] for d in result.details] == [r["id"] for r in first]
    # lm-eval's defaults: 5 examples, 256 new tokens, its stop sequences (no blank line)
    assert calls[0]["max_new_tokens"] == 256 and calls[0]["stop"] == ["Question:", "</s>", "<|im_end|>"]
    assert all(p.count("Question:") == 6 for p in calls[0]["prompts"]) and result.num_fewshot == 5
    assert result.protocols["exact_match_strict-match"] == "lm-eval:gsm8k@3.0"
    assert result.protocols["exact_match_value_flexible"].startswith("sftscope:")


def test_hallucinated_continuation_does_not_change_the_score(monkeypatch):
    _oracle(monkeypatch, suffix="\n\nQuestion: A farmer has 3 cows. How many legs?\nAnswer: 12\n#### 12")
    result = gsm8k.run_gsm8k(None, None, data_dir=SHARED_DATA, limit=10, k_shot=0)
    assert result.metrics["exact_match_strict-match"] == 1.0
    assert result.metrics["exact_match_flexible-extract"] == 1.0


def test_multi_paragraph_answers_are_not_cut_before_the_final_number(monkeypatch):
    """Chat-style answers put blank lines between steps; the old '\\n\\n' stop cut them before the answer."""
    gold = {r["question"]: r["answer"] for r in load_records("gsm8k", SHARED_DATA, "test")}

    def paragraphs(model, tokenizer, prompts, max_new_tokens, stop, batch_size):
        questions = [p.rsplit("Question: ", 1)[1].removesuffix("\nAnswer:") for p in prompts]
        return [" Let's think.\n\nStep one.\n\nSo the answer is " + gold[q].split("#### ")[-1] + "."
                for q in questions]

    monkeypatch.setattr(gsm8k, "greedy_generate", paragraphs)
    result = gsm8k.run_gsm8k(None, None, data_dir=SHARED_DATA, limit=10, k_shot=0)
    assert result.metrics["exact_match_flexible-extract"] == 1.0
    assert result.metrics["exact_match_strict-match"] == 0.0  # no '#### N' written


def test_wrong_generations_score_zero(monkeypatch):
    monkeypatch.setattr(gsm8k, "greedy_generate", lambda m, t, prompts, **kw: [" 123456789\n#### 123456789"] * len(prompts))
    result = gsm8k.run_gsm8k(None, None, data_dir=SHARED_DATA, limit=5, k_shot=0)
    assert result.metrics["exact_match_strict-match"] == 0.0 and result.metrics["exact_match_flexible-extract"] == 0.0


def test_k_shot_prompts_come_from_train(monkeypatch):
    calls = _oracle(monkeypatch)
    result = gsm8k.run_gsm8k(None, None, data_dir=SHARED_DATA, limit=4, k_shot=2, fewshot_seed=3)
    train = load_records("gsm8k", SHARED_DATA, "train")
    for prompt, chosen in zip(calls[0]["prompts"], gsm8k.fewshot_indices(4, len(train), 2, 3)):
        blocks = prompt.split("\n\nQuestion: ")
        assert len(blocks) == 3
        assert blocks[0] == f"Question: {train[chosen[0]]['question']}\nAnswer: {train[chosen[0]]['answer']}"
    assert result.config["k_shot"] == 2 and result.metrics["exact_match_strict-match"] == 1.0


@pytest.mark.integration
@pytest.mark.parametrize("family", ["word-level", "llama2", "llama2-legacy"])
def test_tiny_model_end_to_end_with_stop_sequences(family):
    """Generation with stops on tokenizers transformers' stop_strings cannot index (the word-level test tokenizer
    raised ValueError there) and on Llama-2-style SentencePiece tokenizers."""
    from transformers import LlamaConfig, LlamaForCausalLM
    tokenizer = make_tokenizer() if family == "word-level" else make_family(family)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=4096)).eval()
    result = gsm8k.run_gsm8k(model, tokenizer, data_dir=SHARED_DATA, limit=3, max_new_tokens=8, batch_size=2,
                             k_shot=1)
    assert result.n == 3 and len(result.details) == 3
    assert all(0.0 <= v <= 1.0 for v in result.metrics.values())
    assert all(isinstance(d["generation"], str) and "Question:" not in d["generation"] for d in result.details)
