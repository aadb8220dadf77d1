"""The authors' plain-text templates (answer included, no chat template), and prompt/completion splits."""

from __future__ import annotations

LETTERS = "ABCD"


def mmlu_choices(rec: dict) -> list[str]:
    return [str(rec[f"choice{i}"]) for i in range(4)]


def mmlu_prompt(rec: dict) -> str:
    options = "\n".join(f"{LETTERS[i]}) {c}" for i, c in enumerate(mmlu_choices(rec)))
    return f"Question: {rec['question']}\n{options}\nAnswer:"


def mmlu_split(rec: dict) -> tuple[str, str]:
    return mmlu_prompt(rec), f" {LETTERS[int(rec['answer'])]}"


def gsm8k_split(rec: dict) -> tuple[str, str]:
    return f"Question: {rec['question']}\nAnswer:", f" {rec['answer']}"


def humaneval_split(rec: dict) -> tuple[str, str]:
    return rec["prompt"], rec["canonical_solution"]


def mt_bench_text(rec: dict) -> str:
    return "\n".join(rec["turns"])


def joined(split):
    """Text = prompt + completion, the authors' template for analysis."""
    return lambda rec: "".join(split(rec))
