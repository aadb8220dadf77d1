"""Completion-only labels, left truncation of the prompt that keeps BOS and the whole answer, counted drops."""

import pytest
import torch

from sftscope.errors import SftscopeError
from sftscope.tuning.sequences import IGNORE_INDEX, collate, encode_prompt_completion, encode_records

from ..conftest import make_tokenizer

TOK = make_tokenizer()
BOS, EOS, PAD = TOK.bos_token_id, TOK.eos_token_id, TOK.pad_token_id


def ids(text):
    return TOK(text, add_special_tokens=False)["input_ids"]


def test_labels_are_ignored_on_the_prompt_exactly():
    ex = encode_prompt_completion(TOK, "question : what is 2 + 3 ?", " 5 # 5", max_length=64)
    prompt, completion = [BOS] + ids("question : what is 2 + 3 ?"), ids("5 # 5") + [EOS]
    assert list(ex.input_ids) == prompt + completion
    assert list(ex.labels) == [IGNORE_INDEX] * len(prompt) + completion
    assert ex.prompt_tokens == len(prompt) and not ex.truncated


def test_long_prompt_is_cut_from_the_left_keeping_bos_and_the_answer():
    prompt = " ".join("abcdefghij")  # 10 prompt tokens + BOS
    completion = " x y # 7"            # 4 tokens + EOS
    ex = encode_prompt_completion(TOK, prompt, completion, max_length=9)
    assert len(ex.input_ids) == 9 and ex.truncated
    assert list(ex.input_ids) == [BOS] + ids("h i j") + ids(completion) + [EOS]
    assert list(ex.labels)[-5:] == ids(completion) + [EOS]  # "# 7" and EOS intact


def test_completion_that_cannot_fit_is_dropped_and_counted():
    records = [{"prompt": "a b", "completion": " c"},
               {"prompt": "a", "completion": " " + " ".join("abcdefghij")},  # 11 completion tokens > 8 - 2
               {"prompt": " ".join("abcdefgh"), "completion": " c # 4"}]
    out = encode_records(TOK, records, max_length=8)
    assert out.n_records == 3 and out.n_dropped == 1 and 1 in out.dropped and out.n_truncated == 1
    assert len(out.examples) == 2
    assert list(out.examples[1].labels)[-4:] == ids("c # 4") + [EOS]


def test_bad_records_and_all_dropped_raise():
    with pytest.raises(SftscopeError, match="'prompt' and 'completion'"):
        encode_records(TOK, [{"question": "a", "answer": "b"}], max_length=16)
    with pytest.raises(SftscopeError, match="raise max_length"):
        encode_records(TOK, [{"prompt": "a", "completion": " " + " ".join("abcdefghij")}], max_length=8)


def test_collate_pads_right_with_ignored_labels():
    a = encode_prompt_completion(TOK, "a b", " c", max_length=16)
    b = encode_prompt_completion(TOK, "a b c d", " e f", max_length=16)
    batch = collate([a, b], PAD)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (2, len(b.input_ids))
    n = len(a.input_ids)
    assert torch.equal(batch["input_ids"][0, n:], torch.full((len(b.input_ids) - n,), PAD))
    assert (batch["labels"][0, n:] == IGNORE_INDEX).all() and batch["attention_mask"][0].sum() == n
    assert batch["labels"][1].tolist() == list(b.labels)
