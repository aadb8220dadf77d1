"""The text -> ids owner (sftscope.tokenization) on the cases that were wrong before it existed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from sftscope.errors import SftscopeError
from sftscope.evaluation.scoring import continuation_logprobs
from sftscope.tokenization import (document_ids, encode_chat, encode_pair, encode_text, eos_token_ids,
                                   prefix_token_id, special_layout, split_trailing_whitespace)
from sftscope.tuning.sequences import encode_prompt_completion
from tests.tokenizer_families import make_family


def tiny_model(tok, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.2,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).eval()


def tokens(tok, ids):
    return tok.convert_ids_to_tokens(ids)


@pytest.mark.parametrize("family, prefix, suffix", [
    ("gpt2", (), ()), ("llama3", ("<|begin_of_text|>",), ()), ("olmo2", ("<|endoftext|>",), ()),
    ("llama2", ("<s>",), ()), ("llama2-legacy", ("<s>",), ()), ("eos-suffix", ("<s>",), ("</s>",))])
def test_special_layout_of_each_family(family, prefix, suffix):
    tok = make_family(family)
    layout = special_layout(tok)
    assert tuple(tokens(tok, layout.prefix)) == prefix and tuple(tokens(tok, layout.suffix)) == suffix


def test_metaspace_continuation_is_the_texts_own_tokens():
    """The issue's example: 'Q: 2+3?\\nA:\\n' + 'The answer is 5.' was trained and scored as '▁The ▁answer'."""
    for family in ("llama2", "llama2-legacy"):
        tok = make_family(family)
        pair = encode_pair(tok, "Q: 2+3?\nA:\n", "The answer is 5.")
        whole = tok("Q: 2+3?\nA:\nThe answer is 5.")["input_ids"]
        assert pair.ids == whole and pair.exact_boundary
        # lm-eval's rule: the context's trailing newline is scored with the continuation
        assert tokens(tok, pair.continuation)[:2] == ["<0x0A>", "T"]
        alone = tok("The answer is 5.", add_special_tokens=False)["input_ids"]
        assert tokens(tok, alone)[0].startswith("▁")  # what separate encoding used to score


def test_legacy_llama2_choice_letter_is_one_token_in_context():
    """The issue's MMLU example: ' A' alone is ['▁', '▁A'] under Llama-2's tokenizer.json; in the text it is '▁A'."""
    tok = make_family("llama2-legacy")
    assert tokens(tok, tok(" A", add_special_tokens=False)["input_ids"]) == ["▁", "▁A"]
    pair = encode_pair(tok, "2+2=?\nA. 4\nB. 5\nAnswer:", " A")
    assert tokens(tok, pair.continuation) == ["▁A"]


def test_score_of_a_digit_is_the_log_prob_of_the_texts_token():
    """'2+3=' + '5': the text has '5' (no word-start marker); scoring '▁5' measured another token."""
    tok = make_family("llama2")
    model = tiny_model(tok)
    ids = tok("2+3=5")["input_ids"]
    other = tok("5", add_special_tokens=False)["input_ids"]
    assert tokens(tok, ids[-1:]) == ["5"] and tokens(tok, other) == ["▁5"]
    with torch.no_grad():
        log_probs = F.log_softmax(model(input_ids=torch.tensor([ids[:-1]])).logits[0, -1], dim=-1)
    got = continuation_logprobs(model, tok, ["2+3="], ["5"])[0]
    assert got == pytest.approx(float(log_probs[ids[-1]]), abs=1e-5)
    assert abs(got - float(log_probs[other[0]])) > 1e-3


def test_trailing_whitespace_moves_to_the_continuation():
    assert split_trailing_whitespace("Answer: \n", "x") == ("Answer:", " \nx")
    tok = make_family("gpt2")
    assert encode_pair(tok, "Answer: ", "A").ids == encode_pair(tok, "Answer:", " A").ids


def test_straddling_token_keeps_the_texts_tokens():
    """'the to' + 'tal' is the one token ' total': the split falls before the token that crosses the boundary
    (lm-eval would feed the context's own ' to' and then the text's tokens after it, which is not the text)."""
    tok = make_family("gpt2")
    assert tokens(tok, tok(" total")["input_ids"]) == ["Ġtotal"]
    pair = encode_pair(tok, "the to", "tal")
    assert pair.ids == tok("the total")["input_ids"]
    assert not pair.exact_boundary and tokens(tok, pair.continuation) == ["Ġtotal"]


def test_bos_never_twice_never_missing():
    tok = make_family("llama3", chat=True)
    bos = tok.bos_token_id
    assert encode_text(tok, "<|begin_of_text|>hello").count(bos) == 1
    rendered = encode_chat(tok, [{"role": "user", "content": "hi"}], add_generation_prompt=True)
    assert rendered.count(bos) == 1 and rendered[0] == bos
    assert rendered == tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=True,
                                               add_generation_prompt=True, return_dict=False)
    # a template without {{ bos_token }} gets the BOS the model was trained with (as lm-eval's tok_encode)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert encode_chat(tok, [{"role": "user", "content": "hi"}])[0] == bos


def test_eos_suffix_tokenizer_never_gets_eos_inside_a_sequence():
    tok = make_family("eos-suffix")
    eos = tok.eos_token_id
    assert tok("a b")["input_ids"][-1] == eos  # the tokenizer itself would append it
    pair = encode_pair(tok, "Question: 1+1?\nAnswer:", " 2")
    assert eos not in pair.ids
    example = encode_prompt_completion(tok, "Question: 1+1?\nAnswer:", " 2", max_length=64)
    assert list(example.input_ids).count(eos) == 1 and example.input_ids[-1] == eos
    # a completion that already ends with the EOS string gets no second one
    again = encode_prompt_completion(tok, "Question: 1+1?\nAnswer:", " 2</s>", max_length=64)
    assert list(again.input_ids) == list(example.input_ids)


def test_empty_context_conditions_on_the_prefix_token():
    gpt2, llama = make_family("gpt2"), make_family("llama2")
    assert prefix_token_id(gpt2) == gpt2.eos_token_id and prefix_token_id(llama) == llama.bos_token_id
    pair = encode_pair(gpt2, "", "Hello")
    assert pair.context == [gpt2.eos_token_id] and pair.continuation == gpt2("Hello")["input_ids"]


def test_document_ids_score_every_token_once():
    for family in ("gpt2", "llama2", "olmo2"):
        tok = make_family(family)
        ids, n_condition = document_ids(tok, "The answer is 5.")
        plain = tok("The answer is 5.", add_special_tokens=False)["input_ids"]
        assert ids[n_condition:] == plain and n_condition == 1
        assert ids[0] == prefix_token_id(tok)


def test_eos_ids_include_the_generation_config():
    tok = make_family("llama3", chat=True)
    model = tiny_model(tok)
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    model.generation_config.eos_token_id = [tok.eos_token_id, eot]
    assert set(eos_token_ids(tok, model)) == {tok.eos_token_id, eot}


def test_chat_needs_a_template():
    with pytest.raises(SftscopeError, match="no chat template"):
        encode_chat(make_family("gpt2"), [{"role": "user", "content": "hi"}])


def test_chat_prompt_without_system_role_is_retried_without_it():
    """lm-eval drops the system message (MMLU's description) when a template raises on it; so do we."""
    from sftscope.evaluation.prompts import fewshot_prompt
    tok = make_family("llama3", chat=True)
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}"
                         "{% endif %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}")
    prompt = fewshot_prompt("2+2?\nAnswer:", [], description="About math.\n\n", tokenizer=tok, chat_template=True)
    assert prompt == "user: 2+2?\nAnswer:\n"
