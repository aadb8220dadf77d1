"""GSM8K: greedy generation, then the two answer filters lm-evaluation-harness reports.

strict   : the first '#### N' (the format the GSM8K solutions end with).
flexible : the last number.
Both look only at the generation up to its first stop string (generation already stops there; cutting again
keeps scoring right for text from elsewhere), so a number in a hallucinated follow-up question never counts.
Both are compared with the gold '#### N' after the same normalisation: commas, '$' and trailing '.' are
dropped and the number is compared by value (18.0 == 18, -0 == 0).
Differences from lm-eval (v3 gsm8k.yaml), all deliberate: lm-eval compares strings ('18.0' vs '18' is a miss
there); its strict regex does not accept '#### $18'; its flexible regex '(-?[$0-9.,]{2,})|(-?[0-9]+)' can
take a run of punctuation such as '...' as the last "number", while NUMBER below needs a digit.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import numpy as np

from sftscope.data.registry import load_records
from sftscope.errors import SftscopeError
from sftscope.evaluation.scoring import cut_at_stop, greedy_generate
from sftscope.evaluation.tasks import TaskResult, first_n

# "Question:" ends a hallucinated next item; a blank line ends the answer block (solutions have none).
DEFAULT_STOP = ("Question:", "\n\n")
STRICT_ANSWER = re.compile(r"####\s*\$?\s*(-?[0-9.,]+)")
# A number: optional sign (only when the '-' is not a minus between operands, e.g. '16-3'), optional '$',
# digits with thousands commas, optional decimals. '18.' matches '18'; '1,000' matches whole.
NUMBER = re.compile(r"(?:(?<![\w)\]])-)?\$?\d(?:[\d,]*\d)?(?:\.\d+)?")


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


def extract_strict(generation: str, stop: tuple[str, ...] | list[str] = DEFAULT_STOP) -> str | None:
    """Normalised number of the first '#### N' before the first stop string, else None."""
    match = STRICT_ANSWER.search(cut_at_stop(generation, list(stop)))
    return normalize_number(match.group(1)) if match else None


def extract_flexible(generation: str, stop: tuple[str, ...] | list[str] = DEFAULT_STOP) -> str | None:
    """Normalised last number before the first stop string, else None."""
    numbers = NUMBER.findall(cut_at_stop(generation, list(stop)))
    return normalize_number(numbers[-1]) if numbers else None


def format_example(question: str, solution: str | None = None) -> str:
    """'Question: {q}\\nAnswer:' with ' {solution}' appended for a few-shot example."""
    prompt = f"Question: {question}\nAnswer:"
    return prompt if solution is None else f"{prompt} {solution}"


def build_prompts(records: list[dict], shots: list[dict], k_shot: int, seed: int) -> list[str]:
    """One prompt per record: k examples from `shots` (own seeded draw per item index) + the question."""
    if k_shot and len(shots) < k_shot:
        raise SftscopeError(f"gsm8k k_shot={k_shot} needs at least {k_shot} training examples, got {len(shots)}")
    prompts = []
    for index, record in enumerate(records):
        # Seeded by (seed, item index): the shots of item i do not depend on limit or on other items.
        chosen = np.random.default_rng([seed, index]).choice(len(shots), size=k_shot, replace=False) if k_shot else []
        context = "".join(format_example(shots[j]["question"], shots[j]["answer"]) + "\n\n" for j in chosen)
        prompts.append(context + format_example(record["question"]))
    return prompts


def score_generations(generations: list[str], records: list[dict], stop=DEFAULT_STOP) -> tuple[dict, list[dict]]:
    """(metrics, per-item details) of generations against the records' gold '#### N'."""
    details = []
    for generation, record in zip(generations, records, strict=True):
        gold = gold_answer(record["answer"])
        strict, flexible = extract_strict(generation, stop), extract_flexible(generation, stop)
        details.append({"id": record.get("id"), "gold": gold, "strict": strict, "flexible": flexible,
                        "strict_correct": strict is not None and strict == gold,
                        "flexible_correct": flexible is not None and flexible == gold, "generation": generation})
    n = max(len(details), 1)
    metrics = {
        "exact_match_strict": sum(d["strict_correct"] for d in details) / n,
        "exact_match_flexible": sum(d["flexible_correct"] for d in details) / n,
        "strict_format_rate": sum(d["strict"] is not None for d in details) / n,  # share that wrote '#### N'
    }
    return metrics, details


def run_gsm8k(model, tokenizer, *, data_dir=None, limit: int | None = None, batch_size: int = 8, seed: int = 0,
              k_shot: int = 0, max_new_tokens: int = 256, stop: tuple[str, ...] | list[str] = DEFAULT_STOP,
              split: str = "test") -> TaskResult:
    """GSM8K exact match (strict, flexible) of greedy answers on the first `limit` items of `split`."""
    records = first_n(load_records("gsm8k", data_dir, split), limit)
    shots = load_records("gsm8k", data_dir, "train") if k_shot else []
    prompts = build_prompts(records, shots, k_shot, seed)
    generations = greedy_generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, stop=list(stop),
                                  batch_size=batch_size)
    metrics, details = score_generations(generations, records, stop)
    config = {"split": split, "k_shot": k_shot, "max_new_tokens": max_new_tokens, "stop": list(stop),
              "limit": limit, "seed": seed}
    return TaskResult("gsm8k", metrics, len(records), details, config)
