"""Tokenizer matrix: every path that turns text into ids, on every tokenizer family, with and without a chat template.

For each family (tests/tokenizer_families.py: byte-level BPE without BOS, with BOS, with BOS == EOS; SentencePiece
Metaspace as transformers 5 builds Llama-2, and Llama-2's shipped tokenizer.json; a tokenizer that appends EOS):
    training        the ids are the whole text's tokens, split at the prompt's boundary; EOS exactly once
    scoring         continuation_logprobs scores exactly the training example's completion tokens, each once
    generation      the prompt the model sees is the text's tokens with BOS once; output = a manual greedy loop
    perplexity      every token of the text is scored once, conditioned on BOS (or lm-eval's prefix token)
    analysis        capture's encoding of a (chat-rendered) sample has BOS once
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from sftscope.capture.batches import encode_texts
from sftscope.data.prepare import render_for_side
from sftscope.data.registry import get_dataset
from sftscope.evaluation.scoring import continuation_logprobs, greedy_generate, perplexity
from sftscope.tokenization import (IGNORE_INDEX, encode_chat, encode_pair, encode_text, prefix_token_id,
                                   render_chat, special_layout)
from sftscope.tuning.sequences import encode_prompt_completion
from tests.conftest import manual_greedy
from tests.tokenizer_families import CHAT_FAMILIES, FAMILIES, make_family

PAIRS = [("Question: Tom has 3 apples and buys 2 more. How many?\nAnswer:", " He has 3 + 2 = 5.\n#### 5"),
         ("Q: 2+3?\nA:\n", "The answer is 5."),
         ("The following are multiple choice questions (with answers).\n\n2+2?\nA. 4\nB. 5\nAnswer:", " A")]
CASES = [(f, False) for f in FAMILIES] + [(f, True) for f in CHAT_FAMILIES]
CASE_IDS = [f"{f}{'-chat' if c else ''}" for f, c in CASES]


@functools.lru_cache(maxsize=None)
def model_for(family: str) -> LlamaForCausalLM:
    tok = make_family(family)
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.2,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).eval()


def assert_bos_once(tok, ids: list[int], eos_in_text: int = 0) -> None:
    """The tokenizer's prefix (BOS) starts the ids and occurs nowhere else, except as the EOS the text holds
    (OLMo-2's BOS is its EOS)."""
    prefix = list(special_layout(tok).prefix)
    assert ids[:len(prefix)] == prefix
    later = sum(1 for i in ids[len(prefix):] if i in prefix)
    assert later == (eos_in_text if tok.eos_token_id in prefix else 0)


def eos_written(tok, text: str) -> int:
    """EOS strings a rendered text holds after its start (a leading BOS string is not one, even when BOS == EOS)."""
    return text.removeprefix(tok.bos_token or "").count(tok.eos_token)


def manual_logprob(model, ids: list[int], start: int, end: int) -> float:
    """sum_{t in [start, end)} log p(ids[t] | ids[:t]) from one forward pass."""
    with torch.no_grad():
        log_probs = F.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
    return sum(float(log_probs[t - 1, ids[t]]) for t in range(start, end))


@pytest.mark.parametrize("family, chat", CASES, ids=CASE_IDS)
def test_training_ids_are_the_texts_tokens_split_at_the_boundary(family, chat):
    tok = make_family(family, chat=chat)
    eos = tok.eos_token_id
    for prompt, completion in PAIRS:
        example = encode_prompt_completion(tok, prompt, completion, max_length=512, chat_template=chat)
        ids, labels = list(example.input_ids), list(example.labels)
        scored = [i for i, label in enumerate(labels) if label != IGNORE_INDEX]
        assert scored == list(range(example.prompt_tokens, len(ids)))  # one contiguous completion, each once
        assert [labels[i] for i in scored] == ids[example.prompt_tokens:]
        if chat:
            user = [{"role": "user", "content": prompt}]
            full = user + [{"role": "assistant", "content": completion}]
            assert ids == encode_chat(tok, full)  # the template's markers, nothing added or lost
            assert ids[:example.prompt_tokens] == encode_chat(tok, user, add_generation_prompt=True)
            assert ids.count(eos) == render_chat(tok, full).count(tok.eos_token)  # no EOS beyond the template's
            assert_bos_once(tok, ids, eos_written(tok, render_chat(tok, full)))
        else:
            assert ids[:-1] == encode_text(tok, prompt + completion)  # the whole text's tokens
            assert ids[-1] == eos and ids.count(eos) == 1 + (eos in special_layout(tok).prefix)
            assert tok.decode(ids[example.prompt_tokens:-1]).strip() == (prompt[len(prompt.rstrip()):]
                                                                          + completion).strip()
            assert_bos_once(tok, ids, eos_in_text=1)


@pytest.mark.parametrize("family, chat", CASES, ids=CASE_IDS)
def test_scoring_scores_exactly_the_training_completion(family, chat):
    tok, model = make_family(family, chat=chat), model_for(family)
    for prompt, completion in PAIRS:
        example = encode_prompt_completion(tok, prompt, completion, max_length=512, add_eos=False,
                                           chat_template=chat)
        ids = list(example.input_ids)
        if chat:  # scoring a chat pair (lm-eval moves the generation prompt's trailing newlines along)
            context, continuation = render_chat(tok, [{"role": "user", "content": prompt}],
                                                add_generation_prompt=True), None
            full = render_chat(tok, [{"role": "user", "content": prompt}, {"role": "assistant",
                                                                          "content": completion}])
            continuation = full[len(context):]
            pair = encode_pair(tok, context, continuation)
            assert pair.ids == ids
            start = len(pair.context)
        else:
            context, continuation, start = prompt, completion, example.prompt_tokens
        got = continuation_logprobs(model, tok, [context], [continuation])[0]
        assert got == pytest.approx(manual_logprob(model, ids, start, len(ids)), abs=1e-4)


class Spy(torch.nn.Module):
    """Records the prompts a model's generate() receives (padding removed)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.prompts = model, []

    def generate(self, input_ids, attention_mask, **kwargs):
        assert "stop_strings" not in kwargs  # stops are sftscope's own, for every tokenizer family
        self.prompts += [row[mask.bool()].tolist() for row, mask in zip(input_ids, attention_mask)]
        return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    @property
    def config(self):
        return self.model.config

    @property
    def generation_config(self):
        return self.model.generation_config


@pytest.mark.parametrize("family, chat", CASES, ids=CASE_IDS)
def test_generation_prompt_and_output(family, chat):
    tok, model = make_family(family, chat=chat), model_for(family)
    prompts = [p for p, _ in PAIRS]
    if chat:
        prompts = [render_chat(tok, [{"role": "user", "content": p}], add_generation_prompt=True) for p in prompts]
    spy = Spy(model)
    out = greedy_generate(spy, tok, prompts, max_new_tokens=6, stop=["Question:"], batch_size=2)
    assert sorted(map(tuple, spy.prompts)) == sorted(tuple(encode_text(tok, p)) for p in prompts)
    for ids in spy.prompts:
        assert_bos_once(tok, ids)
    for prompt, text in zip(prompts, out):
        ids = encode_text(tok, prompt)
        manual = tok.decode(manual_greedy(model, tok, ids, 6), skip_special_tokens=True)
        assert text == manual.split("Question:")[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_perplexity_scores_every_token_once(family):
    tok, model = make_family(family), model_for(family)
    text = PAIRS[0][0] + PAIRS[0][1]
    plain = tok(text, add_special_tokens=False)["input_ids"]
    ppl, n_tokens = perplexity(model, tok, [text], max_length=16)
    assert n_tokens == len(plain)
    ids = [prefix_token_id(tok)] + plain  # BOS, or lm-eval's prefix token (EOS) for gpt2
    windows = []  # 16 inputs per window, overlapping by one token
    start = 0
    while start < len(ids) - 1:
        windows.append(ids[start:start + 17])
        start += 16
    nll = -sum(manual_logprob(model, w, 1, len(w)) for w in windows)
    assert ppl == pytest.approx(float(torch.exp(torch.tensor(nll / n_tokens))), rel=1e-4)


@pytest.mark.parametrize("family, chat", CASES, ids=CASE_IDS)
def test_analysis_samples_have_bos_once(family, chat):
    tok = make_family(family, chat=chat)
    spec = get_dataset("gsm8k")
    record = {"id": "x", "question": "Tom has 3 apples and buys 2 more. How many?", "answer": "3 + 2 = 5\n#### 5"}
    text = render_for_side(spec, record, tok, chat_template=chat)
    (sample,) = encode_texts(["x"], [text], tok, None)
    assert sample.input_ids == encode_text(tok, text)
    assert_bos_once(tok, sample.input_ids, eos_written(tok, text) if chat else 0)
    if chat:
        prompt, completion = spec.split(record)
        assert sample.input_ids == encode_chat(tok, [{"role": "user", "content": prompt.strip()},
                                                     {"role": "assistant", "content": completion.strip()}])
