"""Scoring primitives on a tiny random Llama: reference values from manual forward passes, batching invariance."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sftscope.evaluation.scoring import continuation_logprobs, cut_at_stop, greedy_generate, perplexity
from tests.conftest import manual_greedy
from tests.evaluation.scoring_fixtures import tiny_llama, tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return tiny_llama(tok)


def manual_logprob(model, context_ids: list[int], continuation_ids: list[int]) -> float:
    ids = torch.tensor([context_ids + continuation_ids])
    with torch.no_grad():
        log_probs = F.log_softmax(model(input_ids=ids).logits[0], dim=-1)
    return sum(float(log_probs[len(context_ids) - 1 + k, t]) for k, t in enumerate(continuation_ids))


def test_continuation_logprob_equals_manual_forward_sum(model, tok):
    context, continuation = "the cat sat on", " the mat."
    context_ids = tok(context)["input_ids"]
    continuation_ids = tok(continuation, add_special_tokens=False)["input_ids"]
    assert context_ids[0] == tok.bos_token_id and len(continuation_ids) >= 2
    got = continuation_logprobs(model, tok, [context], [continuation])[0]
    assert got == pytest.approx(manual_logprob(model, context_ids, continuation_ids), abs=1e-5)
    assert got < 0


def test_trailing_context_space_moves_to_continuation(model, tok):
    a = continuation_logprobs(model, tok, ["the cat sat on "], ["the mat."])
    b = continuation_logprobs(model, tok, ["the cat sat on"], [" the mat."])
    assert a == pytest.approx(b, abs=1e-6)


def test_continuation_logprobs_batched_equals_one_at_a_time(model, tok):
    contexts = ["the cat", "a dog ran in the park and then", "Question: what is two plus two?\nAnswer:", "she"]
    continuations = [" sat", " the old red barn.", " four", " plays the violin every night."]
    batched = continuation_logprobs(model, tok, contexts, continuations, batch_size=4)
    single = [continuation_logprobs(model, tok, [c], [x], batch_size=1)[0] for c, x in zip(contexts, continuations)]
    assert batched == pytest.approx(single, abs=1e-4)


def test_continuation_logprobs_of_all_next_tokens_normalise(model, tok):
    """Summing p(token | context) over the whole vocabulary gives 1 (the scores are real log-probabilities)."""
    vocab = [tok.decode([i]) for i in range(len(tok)) if i not in tok.all_special_ids]
    ids = [tok(v, add_special_tokens=False)["input_ids"] for v in vocab]
    single_token = [v for v, i in zip(vocab, ids) if len(i) == 1 and tok.decode(i) == v]
    context_ids = tok("the cat")["input_ids"]
    with torch.no_grad():
        probs = F.softmax(model(input_ids=torch.tensor([context_ids])).logits[0, -1], dim=-1)
    expected = sum(float(probs[tok(v, add_special_tokens=False)["input_ids"][0]]) for v in single_token)
    got = sum(math.exp(s) for s in continuation_logprobs(model, tok, ["the cat"] * len(single_token), single_token,
                                                          batch_size=64))
    assert got == pytest.approx(expected, rel=1e-4)


def test_greedy_generate_matches_manual_argmax_loop(model, tok):
    prompt = "the cat sat on"
    got = greedy_generate(model, tok, [prompt], max_new_tokens=6, batch_size=1)[0]
    assert got == tok.decode(manual_greedy(model, tok, tok(prompt)["input_ids"], 6), skip_special_tokens=True)


def test_left_padding_does_not_change_greedy_output(model, tok):
    prompts = ["the", "a dog ran in the park and the cat sat on the", "Question: what is two plus two?\nAnswer:", "she"]
    batched = greedy_generate(model, tok, prompts, max_new_tokens=5, batch_size=4)
    single = [greedy_generate(model, tok, [p], max_new_tokens=5, batch_size=1)[0] for p in prompts]
    assert batched == single
    assert len(batched) == len(prompts)


def test_stop_strings_cut_the_output(model, tok):
    full = greedy_generate(model, tok, ["the cat"], max_new_tokens=8)[0]
    assert len(full) > 2
    stop = full[1:3]
    cut = greedy_generate(model, tok, ["the cat"], max_new_tokens=8, stop=[stop])[0]
    assert cut == full[: full.find(stop)]
    assert cut_at_stop("4 apples\nQuestion", ["\n", "Q"]) == "4 apples"


def manual_nll(model, ids: list[int]) -> tuple[float, int]:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    nll = F.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="sum")
    return float(nll), len(ids) - 1


def test_perplexity_equals_exp_mean_token_nll(model, tok):
    texts = ["the cat sat on the mat.", "a dog ran in the park! birds fly over the old red barn."]
    parts = [manual_nll(model, tok(t)["input_ids"]) for t in texts]
    total, n = sum(p[0] for p in parts), sum(p[1] for p in parts)
    ppl, n_tokens = perplexity(model, tok, texts, max_length=128, batch_size=2)
    assert n_tokens == n
    assert ppl == pytest.approx(math.exp(total / n), rel=1e-5)
    assert perplexity(model, tok, texts, max_length=128, batch_size=1)[0] == pytest.approx(ppl, rel=1e-5)


def test_perplexity_windows_score_every_token_once(model, tok):
    """Windows of 5 inputs overlap by one token: every text token is predicted once, from at least one token of
    context; before, each window's first token went unscored."""
    text = "a dog ran in the park! birds fly over the old red barn."
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) > 11
    windows = [ids[s:s + 6] for s in range(0, len(ids) - 1, 5)]  # 5 inputs + the last target
    with torch.no_grad():
        nll = sum(float(F.cross_entropy(model(input_ids=torch.tensor([w[:-1]])).logits[0], torch.tensor(w[1:]),
                                        reduction="sum")) for w in windows)
    ppl, n_tokens = perplexity(model, tok, [text], max_length=5)
    assert n_tokens == len(ids) - 1  # every token after BOS, once
    assert ppl == pytest.approx(math.exp(nll / n_tokens), rel=1e-5)
