"""GSM8K answer filters: lm-eval's strict-match / flexible-extract / exact_match (equal to lm-eval's own code on a
hand-written corpus), sftscope's by-value extras, prompts and the few-shot sampler."""

import random
from pathlib import Path

import pytest

from sftscope.evaluation.gsm8k import (FLEXIBLE_PATTERN, IGNORE_REGEXES, INVALID, STRICT_PATTERN, build_prompts,
                                       exact_match, extract_flexible, extract_strict, extract_value_flexible,
                                       extract_value_strict, fewshot_indices, gold_answer, normalize_number,
                                       score_generations, stop_sequences)
from tests.conftest import lm_eval_or_skip
from tests.evaluation.gsm8k_corpus import CORPUS, GOLD_5, GOLD_18


@pytest.mark.parametrize("raw, expected", [
    ("18", "18"), ("1,000", "1000"), ("$18.", "18"), ("18.0", "18"), ("18.50", "18.5"), ("-7", "-7"),
    ("-0", "0"), ("$1,234,567.00", "1234567"), (" 42 ", "42"), (".", None), ("", None), (None, None),
    ("1,2.3.4", None), (".5", "0.5"),
])
def test_normalize_number(raw, expected):
    assert normalize_number(raw) == expected


def test_gold_answer_takes_the_number_after_the_last_marker():
    assert gold_answer(GOLD_18) == "18"
    assert gold_answer("x\n#### 1,000") == "1000"


@pytest.mark.parametrize("generation, gold, strict, flexible, strict_ok, flexible_ok", [
    (" She makes $18.\n#### 18.", GOLD_18, "18.", "18.", True, True),       # trailing '.' ignored
    (" #### $18", GOLD_18, INVALID, "$18", False, True),                    # lm-eval's strict regex rejects '$'
    (" She makes 18 dollars.\n#### 18.0", GOLD_18, "18.0", "18.0", False, False),  # strings, not values
    (" So 9 * 2 = 18\n#### 9\n#### 18", GOLD_18, "9", "18", False, True),   # strict: the first marker
    (" It is .5", GOLD_5, INVALID, ".5", False, False),                     # '.5' is not 5
    (" She makes 18.\n...", GOLD_18, INVALID, "...", False, False),         # '...' is lm-eval's last "number"
    (" It went from 3 to -5", "#### -5", INVALID, "-5", False, True),
    (" I do not know.", GOLD_18, INVALID, INVALID, False, False),
    (" First, 16 - 3 - 4 = 9.\n\nShe sells them: 9 * 2 = 18.\n\nThe answer is 18.", GOLD_18, INVALID, "18.",
     False, True),                                                          # chat-style paragraphs
])
def test_lm_eval_filters_and_exact_match(generation, gold, strict, flexible, strict_ok, flexible_ok):
    assert extract_strict(generation) == strict and extract_flexible(generation) == flexible
    assert exact_match(strict, gold) is strict_ok and exact_match(flexible, gold) is flexible_ok


@pytest.mark.parametrize("generation, strict, flexible", [
    (" She makes $18 every day.\n#### 18", "18", "18"),
    (" 500 + 500 = 1,000 apples.\n#### 1,000", "1000", "1000"),
    (" The temperature drops to -5 degrees.\n#### -5", "-5", "-5"),
    (" The answer is $18.", None, "18"),
    (" It costs 18.0 dollars.\n#### 18.00", "18", "18"),
    (" 16-3-4=9 eggs are left, so she sells 9", None, "9"),  # '-' between operands is not a sign
    (" x = -12", None, "-12"),
    (" I do not know.", None, None),
    (" #### $18", "18", "18"),
    (" It is .5", None, "0.5"),                               # was read as 5
    (" She makes 18...", None, "18"),                         # a number needs a digit
    (" Each costs $.50", None, "0.5"),
])
def test_by_value_extras(generation, strict, flexible):
    assert extract_value_strict(generation) == strict
    assert extract_value_flexible(generation) == flexible


