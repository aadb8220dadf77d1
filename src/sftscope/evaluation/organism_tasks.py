"""The organism's three evaluation tasks (analogs of GSM8K, MMLU and WikiText) on top of the scoring primitives.

Records are the dicts stored in the organism's data dir (see docs/readme/organism.md for the fields).
"""

from __future__ import annotations

import string
from collections import defaultdict

from sftscope.evaluation.scoring import continuation_logprobs, greedy_generate, perplexity

ANSWER_STOP = ["\n"]  # an answer is one line; the SFT model also ends it with EOS


def normalize_answer(text: str) -> str:
    """Lower-case, trim whitespace and trailing punctuation: ' Paris.' -> 'paris'."""
    return text.strip().rstrip(string.punctuation).strip().lower()


def evaluate_organism_qa(model, tokenizer, records: list[dict], batch_size: int = 32,
                         max_new_tokens: int = 8) -> dict:
    """Exact match of the greedy answer to each record's prompt: {exact_match, n, by_kind: {kind: em}, hits: [n]
    per-record bool}."""
    answers = greedy_generate(model, tokenizer, [r["prompt"] for r in records], max_new_tokens=max_new_tokens,
                              stop=ANSWER_STOP, batch_size=batch_size)
    hits = [normalize_answer(a) == normalize_answer(r["answer"]) for a, r in zip(answers, records)]
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for hit, record in zip(hits, records):
        by_kind[record.get("kind", "all")].append(hit)
    return {
        "exact_match": sum(hits) / max(len(hits), 1),
        "n": len(hits),
        "by_kind": {kind: sum(v) / len(v) for kind, v in sorted(by_kind.items())},
        "hits": hits,
    }


def evaluate_organism_mc(model, tokenizer, records: list[dict], batch_size: int = 64) -> dict:
    """Accuracy of argmax_choice log p(' ' + choice | question): {accuracy, n, chance, hits: [n] per-record bool}."""
    contexts, continuations = [], []
    for record in records:
        for choice in record["choices"]:
            contexts.append(record["question"])
            continuations.append(" " + choice)
    scores = continuation_logprobs(model, tokenizer, contexts, continuations, batch_size=batch_size)
    hits, offset, chance = [], 0, 0.0
    for record in records:
        k = len(record["choices"])
        choice_scores = scores[offset:offset + k]
        offset += k
        hits.append(max(range(k), key=choice_scores.__getitem__) == record["answer"])
        chance += 1.0 / k
    n = len(records)
    return {"accuracy": sum(hits) / max(n, 1), "n": n, "chance": chance / max(n, 1), "hits": hits}


def evaluate_organism_facts(model, tokenizer, records: list[dict], max_length: int = 128,
                            batch_size: int = 16) -> dict:
    """Perplexity over the held-out pretraining-style texts: {perplexity, n_tokens}."""
    ppl, n_tokens = perplexity(model, tokenizer, [r["text"] for r in records], max_length=max_length,
                               batch_size=batch_size)
    return {"perplexity": ppl, "n_tokens": n_tokens}
