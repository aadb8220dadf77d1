"""The one place where text becomes token ids: documents, context/continuation pairs, chat conversations.

Every path that feeds a model (training sequences, log-likelihood scoring, generation prompts, perplexity,
layer-wise analysis, the organism's pretraining) encodes through these functions, so a text gets the same
tokens, the same special tokens and the same scored positions wherever it goes.

Rules (the conventions of lm-evaluation-harness 0.4 `HFLM` and of transformers' chat templates):

* A text is encoded whole. A context/continuation pair is encoded as lm-eval's `_encode_pair` does: whitespace at
  the end of the context moves to the start of the continuation, the whole string `context + continuation` is
  tokenised, and it is split after the context's own tokens. The continuation's ids are therefore the tokens of
  the text, not the tokens of the continuation on its own (under SentencePiece/Metaspace tokenizers those differ:
  `"\\n" + "The"` is `<0x0A> The`, while `"The"` alone is `▁The`). If a token straddles the boundary (the
  context's own tokens are not a prefix of the text's tokens), the split falls before the first token that
  differs, so the ids stay the text's tokens; lm-eval would feed `context_ids + text_ids[len(context_ids):]`
  there, which is not the text.
* Special tokens: the tokenizer's own prefix (BOS for Llama, OLMo-2, Llama-3; nothing for GPT-2 and Qwen) is put
  in front of a text once: never twice (a text that already starts with it, e.g. a rendered chat template with
  `{{ bos_token }}`, gets no second one) and never silently missing (a template without it gets it, as lm-eval's
  `tok_encode` does). A suffix the tokenizer would append (EOS of `add_eos_token` tokenizers) is never put inside a
  sequence; training appends EOS explicitly where an example ends.
* Where nothing precedes the first scored token (an empty context; perplexity with a tokenizer that adds no BOS),
  the model is conditioned on lm-eval's prefix token: BOS, else EOS.
* Chat templates: a conversation is rendered with `tokenizer.apply_chat_template(..., tokenize=False)` and the
  string encoded with the rules above (transformers' `tokenize=True` encodes the rendered string without adding
  special tokens; the template owns its markers). A chat prompt/completion pair is the prompt rendered with the
  generation prompt plus the rest of the full conversation (TRL's prompt-completion convention): the scored part
  is the assistant's content and the template's end-of-turn marker.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Sequence

from sftscope.errors import SftscopeError

IGNORE_INDEX = -100  # label value that torch's cross-entropy (and every HF causal LM loss) skips
_PROBE = "Hello world 12"


@dataclass(frozen=True)
class SpecialLayout:
    """Where a tokenizer puts its special tokens around a text: `prefix` ids before it, `suffix` ids after it."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]


_LAYOUTS: "weakref.WeakKeyDictionary[Any, tuple[tuple, SpecialLayout]]" = weakref.WeakKeyDictionary()