def test_score_generations_counts_lm_eval_hits_and_extras():
    records = [{"id": "a", "answer": "...\n#### 18"}, {"id": "b", "answer": "...\n#### 1,000"},
               {"id": "c", "answer": "...\n#### 7"}, {"id": "d", "answer": "...\n#### 5"}]
    generations = [" so 18.\n#### 18", " That is 1000 in total.", " I think 8.\n#### 8", " It is 5.0\n#### 5.0"]
    metrics, details = score_generations(generations, records)
    assert metrics["exact_match_strict-match"] == pytest.approx(1 / 4)
    assert metrics["exact_match_flexible-extract"] == pytest.approx(2 / 4)  # '1000' vs gold '1,000': commas dropped
    assert metrics["exact_match_value_strict"] == pytest.approx(2 / 4)      # 5.0 == 5 by value
    assert metrics["exact_match_value_flexible"] == pytest.approx(3 / 4)
    assert metrics["strict_format_rate"] == pytest.approx(3 / 4)
    assert [d["flexible_correct"] for d in details] == [True, True, False, False]


def test_filters_equal_lm_eval_on_the_corpus():
    """The corpus (>= 50 generations: commas, $, decimals, '.5', negatives, several '####', chat paragraphs, no
    number) through lm-eval's own RegexFilter, take_first and exact_match code: identical strings and scores."""
    lm_eval_or_skip()
    import lm_eval.filters.extraction as extraction
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.selection import TakeFirstFilter
    assert len(CORPUS) >= 50
    filters = {"strict": extraction.RegexFilter(regex_pattern=STRICT_PATTERN, group_select=0),
               "flexible": extraction.RegexFilter(regex_pattern=FLEXIBLE_PATTERN, group_select=-1)}
    ours = {"strict": extract_strict, "flexible": extract_flexible}
    for generation, gold in CORPUS:
        for name, regex_filter in filters.items():
            (theirs,) = TakeFirstFilter().apply(regex_filter.apply([[generation]], [{}]), [{}])
            assert ours[name](generation) == theirs, (name, generation)
            score = exact_match_hf_evaluate(predictions=[theirs], references=[gold], regexes_to_ignore=list(
                IGNORE_REGEXES), ignore_case=True, ignore_punctuation=False)["exact_match"]
            assert exact_match(theirs, gold) == bool(score), (name, generation)


def test_protocol_constants_are_lm_evals():
    """The regexes, stop sequences, ignore list and few-shot count are those of the installed lm-eval's gsm8k.yaml."""
    lm_eval = lm_eval_or_skip()
    import yaml
    from sftscope.evaluation.gsm8k import DEFAULT_K_SHOT, DEFAULT_STOP
    config = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k.yaml").read_text())
    patterns = {f["name"]: f["filter"][0]["regex_pattern"] for f in config["filter_list"]}
    assert patterns == {"strict-match": STRICT_PATTERN, "flexible-extract": FLEXIBLE_PATTERN}
    assert tuple(config["generation_kwargs"]["until"]) == DEFAULT_STOP
    assert tuple(config["metric_list"][0]["regexes_to_ignore"]) == IGNORE_REGEXES
    assert config["num_fewshot"] == DEFAULT_K_SHOT and config["metadata"]["version"] == 3.0
    assert config["doc_to_text"] == "Question: {{question}}\nAnswer:"


def test_prompts_zero_and_k_shot():
    records = [{"question": "What is 2 + 2?"}, {"question": "What is 3 + 3?"}]
    shots = [{"question": f"q{i}", "answer": f"s{i}\n#### {i}"} for i in range(10)]
    zero = build_prompts(records, shots, 0)
    assert zero[0] == "Question: What is 2 + 2?\nAnswer:"
    three = build_prompts(records, shots, 3)
    assert three[0].endswith("\n\nQuestion: What is 2 + 2?\nAnswer:")
    assert three[0].count("Question:") == 4 and three[0].count("####") == 3
    assert "\nAnswer: s" in three[0]  # 'Answer:' + ' ' + the solution
    assert build_prompts(records, shots, 3, fewshot_seed=1) != three


def test_fewshot_draw_is_lm_evals_sampler():
    """One random.Random(seed).sample(train, k) per item, in item order (lm-eval's ContextSampler)."""
    rnd = random.Random(1234)
    train = [{"i": i} for i in range(50)]
    expected = [[d["i"] for d in rnd.sample(train, 5)] for _ in range(4)]
    assert fewshot_indices(4, 50, 5) == expected
    assert fewshot_indices(2, 50, 5) == expected[:2]  # a shorter run keeps the first items' examples


def test_stop_sequences_are_lm_evals_plus_the_eos_string():
    class Tok:
        eos_token_id = 7

        @staticmethod
        def decode(ids):
            return "<eos>"
    assert stop_sequences(Tok()) == ["Question:", "</s>", "<|im_end|>", "<eos>"]
    assert "\n\n" not in stop_sequences(Tok())  # a blank line no longer ends an answer
