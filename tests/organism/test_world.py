"""The generated world and its data sets: determinism, disjoint SFT/held-out facts, well-formed records."""

from __future__ import annotations

import numpy as np

from sftscope.organism import corpus
from sftscope.organism.world import make_world


def world(seed: int = 0):
    return make_world(np.random.default_rng(seed), n_entities=12, n_attributes=5, with_friend=True, max_addend=4)


def test_world_is_a_function_of_the_seed():
    assert world(0).values == world(0).values
    assert world(0).values != world(1).values


def test_facts_count_and_friend_derangement():
    w = world()
    assert len(w.facts) == 12 * 6 + 4 * 4
    assert len(set(w.entities)) == 12
    assert all(w.values[(e, "friend")] != e for e in w.entities)
    assert sorted(w.values[(e, "friend")] for e in w.entities) == sorted(w.entities)  # a permutation


def test_sft_and_heldout_split_is_disjoint_and_per_attribute():
    w = world()
    sft, held = corpus.split_facts(w, 0.4, np.random.default_rng(0))
    assert set(sft).isdisjoint(held) and len(sft) + len(held) == len(w.facts)
    for attribute in ["city", "job", "color", "pet", "instrument", "friend", "sum"]:
        assert any(f.attribute == attribute for f in sft) and any(f.attribute == attribute for f in held)


def test_heldout_questions_never_appear_in_sft():
    w = world()
    sft, held = corpus.split_facts(w, 0.4, np.random.default_rng(0))
    sft_prompts = {r["prompt"] for r in corpus.sft_records(w, sft)}
    qa = corpus.qa_records(w, held)
    assert len(qa) == len(held)
    assert not sft_prompts & {r["prompt"] for r in qa}
    for record in qa:
        assert record["prompt"].startswith("Question: ") and record["prompt"].endswith("\nAnswer:")
        assert record["text"] == record["prompt"] + " " + record["answer"]


def test_every_fact_is_stated_in_pretraining():
    w = world()
    docs, sightings = corpus.pretraining_documents(w, 2000, np.random.default_rng(0))
    assert len(docs) == 2000
    assert all(sightings[f] > 10 for f in w.facts)
    fact = next(f for f in w.facts if f.attribute == "city")
    assert any(fact.subject in d and fact.value in d for d in docs)


def test_mc_items_have_one_true_answer_among_four_distinct_choices():
    w = world()
    records = corpus.mc_records(w, set(), np.random.default_rng(0))
    assert len(records) == len(w.facts)
    truth = {(corpus.cloze_for(w, f)): f.value for f in w.facts}
    for r in records:
        assert len(r["choices"]) == 4 and len(set(r["choices"])) == 4
        assert r["choices"][r["answer"]] == truth[r["question"]]
    assert {r["answer"] for r in records} == {0, 1, 2, 3}


def test_facts_documents_are_not_in_the_corpus():
    w = world()
    docs, _ = corpus.pretraining_documents(w, 500, np.random.default_rng(0))
    held = corpus.facts_records(w, 50, set(docs), np.random.default_rng(1))
    assert len(held) == 50 and not {r["text"] for r in held} & set(docs)
