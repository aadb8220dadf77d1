"""GSM8K answer extraction and normalisation on the strings that break naive regexes."""

import pytest

from sftscope.evaluation.gsm8k import (build_prompts, extract_flexible, extract_strict, gold_answer,
                                       normalize_number, score_generations)


@pytest.mark.parametrize("raw, expected", [
    ("18", "18"), ("1,000", "1000"), ("$18.", "18"), ("18.0", "18"), ("18.50", "18.5"), ("-7", "-7"),
    ("-0", "0"), ("$1,234,567.00", "1234567"), (" 42 ", "42"), (".", None), ("", None), (None, None),
    ("1,2.3.4", None),
])
def test_normalize_number(raw, expected):
    assert normalize_number(raw) == expected


def test_gold_answer_takes_the_number_after_the_last_marker():
    solution = "She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18"
    assert gold_answer(solution) == "18"
    assert gold_answer("x\n#### 1,000") == "1000"


@pytest.mark.parametrize("generation, strict, flexible", [
    (" She makes $18 every day.\n#### 18", "18", "18"),
    (" 500 + 500 = 1,000 apples.\n#### 1,000", "1000", "1000"),
    (" The temperature drops to -5 degrees.\n#### -5", "-5", "-5"),
    (" The answer is $18.", None, "18"),                 # flexible strips '$' and the sentence's '.'
    (" It costs 18.0 dollars.\n#### 18.00", "18", "18"),  # compared by value
    (" 16-3-4=9 eggs are left, so she sells 9", None, "9"),  # '-' between operands is not a sign
    (" x = -12", None, "-12"),
    (" I do not know.", None, None),                      # no number at all
    (" #### $18", "18", "18"),
])
def test_strict_and_flexible(generation, strict, flexible):
    assert extract_strict(generation) == strict
    assert extract_flexible(generation) == flexible


def test_hallucinated_follow_up_question_never_counts():
    generation = " 9 * 2 = 18.\n#### 18\n\nQuestion: Tom has 3 apples and buys 2. How many?\nAnswer: 3 + 2 = 5\n#### 5"
    assert extract_strict(generation) == "18"   # first '#### N'
    assert extract_flexible(generation) == "18"  # last number before the first stop string
    # even with only 'Question:' as a stop, the follow-up's numbers are cut
    assert extract_flexible(generation, stop=("Question:",)) == "18"
    # with no stop strings at all the flexible filter would take the hallucinated 5: the cut matters
    assert extract_flexible(generation, stop=()) == "5"


def test_strict_ignores_a_marker_that_only_the_hallucinated_question_has():
    generation = " I think it is 18.\n\nQuestion: Tom has 3 apples.\nAnswer: 3\n#### 3"
    assert extract_strict(generation) is None
    assert extract_strict(generation, stop=()) == "3"


def test_score_generations_counts_hits_and_format():
    records = [{"id": "a", "answer": "...\n#### 18"}, {"id": "b", "answer": "...\n#### 1,000"},
               {"id": "c", "answer": "...\n#### 7"}]
    generations = [" so 18.\n#### 18", " That is 1000 in total.", " I think 8.\n#### 8"]
    metrics, details = score_generations(generations, records)
    assert metrics["exact_match_strict"] == pytest.approx(1 / 3)
    assert metrics["exact_match_flexible"] == pytest.approx(2 / 3)
    assert metrics["strict_format_rate"] == pytest.approx(2 / 3)
    assert [d["flexible_correct"] for d in details] == [True, True, False]


def test_prompts_zero_and_k_shot():
    records = [{"question": "What is 2 + 2?"}, {"question": "What is 3 + 3?"}]
    shots = [{"question": f"q{i}", "answer": f"s{i}\n#### {i}"} for i in range(10)]
    zero = build_prompts(records, shots, 0, seed=0)
    assert zero[0] == "Question: What is 2 + 2?\nAnswer:"
    three = build_prompts(records, shots, 3, seed=0)
    assert three[0].endswith("\n\nQuestion: What is 2 + 2?\nAnswer:")
    assert three[0].count("Question:") == 4 and three[0].count("####") == 3
    # seeded per item: same seed, same shots (also for a shorter list); another seed, other shots
    assert build_prompts(records[:1], shots, 3, seed=0)[0] == three[0]
    assert build_prompts(records, shots, 3, seed=1) != three
