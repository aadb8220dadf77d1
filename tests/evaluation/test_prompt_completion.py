"""Training sequences (tuning.sequences) against the scoring boundary: labels, EOS, truncation, HF loss."""

from __future__ import annotations

import pytest
import torch

from sftscope.tokenization import IGNORE_INDEX
from sftscope.tuning.sequences import collate, encode_prompt_completion
from sftscope.evaluation.scoring import continuation_logprobs
from tests.evaluation.scoring_fixtures import tiny_llama, tiny_tokenizer


def tokenize_prompt_completion(tok, prompt, completion, max_length=512, add_eos=True):
    return encode_prompt_completion(tok, prompt, completion, max_length, add_eos)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def test_labels_mask_the_prompt_and_copy_the_completion(tok):
    ex = tokenize_prompt_completion(tok, "Question: what is two plus two?\nAnswer:", " four")
    prompt_ids = tok("Question: what is two plus two?\nAnswer:")["input_ids"]
    completion_ids = tok(" four", add_special_tokens=False)["input_ids"]
    assert list(ex.input_ids) == prompt_ids + completion_ids + [tok.eos_token_id]
    assert ex.prompt_tokens == len(prompt_ids)
    assert list(ex.labels) == [IGNORE_INDEX] * len(prompt_ids) + completion_ids + [tok.eos_token_id]


def test_no_eos_when_asked(tok):
    ex = tokenize_prompt_completion(tok, "the cat", " sat", add_eos=False)
    assert ex.input_ids[-1] != tok.eos_token_id


def test_truncation_drops_prompt_tokens_from_the_left(tok):
    full = tokenize_prompt_completion(tok, "a dog ran in the park! the cat sat on", " the mat.")
    cut = tokenize_prompt_completion(tok, "a dog ran in the park! the cat sat on", " the mat.", max_length=8)
    assert len(cut.input_ids) == 8
    assert cut.input_ids[-(len(full.input_ids) - full.prompt_tokens):] == full.input_ids[full.prompt_tokens:]
    assert cut.labels[cut.prompt_tokens:] == full.labels[full.prompt_tokens:]


def test_hf_loss_on_collated_batch_is_mean_completion_nll(tok):
    """The model's loss with these labels equals -sum log p(completion+EOS | prompt) / #completion tokens."""
    model = tiny_llama(tok)
    pairs = [("the cat sat on", " the mat."), ("Question: what is two plus two?\nAnswer:", " four")]
    examples = [tokenize_prompt_completion(tok, p, c) for p, c in pairs]
    batch = collate(examples, tok.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert int(batch["attention_mask"].sum()) == sum(len(e.input_ids) for e in examples)
    with torch.no_grad():
        loss = float(model(**batch).loss)
    eos = tok.decode([tok.eos_token_id])
    logprobs = continuation_logprobs(model, tok, [p for p, _ in pairs], [c + eos for _, c in pairs])
    n_completion = sum(len(e.input_ids) - e.prompt_tokens for e in examples)
    assert loss == pytest.approx(-sum(logprobs) / n_completion, rel=1e-4)
