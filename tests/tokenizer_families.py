"""Tiny tokenizers of the families real checkpoints ship, built offline (no hub), with and without chat templates.

    gpt2           byte-level BPE, no BOS added (GPT-2, Pythia; Qwen adds none either)
    llama3         byte-level BPE with Llama-3's split regex, <|begin_of_text|> added as BOS, Llama-3 chat markers
    olmo2          byte-level BPE, BOS == EOS == <|endoftext|> added in front (OLMo-2), Tulu chat template
    llama2         SentencePiece BPE with byte fallback: Metaspace pre-tokenizer (prepend_scheme 'first', no split),
                   as transformers >= 5 builds LlamaTokenizer for Llama-2 / Mistral-7B checkpoints; BOS <s>
    llama2-legacy  the same vocabulary with the tokenizer.json pipeline Llama-2 and Mistral-7B ship (normalizer
                   Prepend('▁') + Replace(' ', '▁'), no pre-tokenizer: " A" alone becomes '▁', '▁A')
    eos-suffix     llama2's vocabulary with a post-processor that also appends EOS (add_eos_token=True)
Each is a PreTrainedTokenizerFast with the pad token `load_tokenizer` would give it.
"""

from __future__ import annotations

import functools
import json

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from tests.conftest import SHARED_DATA

FAMILIES = ("gpt2", "llama3", "olmo2", "llama2", "llama2-legacy", "eos-suffix")
CHAT_FAMILIES = ("gpt2", "llama3", "olmo2", "llama2", "llama2-legacy")
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
          " + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3_CHAT = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
               "'<|end_header_id|>\n\n' + message['content'] | trim }}{{ '<|eot_id|>' }}{% endfor %}"
               "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
TULU_CHAT = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\n' + "
             "message['content'] + '\n' }}{% elif message['role'] == 'assistant' %}{% if not loop.last %}"
             "{{ '<|assistant|>\n' + message['content'] + eos_token + '\n' }}{% else %}{{ '<|assistant|>\n' + "
             "message['content'] + eos_token }}{% endif %}{% endif %}{% if loop.last and add_generation_prompt %}"
             "{{ '<|assistant|>\n' }}{% endif %}{% endfor %}")
LLAMA2_CHAT = ("{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + "
               "message['content'].strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
               "{{ ' ' + message['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
CHAT_TEMPLATES = {"gpt2": CHATML, "llama3": LLAMA3_CHAT, "olmo2": TULU_CHAT, "llama2": LLAMA2_CHAT,
                  "llama2-legacy": LLAMA2_CHAT}


@functools.lru_cache(maxsize=1)
def corpus() -> tuple[str, ...]:
    """GSM8K solutions, MMLU dev questions and a few prompts: the texts the families are trained on."""
    texts = []
    with open(SHARED_DATA / "gsm8k" / "train.jsonl", encoding="utf-8") as f:
        for line, _ in zip(f, range(150)):
            record = json.loads(line)
            texts.append(f"Question: {record['question']}\nAnswer: {record['answer']}")
    import csv
    with open(SHARED_DATA / "mmlu" / "dev.csv", encoding="utf-8", newline="") as f:
        for row, _ in zip(csv.DictReader(f), range(60)):
            texts.append(f"{row['question']}\nA. {row['choice0']}\nB. {row['choice1']}\nC. {row['choice2']}\n"
                         f"D. {row['choice3']}\nAnswer: {'ABCD'[int(row['answer'])]}")
    texts += ["Q: 2+3?\nA:\nThe answer is 5.", "The following are multiple choice questions (with answers)."] * 5
    return tuple(texts)


def _byte_level(family: str) -> Tokenizer:
    specials = {"gpt2": ["<|endoftext|>"],
                "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                           "<|eot_id|>"],
                "olmo2": ["<|endoftext|>", "<|pad|>", "<|user|>", "<|assistant|>"]}[family]
    if family == "gpt2":
        specials += ["<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    if family == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=700, special_tokens=specials,
                                                           show_progress=False,
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos = {"llama3": "<|begin_of_text|>", "olmo2": "<|endoftext|>"}.get(family)
    if bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B",
                                                           special_tokens=[(bos, tok.token_to_id(bos))])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


@functools.lru_cache(maxsize=1)
def _sentencepiece_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A SentencePiece-like BPE: pieces start at '▁' word boundaries, newlines are not in the vocabulary (they
    become <0x0A> by byte fallback, as in Llama-2), ids 0-2 = <unk> <s> </s>, 3-258 = the 256 byte tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.train_from_iterator([t.replace("\n", " ") for t in corpus()],
                            trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<s>", "</s>"],
                                                show_progress=False))
    model = json.loads(tok.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}}
    for token, _ in sorted(model["vocab"].items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return vocab, merges


def _sentencepiece(family: str) -> Tokenizer:
    vocab, merges = _sentencepiece_vocab()
    tok = Tokenizer(models.BPE(vocab=dict(vocab), merges=list(merges), unk_token="<unk>", fuse_unk=True,
                               byte_fallback=True))
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    if family == "llama2-legacy":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    single = "<s> $A </s>" if family == "eos-suffix" else "<s> $A"
    tok.post_processor = processors.TemplateProcessing(single=single, pair="<s> $A $B",
                                                       special_tokens=[("<s>", 1), ("</s>", 2)])
    return tok


@functools.lru_cache(maxsize=None)
def _backend(family: str) -> str:
    tok = _byte_level(family) if family in ("gpt2", "llama3", "olmo2") else _sentencepiece(family)
    return tok.to_str()


def make_family(family: str, chat: bool = False) -> PreTrainedTokenizerFast:
    """A fresh tokenizer of `family` (see the module docstring), with its chat template when chat=True."""
    tokens = {"gpt2": dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"),
              "llama3": dict(bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"),
              "olmo2": dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|pad|>"),
              }.get(family, dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>"))
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_backend(family)), **tokens)
    if tok.pad_token is None:  # as sftscope.models.loading.load_tokenizer does
        tok.pad_token = tok.eos_token
    if chat:
        tok.chat_template = CHAT_TEMPLATES[family]
    return tok
