"""MMLU by log-likelihood with lm-evaluation-harness's protocol (task group `mmlu`, default template v1.0).

Protocol (lm-eval 0.4 `tasks/mmlu/default/_default_template_yaml` and the per-subject configs):
    The following are multiple choice questions (with answers) about {subject}.\\n\\n
    [k dev examples of the same subject (the first k: lm-eval's 'first_n' sampler), each '{example}' + ' X\\n\\n']
    {question.strip()}\\nA. {choice0}\\nB. {choice1}\\nC. {choice2}\\nD. {choice3}\\nAnswer:
scored with the continuations ' A', ' B', ' C', ' D'; the prediction is the first argmax of their summed
log-probabilities; 0-shot by default (k <= 5). Row `acc` is lm-eval's `acc` (the group's size-weighted mean is
the mean over items), identical per item to lm-eval's (tests/evaluation/test_lm_eval_parity.py).
Extras under their own names: `acc_macro` (mean of the per-subject accuracies) and `n_subjects`.
The authors' template ('Question: ..\\nA) ..', `sftscope.data.templates.mmlu_prompt`) stays the text of the
`mmlu` data set in layer-wise analysis; it is not this task's prompt.
"""

from __future__ import annotations

from collections import defaultdict

from sftscope.data.registry import load_records
from sftscope.data.templates import LETTERS, mmlu_choices
from sftscope.errors import SftscopeError
from sftscope.evaluation.prompts import fewshot_prompt
from sftscope.evaluation.scoring import continuation_logprobs
from sftscope.evaluation.tasks import TaskResult

PROTOCOL = "lm-eval:mmlu@2"  # the group (version 2) of the per-subject tasks (version 1.0)
EXTRA_PROTOCOL = "sftscope:mmlu-macro@1"
TARGET_DELIMITER = " "
FEWSHOT_DELIMITER = "\n\n"
CHOICES = tuple(f"{TARGET_DELIMITER}{letter}" for letter in LETTERS)  # scored continuations: ' A' .. ' D'


def subject_header(subject: str) -> str:
    """lm-eval's description line: 'The following are ... about high school physics.\\n\\n'."""
    return f"The following are multiple choice questions (with answers) about {' '.join(subject.split('_'))}.\n\n"


def question_text(record: dict) -> str:
    """lm-eval's doc_to_text: the stripped question, 'A. ..' to 'D. ..' lines, and 'Answer:'."""
    options = "".join(f"\n{LETTERS[i]}. {c}" for i, c in enumerate(mmlu_choices(record)))
    return f"{record['question'].strip()}{options}\nAnswer:"


def build_context(record: dict, dev_by_subject: dict[str, list[dict]], k_shot: int, header: bool = True,
                  tokenizer=None, chat_template: bool = False, fewshot_as_multiturn: bool = True) -> str:
    """Header + first k dev examples of the record's subject (answers included) + the question; with
    chat_template, the conversation lm-eval's apply_chat_template builds (evaluation.prompts).

    Raises:
        SftscopeError: the subject has fewer than k dev examples, or chat_template without a template.
    """
    subject = record["subject"]
    examples = dev_by_subject.get(subject, [])[:k_shot]
    if len(examples) < k_shot:
        raise SftscopeError(f"mmlu k_shot={k_shot}: subject {subject!r} has only {len(examples)} dev examples")
    return fewshot_prompt(question_text(record), [(question_text(e), LETTERS[int(e["answer"])]) for e in examples],
                          description=subject_header(subject) if header else "", target_delimiter=TARGET_DELIMITER,
                          fewshot_delimiter=FEWSHOT_DELIMITER, tokenizer=tokenizer, chat_template=chat_template,
                          fewshot_as_multiturn=fewshot_as_multiturn)


def choices_for(chat_template: bool) -> tuple[str, ...]:
    """The scored continuations: ' A'..' D'; 'A'..'D' after a chat template's generation prompt (lm-eval drops the
    target delimiter there)."""
    return tuple(LETTERS) if chat_template else CHOICES


