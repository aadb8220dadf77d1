"""GSM8K by greedy generation, scored with lm-evaluation-harness's protocol (task `gsm8k`, version 3.0).

Protocol (lm-eval 0.4 `tasks/gsm8k/gsm8k.yaml`), the default and the only one behind the headline metrics:
    prompt       k examples 'Question: {q}\\nAnswer: {solution}\\n\\n' from the train split, then
                 'Question: {q}\\nAnswer:'; k = 5 by default; the examples are drawn by lm-eval's sampler
                 (random.Random(fewshot_seed=1234).sample over the train split, one draw per item in item order)
    generation   greedy, at most 256 new tokens, stops at 'Question:', '</s>', '<|im_end|>' and the model's EOS
    strict-match       the first match of '#### (\\-?[0-9\\.\\,]+)'
    flexible-extract   the last match of '(-?[$0-9.,]{2,})|(-?[0-9]+)'
    exact_match  the extracted string vs the gold solution, both with ',', '$', everything up to the last
                 '#### ' and a trailing '.' removed, case-folded, compared as strings ('[invalid]' when nothing
                 was extracted)
Rows `exact_match_strict-match` and `exact_match_flexible-extract` are those two numbers, the same per item as
lm-eval's (tests/evaluation/test_lm_eval_parity.py).

sftscope's own reading is reported beside them under other names, never instead of them:
    exact_match_value_strict    first '#### N' (a '$' and spaces after '####' allowed), compared by value
    exact_match_value_flexible  last number, compared by value; a number needs a digit ('...' is none), '.5' is
                                0.5, a '-' right after a digit or ')' is a minus ('16-3' gives 16 and 3)
    strict_format_rate          share of generations that wrote '#### N'
By value: '18.0' == '18', '1,000' == '1000', '$18.' == '18'. These accept answers lm-eval's strings miss, so they
run higher than published GSM8K numbers and must not be compared with them.
"""

from __future__ import annotations

import random
import re
from decimal import Decimal, InvalidOperation

from sftscope.data.registry import load_records
from sftscope.errors import SftscopeError
from sftscope.evaluation.prompts import fewshot_prompt
from sftscope.evaluation.scoring import cut_at_stop, greedy_generate
from sftscope.evaluation.tasks import TaskResult, first_n

PROTOCOL = "lm-eval:gsm8k@3.0"
VALUE_PROTOCOL = "sftscope:gsm8k-by-value@2"
DEFAULT_K_SHOT = 5           # lm-eval's num_fewshot for gsm8k
DEFAULT_FEWSHOT_SEED = 1234  # lm-eval's fewshot_random_seed
DEFAULT_MAX_NEW_TOKENS = 256  # lm-eval HFLM's max_gen_toks
DEFAULT_STOP = ("Question:", "</s>", "<|im_end|>")  # lm-eval's `until` (the model's EOS string is added)
FEWSHOT_DELIMITER = "\n\n"
INVALID = "[invalid]"  # lm-eval's RegexFilter fallback

# lm-eval's filters and exact_match settings, verbatim
STRICT_PATTERN = r"#### (\-?[0-9\.\,]+)"
FLEXIBLE_PATTERN = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
IGNORE_REGEXES = (",", "\\$", "(?s).*#### ", "\\.$")

# sftscope's by-value reading
VALUE_STRICT = re.compile(r"####\s*\$?\s*(-?[0-9.,]*[0-9][0-9.,]*)")
# A number: optional sign (not when the '-' is a minus between operands, e.g. '16-3'), optional '$', digits with
# thousands commas and decimals, or a bare decimal '.5'. '18.' matches '18'; '1,000' matches whole.
VALUE_NUMBER = re.compile(r"(?:(?<![\w)\]])-)?\$?(?:\d(?:[\d,]*\d)?(?:\.\d+)?|(?<!\d)\.\d+)")


def regex_filter(generation: str, pattern: str, group_select: int) -> str:
    """lm-eval's RegexFilter on one generation: the group_select-th match (first non-empty group), stripped."""
    matches = re.findall(pattern, generation)
    if not matches:
        return INVALID
    match = matches[group_select]
    if isinstance(match, tuple):
        match = next((m for m in match if m), INVALID)
    return match.strip()


