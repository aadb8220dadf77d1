"""MMLU by log-likelihood: the predicted answer is argmax over X in A-D of log p(' X' | prompt).

Prompt (lm-eval's subject header, the authors' question template):
    The following are multiple choice questions (with answers) about {subject}.\\n\\n
    [k dev examples of the same subject, each 'Question: ..\\nA) ..\\n..\\nAnswer: X\\n\\n']
    Question: {q}\\nA) ..\\nB) ..\\nC) ..\\nD) ..\\nAnswer:
The k examples are the first k of the subject's dev split (lm-eval's 'first_n' sampler), so k <= 5.
"""

from __future__ import annotations

from collections import defaultdict

from sftscope.data.registry import load_records
from sftscope.data.templates import LETTERS, mmlu_prompt
from sftscope.errors import SftscopeError
from sftscope.evaluation.scoring import continuation_logprobs
from sftscope.evaluation.tasks import TaskResult

CHOICES = tuple(f" {letter}" for letter in LETTERS)  # scored continuations: ' A', ' B', ' C', ' D'


def subject_header(subject: str) -> str:
    """lm-eval's description line: 'The following are ... about high school physics.\\n\\n'."""
    return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"


def build_context(record: dict, dev_by_subject: dict[str, list[dict]], k_shot: int, header: bool = True) -> str:
    """Header + first k dev examples of the record's subject (answers included) + the question prompt."""
    subject = record["subject"]
    examples = dev_by_subject.get(subject, [])[:k_shot]
    if len(examples) < k_shot:
        raise SftscopeError(f"mmlu k_shot={k_shot}: subject {subject!r} has only {len(examples)} dev examples")
    shots = "".join(f"{mmlu_prompt(e)} {LETTERS[int(e['answer'])]}\n\n" for e in examples)
    return (subject_header(subject) if header else "") + shots + mmlu_prompt(record)


def select_items(records: list[dict], limit: int | None, subjects: list[str] | None = None) -> list[dict]:
    """Round-robin over subjects in file order: item 0 of every subject, then item 1, ... up to `limit` items.

    limit = 57 * m therefore gives the first m items of every subject (lm-eval's per-subject --limit m),
    and any limit keeps all subjects represented, unlike a plain prefix of the subject-sorted file.
    """
    by_subject: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_subject[record["subject"]].append(record)
    if subjects:
        missing = sorted(set(subjects) - set(by_subject))
        if missing:
            raise SftscopeError(f"unknown MMLU subject(s) {', '.join(missing)}; known: {', '.join(sorted(by_subject))}")
        by_subject = {s: by_subject[s] for s in by_subject if s in set(subjects)}
    if limit is not None and int(limit) < 1:
        raise SftscopeError(f"limit must be a positive number of items, got {limit}")
    total = sum(map(len, by_subject.values()))
    limit = total if limit is None else min(int(limit), total)
    chosen, depth = [], 0
    while len(chosen) < limit:
        chosen += [items[depth] for items in by_subject.values() if depth < len(items)][: limit - len(chosen)]
        depth += 1
    return chosen


def score_mmlu(choice_scores: list[list[float]], records: list[dict]) -> tuple[dict, list[dict]]:
    """(metrics, details) from per-record log-likelihoods of ' A'..' D': accuracy and its macro over subjects."""
    details, by_subject = [], defaultdict(list)
    for scores, record in zip(choice_scores, records, strict=True):
        predicted = max(range(len(scores)), key=scores.__getitem__)  # ties go to the earlier letter
        correct = predicted == int(record["answer"])
        by_subject[record["subject"]].append(correct)
        details.append({"id": record.get("id"), "subject": record["subject"], "gold": LETTERS[int(record["answer"])],
                        "predicted": LETTERS[predicted], "correct": correct,
                        **{f"logprob_{LETTERS[i]}": s for i, s in enumerate(scores)}})
    n = max(len(details), 1)
    per_subject = [sum(v) / len(v) for v in by_subject.values()]
    metrics = {"accuracy": sum(d["correct"] for d in details) / n,
               "accuracy_macro": sum(per_subject) / max(len(per_subject), 1),
               "n_subjects": float(len(per_subject))}
    return metrics, details


def run_mmlu(model, tokenizer, *, data_dir=None, limit: int | None = None, batch_size: int = 8, seed: int = 0,
             k_shot: int = 0, subjects: list[str] | None = None, header: bool = True) -> TaskResult:
    """MMLU test accuracy (overall and macro over subjects) by log-likelihood of ' A'..' D'; `limit` items in all."""
    records = select_items(load_records("mmlu", data_dir, "test"), limit, subjects)
    dev_by_subject: dict[str, list[dict]] = defaultdict(list)
    if k_shot:
        for example in load_records("mmlu", data_dir, "dev"):
            dev_by_subject[example["subject"]].append(example)
    contexts = [build_context(r, dev_by_subject, k_shot, header) for r in records]
    flat = continuation_logprobs(model, tokenizer, [c for c in contexts for _ in CHOICES],
                                 [x for _ in contexts for x in CHOICES], batch_size=batch_size)
    choice_scores = [flat[i:i + len(CHOICES)] for i in range(0, len(flat), len(CHOICES))]
    metrics, details = score_mmlu(choice_scores, records)
    config = {"split": "test", "k_shot": k_shot, "header": header, "subjects": subjects, "limit": limit,
              "selection": "round-robin over subjects"}
    return TaskResult("mmlu", metrics, len(records), details, config)