def _plain(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _layout_key(tokenizer) -> tuple:
    # settings that change the post-processor: a cached layout is recomputed when any of them changes
    return tuple(getattr(tokenizer, name, None) for name in
                 ("add_bos_token", "add_eos_token", "bos_token_id", "eos_token_id", "padding_side"))


def special_layout(tokenizer) -> SpecialLayout:
    """The ids the tokenizer adds before and after a text when asked for special tokens (cached per tokenizer).

    Found by encoding a probe text with and without special tokens: with = prefix + plain + suffix.

    Raises:
        SftscopeError: the plain ids are not contiguous inside the ids with special tokens (an unknown layout).
    """
    key = _layout_key(tokenizer)
    try:
        cached = _LAYOUTS.get(tokenizer)
    except TypeError:  # not weak-referenceable: compute every time
        cached = None
    if cached is not None and cached[0] == key:
        return cached[1]
    plain = _plain(tokenizer, _PROBE)
    full = list(tokenizer(_PROBE, add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            layout = SpecialLayout(tuple(full[:start]), tuple(full[start + len(plain):]))
            break
    else:
        raise SftscopeError(f"cannot tell where {type(tokenizer).__name__} puts its special tokens: "
                            f"{full} does not contain {plain}")
    try:
        _LAYOUTS[tokenizer] = (key, layout)
    except TypeError:
        pass
    return layout


def prefix_token_id(tokenizer) -> int:
    """lm-eval's conditioning token for a continuation with nothing before it: BOS, else EOS.

    Raises:
        SftscopeError: the tokenizer has neither.
    """
    for candidate in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    raise SftscopeError(f"{type(tokenizer).__name__} has neither a BOS nor an EOS token to condition on")


def pad_token_id(tokenizer) -> int:
    """The id used for padding: the tokenizer's pad token, else EOS, else 0 (padding is always masked out)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def eos_token_ids(tokenizer, model=None) -> tuple[int, ...]:
    """Ids that end a generation: the model's generation-config EOS (an int or a list, e.g. Llama-3-Instruct's
    `<|end_of_text|>` and `<|eot_id|>`) and the tokenizer's EOS."""
    ids: list[int] = []
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in ([config_eos] if isinstance(config_eos, int) else list(config_eos or [])):
        ids.append(int(value))
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    return tuple(dict.fromkeys(ids))


def encode_text(tokenizer, text: str, *, add_prefix: bool = True) -> list[int]:
    """Token ids of a whole text: the tokenizer's special prefix (BOS) once, then the text's tokens; no suffix.

    A text whose own tokens already start with the prefix (it contains the BOS string at its start, as rendered
    chat templates do) gets no second one.
    """
    ids = _plain(tokenizer, text)
    prefix = list(special_layout(tokenizer).prefix) if add_prefix else []
    if prefix and ids[:len(prefix)] != prefix:
        ids = prefix + ids
    return ids


def encode_texts(tokenizer, texts: Sequence[str], *, add_prefix: bool = True) -> list[list[int]]:
    """encode_text for each text."""
    return [encode_text(tokenizer, t, add_prefix=add_prefix) for t in texts]


@dataclass(frozen=True)
class PairIds:
    """A context/continuation pair as ids: `context + continuation` is the text's own token sequence.

    `exact_boundary` is False when a token straddles the boundary (the split then falls before it).
    """

    context: list[int]
    continuation: list[int]
    exact_boundary: bool = True

    @property
    def ids(self) -> list[int]:
        return self.context + self.continuation


def split_trailing_whitespace(context: str, continuation: str) -> tuple[str, str]:
    """lm-eval's rule: whitespace at the end of the context belongs to the continuation ('A: ' + 'x' -> 'A:' + ' x')."""
    stripped = context.rstrip()
    return stripped, context[len(stripped):] + continuation


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode_pair(tokenizer, context: str, continuation: str, *, move_whitespace: bool = True) -> PairIds:
    """Ids of context and continuation as they occur in the tokens of the whole text (lm-eval's `_encode_pair`).

    move_whitespace: lm-eval's rule that trailing context whitespace is scored with the continuation (False keeps
    it in the context, as a chat template's generation prompt is). An empty context conditions on lm-eval's
    prefix token (BOS, else EOS); if the continuation's first token is that token already, it becomes the context.
    """
    if move_whitespace:
        context, continuation = split_trailing_whitespace(context, continuation)
    if not context:
        ids = _plain(tokenizer, continuation)
        start = prefix_token_id(tokenizer)
        if ids and ids[0] == start:
            return PairIds(ids[:1], ids[1:])
        return PairIds([start], ids)
    whole = encode_text(tokenizer, context + continuation)
    own = encode_text(tokenizer, context)
    k = _common_prefix(whole, own)
    if k == 0:  # the first token already reaches past the context (no BOS): condition on the prefix token
        return PairIds([prefix_token_id(tokenizer)], whole, exact_boundary=False)
    return PairIds(whole[:k], whole[k:], exact_boundary=k == len(own))


def encode_pairs(tokenizer, contexts: Sequence[str], continuations: Sequence[str]) -> list[PairIds]:
    """encode_pair for each (context, continuation).

    Raises:
        ValueError: the two lists differ in length.
    """
    if len(contexts) != len(continuations):
        raise ValueError(f"{len(contexts)} contexts but {len(continuations)} continuations")
    return [encode_pair(tokenizer, c, x) for c, x in zip(contexts, continuations)]


def has_chat_template(tokenizer) -> bool:
    """True when the tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def render_chat(tokenizer, messages: list[dict[str, str]], *, add_generation_prompt: bool = False,
                continue_final_message: bool = False) -> str:
    """The conversation as the tokenizer's chat template writes it (a string, markers included).

    Raises:
        SftscopeError: the tokenizer has no chat template.
    """
    if not has_chat_template(tokenizer):
        raise SftscopeError(f"{type(tokenizer).__name__} has no chat template; use plain prompts (no chat template)")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                         continue_final_message=continue_final_message)


def encode_chat(tokenizer, messages: list[dict[str, str]], *, add_generation_prompt: bool = False) -> list[int]:
    """Ids of a rendered conversation: the template's own markers, the tokenizer's BOS exactly once."""
    return encode_text(tokenizer, render_chat(tokenizer, messages, add_generation_prompt=add_generation_prompt))


def chat_pair_text(tokenizer, prompt: str, completion: str) -> tuple[str, str]:
    """(context, continuation) strings of a single-turn chat example: user = prompt, assistant = completion.

    The context is the conversation up to and including the generation prompt; the continuation is the rest of
    the full conversation (the assistant's content and the template's end-of-turn marker).

    Raises:
        SftscopeError: no chat template, or a template whose full conversation does not start with the
            rendered prompt (so no token boundary exists).
    """
    user = [{"role": "user", "content": prompt}]
    context = render_chat(tokenizer, user, add_generation_prompt=True)
    full = render_chat(tokenizer, user + [{"role": "assistant", "content": completion}])
    if not full.startswith(context):
        raise SftscopeError("the chat template renders the prompt differently once an answer follows, so prompt "
                            "and completion have no common boundary; train without the chat template")
    return context, full[len(context):]


def encode_chat_pair(tokenizer, prompt: str, completion: str) -> PairIds:
    """encode_pair of chat_pair_text: the scored tokens are the assistant turn up to its end marker; the
    generation prompt stays whole in the context (TRL's prompt-completion convention)."""
    context, continuation = chat_pair_text(tokenizer, prompt, completion)
    return encode_pair(tokenizer, context, continuation, move_whitespace=False)


def document_ids(tokenizer, text: str) -> tuple[list[int], int]:
    """(ids, n_condition) of a text scored as a whole (perplexity): ids = conditioning tokens + the text's tokens.

    The conditioning tokens are the tokenizer's prefix (BOS) or, when it adds none, lm-eval's prefix token, so
    the first token of the text is predicted too; every text token is scored exactly once.
    """
    plain = _plain(tokenizer, text)
    prefix = list(special_layout(tokenizer).prefix)
    if prefix and plain[:len(prefix)] == prefix:  # the text carries its own BOS
        return plain, len(prefix)
    condition = prefix or [prefix_token_id(tokenizer)]
    return condition + plain, len(condition)


def decode_generated(tokenizer, ids: Sequence[int], eos_ids: Sequence[int] = ()) -> str:
    """Text of generated ids up to the first EOS, special tokens skipped (as lm-eval decodes continuations)."""
    ids = list(ids)
    cut = min((ids.index(e) for e in eos_ids if e in ids), default=len(ids))
    return tokenizer.decode(ids[:cut], skip_special_tokens=True)