def extract_strict(generation: str) -> str:
    """lm-eval's strict-match filter: the first '#### N' string, else '[invalid]'."""
    return regex_filter(generation, STRICT_PATTERN, 0)


def extract_flexible(generation: str) -> str:
    """lm-eval's flexible-extract filter: the last number-like string, else '[invalid]'."""
    return regex_filter(generation, FLEXIBLE_PATTERN, -1)


def exact_match_normalize(text: str) -> str:
    """lm-eval's exact_match preprocessing of gsm8k: the regexes_to_ignore removed, then lower-cased."""
    for pattern in IGNORE_REGEXES:
        text = re.sub(pattern, "", text)
    return text.lower()


def exact_match(prediction: str, solution: str) -> bool:
    """lm-eval's gsm8k exact_match of a filtered prediction against the full gold solution."""
    return exact_match_normalize(prediction) == exact_match_normalize(solution)


def normalize_number(text: str | None) -> str | None:
    """Canonical string of a numeric answer ('$1,000.' -> '1000', '18.0' -> '18', '-0.50' -> '-0.5'); None if none."""
    if text is None:
        return None
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def gold_answer(solution: str) -> str | None:
    """The normalised number after the last '####' of a GSM8K solution."""
    return normalize_number(solution.split("####")[-1])


def extract_value_strict(generation: str) -> str | None:
    """sftscope: normalised number of the first '#### N' ('#### $18' allowed), else None."""
    match = VALUE_STRICT.search(generation)
    return normalize_number(match.group(1)) if match else None


def extract_value_flexible(generation: str) -> str | None:
    """sftscope: normalised last number (needs a digit; '.5' is 0.5), else None."""
    numbers = VALUE_NUMBER.findall(generation)
    return normalize_number(numbers[-1]) if numbers else None


def format_example(question: str, solution: str | None = None) -> str:
    """lm-eval's gsm8k doc_to_text 'Question: {q}\\nAnswer:', with ' {solution}' for a few-shot example."""
    prompt = f"Question: {question}\nAnswer:"
    return prompt if solution is None else f"{prompt} {solution}"


def fewshot_indices(n_items: int, n_train: int, k_shot: int, fewshot_seed: int = DEFAULT_FEWSHOT_SEED) -> list[list[int]]:
    """Train-split indices of the k examples of items 0..n_items-1: lm-eval's default ContextSampler, i.e. one
    random.Random(fewshot_seed) whose .sample(train, k) is called once per item, in item order.

    Raises:
        SftscopeError: fewer than k training examples.
    """
    if k_shot and n_train < k_shot:
        raise SftscopeError(f"gsm8k k_shot={k_shot} needs at least {k_shot} training examples, got {n_train}")
    rnd = random.Random(fewshot_seed)
    # random.sample draws by position only, so sampling positions equals lm-eval's sampling of the documents
    return [rnd.sample(range(n_train), k_shot) if k_shot else [] for _ in range(n_items)]


def build_prompts(records: list[dict], shots: list[dict], k_shot: int,
                  fewshot_seed: int = DEFAULT_FEWSHOT_SEED, tokenizer=None, chat_template: bool = False,
                  fewshot_as_multiturn: bool = True) -> list[str]:
    """One prompt per record (records = the first items of the test split, in order, as lm-eval's --limit);
    with chat_template, the conversation lm-eval's apply_chat_template builds (evaluation.prompts).

    Raises:
        SftscopeError: fewer training examples than k_shot, or chat_template without a template.
    """
    prompts = []
    for record, chosen in zip(records, fewshot_indices(len(records), len(shots), k_shot, fewshot_seed)):
        examples = [(format_example(shots[j]["question"]), shots[j]["answer"]) for j in chosen]
        prompts.append(fewshot_prompt(format_example(record["question"]), examples, fewshot_delimiter=FEWSHOT_DELIMITER,
                                      tokenizer=tokenizer, chat_template=chat_template,
                                      fewshot_as_multiturn=fewshot_as_multiturn))
    return prompts