def select_items(records: list[dict], limit: int | None, subjects: list[str] | None = None) -> list[dict]:
    """Round-robin over subjects in file order: item 0 of every subject, then item 1, ... up to `limit` items.

    limit = 57 * m therefore gives the first m items of every subject (lm-eval's per-subject --limit m),
    and any limit keeps all subjects represented, unlike a plain prefix of the subject-sorted file.

    Raises:
        SftscopeError: an unknown subject or a limit below 1.
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
    """(metrics, details) from per-record log-likelihoods of ' A'..' D': acc, its macro over subjects."""
    details, by_subject = [], defaultdict(list)
    for scores, record in zip(choice_scores, records, strict=True):
        predicted = max(range(len(scores)), key=scores.__getitem__)  # ties go to the earlier letter (np.argmax)
        correct = predicted == int(record["answer"])
        by_subject[record["subject"]].append(correct)
        details.append({"id": record.get("id"), "subject": record["subject"], "gold": LETTERS[int(record["answer"])],
                        "predicted": LETTERS[predicted], "correct": correct,
                        **{f"logprob_{LETTERS[i]}": s for i, s in enumerate(scores)}})
    n = max(len(details), 1)
    per_subject = [sum(v) / len(v) for v in by_subject.values()]
    metrics = {"acc": sum(d["correct"] for d in details) / n,
               "acc_macro": sum(per_subject) / max(len(per_subject), 1),
               "n_subjects": float(len(per_subject))}
    return metrics, details


METRIC_PROTOCOLS = {"acc": PROTOCOL, "acc_macro": EXTRA_PROTOCOL, "n_subjects": EXTRA_PROTOCOL}


def load_items(data_dir, limit: int | None, subjects: list[str] | None, k_shot: int
               ) -> tuple[list[dict], dict[str, list[dict]]]:
    """(test items chosen by select_items, dev examples by subject when k_shot > 0)."""
    records = select_items(load_records("mmlu", data_dir, "test"), limit, subjects)
    dev_by_subject: dict[str, list[dict]] = defaultdict(list)
    if k_shot:
        for example in load_records("mmlu", data_dir, "dev"):
            dev_by_subject[example["subject"]].append(example)
    return records, dev_by_subject


def run_mmlu(model, tokenizer, *, data_dir=None, limit: int | None = None, batch_size: int = 8, seed: int = 0,
             k_shot: int | None = None, subjects: list[str] | None = None, header: bool = True,
             chat_template: bool = False, fewshot_as_multiturn: bool = True, fewshot_seed: int = 1234) -> TaskResult:
    """MMLU test accuracy by log-likelihood of ' A'..' D' on `limit` items in all (lm-eval's protocol; k_shot
    None = lm-eval's 0). fewshot_seed is accepted for a uniform interface and unused: the examples are the
    first k dev items of the subject, no draw.

    Raises:
        SftscopeError: missing data, an unknown subject, k_shot above the dev examples of a subject, or
            chat_template without a template.
    """
    k_shot = 0 if k_shot is None else int(k_shot)
    records, dev_by_subject = load_items(data_dir, limit, subjects, k_shot)
    contexts = [build_context(r, dev_by_subject, k_shot, header, tokenizer, chat_template, fewshot_as_multiturn)
                for r in records]
    choices = choices_for(chat_template)
    flat = continuation_logprobs(model, tokenizer, [c for c in contexts for _ in choices],
                                 [x for _ in contexts for x in choices], batch_size=batch_size)
    choice_scores = [flat[i:i + len(choices)] for i in range(0, len(flat), len(choices))]
    metrics, details = score_mmlu(choice_scores, records)
    config = {"split": "test", "k_shot": k_shot, "header": header, "subjects": subjects, "limit": limit,
              "selection": "round-robin over subjects", "chat_template": chat_template}
    protocols = {m: p + ("+chat" if chat_template else "") for m, p in METRIC_PROTOCOLS.items()}
    if not header:
        protocols["acc"] = "sftscope:mmlu-no-header@1"
    return TaskResult("mmlu", metrics, len(records), details, config, protocols=protocols, num_fewshot=k_shot)
