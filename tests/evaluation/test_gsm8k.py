"""GSM8K task mechanics: a fake generator that knows the answers, and a tiny random model for the plumbing."""

import sftscope.evaluation.gsm8k as gsm8k
from sftscope.data.registry import load_records
from tests.conftest import SHARED_DATA, VOCAB, build_tiny


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
    assert result.metrics == {"exact_match_strict": 1.0, "exact_match_flexible": 1.0, "strict_format_rate": 1.0}
    first = load_records("gsm8k", SHARED_DATA, "test")[:25]  # limit = the first N items, as lm-eval
    assert [d["id"] for d in result.details] == [r["id"] for r in first]
    assert calls[0]["max_new_tokens"] == 256 and calls[0]["stop"] == ["Question:", "\n\n"]


def test_hallucinated_continuation_does_not_change_the_score(monkeypatch):
    _oracle(monkeypatch, suffix="\n\nQuestion: A farmer has 3 cows. How many legs?\nAnswer: 12\n#### 12")
    result = gsm8k.run_gsm8k(None, None, data_dir=SHARED_DATA, limit=10)
    assert result.metrics["exact_match_strict"] == 1.0
    assert result.metrics["exact_match_flexible"] == 1.0


def test_wrong_generations_score_zero(monkeypatch):
    monkeypatch.setattr(gsm8k, "greedy_generate", lambda m, t, prompts, **kw: [" 123456789\n#### 123456789"] * len(prompts))
    result = gsm8k.run_gsm8k(None, None, data_dir=SHARED_DATA, limit=5)
    assert result.metrics["exact_match_strict"] == 0.0 and result.metrics["exact_match_flexible"] == 0.0


def test_k_shot_prompts_come_from_train(monkeypatch):
    calls = _oracle(monkeypatch)
    result = gsm8k.run_gsm8k(None, None, data_dir=SHARED_DATA, limit=4, k_shot=2, seed=3)
    train_questions = {r["question"] for r in load_records("gsm8k", SHARED_DATA, "train")}
    for prompt in calls[0]["prompts"]:
        blocks = prompt.split("\n\nQuestion: ")
        assert len(blocks) == 3
        assert blocks[0].removeprefix("Question: ").split("\nAnswer: ")[0] in train_questions
    assert result.config["k_shot"] == 2 and result.metrics["exact_match_strict"] == 1.0


def _byte_level_tokenizer(records):
    """A small byte-level BPE tokenizer trained on GSM8K text: HF's stop_strings need a real subword vocabulary
    (the word-level test tokenizer of conftest cannot be indexed by StopStringCriteria)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator([gsm8k.format_example(r["question"], r["answer"]) for r in records], trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<pad>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


def test_tiny_model_end_to_end_with_default_stop_strings():
    tokenizer = _byte_level_tokenizer(load_records("gsm8k", SHARED_DATA, "train")[:200])
    result = gsm8k.run_gsm8k(build_tiny("llama"), tokenizer, data_dir=SHARED_DATA, limit=3, max_new_tokens=8,
                             batch_size=2, k_shot=1)
    assert result.n == 3 and len(result.details) == 3
    assert all(0.0 <= v <= 1.0 for v in result.metrics.values())
    assert all(isinstance(d["generation"], str) and "Question:" not in d["generation"] for d in result.details)
