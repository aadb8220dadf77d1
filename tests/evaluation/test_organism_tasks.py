"""The organism tasks' bookkeeping: exact match, argmax-of-log-likelihood accuracy, perplexity passthrough."""

from __future__ import annotations

import pytest

from sftscope.evaluation.organism_tasks import (
    evaluate_organism_facts,
    evaluate_organism_mc,
    evaluate_organism_qa,
    normalize_answer,
)
from sftscope.evaluation.scoring import continuation_logprobs, greedy_generate, perplexity
from tests.evaluation.scoring_fixtures import tiny_llama, tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return tiny_llama(tok, seed=3)


def test_normalize_answer():
    assert normalize_answer(" Paris.\t") == "paris"
    assert normalize_answer("12") == normalize_answer(" 12 ")
    assert normalize_answer("Oslo") != normalize_answer("Lima")


def test_qa_exact_match_counts_the_model_own_answers(model, tok):
    prompts = ["the cat", "a dog ran", "she plays the", "birds fly"]
    own = greedy_generate(model, tok, prompts, max_new_tokens=8, stop=["\n"])
    assert all(normalize_answer(a) for a in own), own
    records = [{"prompt": p, "answer": a if i % 2 == 0 else a + " zzz", "kind": "k" + str(i % 2)}
               for i, (p, a) in enumerate(zip(prompts, own))]
    result = evaluate_organism_qa(model, tok, records)
    assert result["n"] == 4
    assert result["exact_match"] == 0.5
    assert result["by_kind"] == {"k0": 1.0, "k1": 0.0}
    assert result["hits"] == [True, False, True, False]  # per record: the items the sweep statistics resample


def test_mc_accuracy_is_argmax_of_choice_logprobs(model, tok):
    records = [{"question": "the cat sat on the", "choices": ["mat", "park", "barn", "dog"], "answer": a}
               for a in range(4)]
    scores = continuation_logprobs(model, tok, ["the cat sat on the"] * 4, [" mat", " park", " barn", " dog"])
    best = max(range(4), key=scores.__getitem__)
    result = evaluate_organism_mc(model, tok, records)
    assert result == {"accuracy": 0.25, "n": 4, "chance": 0.25, "hits": [a == best for a in range(4)]}
    assert evaluate_organism_mc(model, tok, [records[best]])["accuracy"] == 1.0


def test_facts_is_perplexity_of_the_texts(model, tok):
    texts = ["the cat sat on the mat.", "birds fly over the old red barn."]
    ppl, n = perplexity(model, tok, texts, max_length=128)
    assert evaluate_organism_facts(model, tok, [{"text": t} for t in texts]) == {"perplexity": ppl, "n_tokens": n}