def score_generations(generations: list[str], records: list[dict]) -> tuple[dict, list[dict]]:
    """(metrics, per-item details) of generations (already cut at the stop strings) against the gold solutions."""
    details = []
    for generation, record in zip(generations, records, strict=True):
        strict, flexible = extract_strict(generation), extract_flexible(generation)
        gold = gold_answer(record["answer"])
        value_strict, value_flexible = extract_value_strict(generation), extract_value_flexible(generation)
        details.append({"id": record.get("id"), "gold": gold, "strict": strict, "flexible": flexible,
                        "strict_correct": exact_match(strict, record["answer"]),
                        "flexible_correct": exact_match(flexible, record["answer"]),
                        "value_strict": value_strict, "value_flexible": value_flexible,
                        "value_strict_correct": value_strict is not None and value_strict == gold,
                        "value_flexible_correct": value_flexible is not None and value_flexible == gold,
                        "generation": generation})
    n = max(len(details), 1)
    metrics = {
        "exact_match_strict-match": sum(d["strict_correct"] for d in details) / n,
        "exact_match_flexible-extract": sum(d["flexible_correct"] for d in details) / n,
        "exact_match_value_strict": sum(d["value_strict_correct"] for d in details) / n,
        "exact_match_value_flexible": sum(d["value_flexible_correct"] for d in details) / n,
        "strict_format_rate": sum(d["value_strict"] is not None for d in details) / n,
    }
    return metrics, details


METRIC_PROTOCOLS = {"exact_match_strict-match": PROTOCOL, "exact_match_flexible-extract": PROTOCOL,
                    "exact_match_value_strict": VALUE_PROTOCOL, "exact_match_value_flexible": VALUE_PROTOCOL,
                    "strict_format_rate": VALUE_PROTOCOL}


def stop_sequences(tokenizer, stop: tuple[str, ...] | list[str] = DEFAULT_STOP) -> list[str]:
    """lm-eval's `until` plus the model's EOS string (its `handle_stop_sequences`)."""
    stops = list(stop)
    eos = tokenizer.decode([tokenizer.eos_token_id]) if getattr(tokenizer, "eos_token_id", None) is not None else None
    if eos and eos not in stops:
        stops.append(eos)
    return stops


def run_gsm8k(model, tokenizer, *, data_dir=None, limit: int | None = None, batch_size: int = 8, seed: int = 0,
              k_shot: int | None = None, fewshot_seed: int = DEFAULT_FEWSHOT_SEED,
              max_new_tokens: int | None = None, stop: tuple[str, ...] | list[str] = DEFAULT_STOP,
              split: str = "test", chat_template: bool = False, fewshot_as_multiturn: bool = True) -> TaskResult:
    """GSM8K exact match (lm-eval's strict-match and flexible-extract, plus sftscope's by-value extras) of greedy
    answers to the first `limit` items of `split`; k_shot None = lm-eval's 5, max_new_tokens None = 256.

    Raises:
        SftscopeError: missing data, fewer training examples than k_shot, or chat_template without a template.
    """
    k_shot = DEFAULT_K_SHOT if k_shot is None else int(k_shot)
    max_new_tokens = DEFAULT_MAX_NEW_TOKENS if max_new_tokens is None else int(max_new_tokens)
    records = first_n(load_records("gsm8k", data_dir, split), limit)
    shots = load_records("gsm8k", data_dir, "train") if k_shot else []
    prompts = build_prompts(records, shots, k_shot, fewshot_seed, tokenizer, chat_template, fewshot_as_multiturn)
    stops = stop_sequences(tokenizer, stop) if tokenizer is not None else list(stop)
    generations = greedy_generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, stop=stops,
                                  batch_size=batch_size)
    generations = [cut_at_stop(g, stops) for g in generations]  # also for generators that ignore `stop`
    metrics, details = score_generations(generations, records)
    config = {"split": split, "k_shot": k_shot, "fewshot_seed": fewshot_seed, "max_new_tokens": max_new_tokens,
              "stop": stops, "limit": limit, "chat_template": chat_template}
    protocols = {m: p + ("+chat" if chat_template else "") for m, p in METRIC_PROTOCOLS.items()}
    return TaskResult("gsm8k", metrics, len(records), details, config, protocols=protocols, num_fewshot=k_shot)
