"""MMLU: prompt building, subject round-robin, and log-likelihood scoring checked with a rigged model."""

from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from sftscope.data.registry import load_records
from sftscope.errors import SftscopeError
from sftscope.evaluation.mmlu import build_context, question_text, run_mmlu, score_mmlu, select_items
from sftscope.tokenization import encode_pair
from tests.conftest import SHARED_DATA, build_tiny, lm_eval_or_skip, make_tokenizer

SHORT_SUBJECTS = ["abstract_algebra", "college_mathematics", "elementary_mathematics"]


class PreferToken(torch.nn.Module):
    """Wraps a causal LM so that one token id gets a huge logit bonus at every position."""

    def __init__(self, model, token_id: int, bonus: float = 1e4):
        super().__init__()
        self.model, self.token_id, self.bonus = model, token_id, bonus

    def forward(self, input_ids, attention_mask=None, **kwargs):
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits.clone()
        logits[..., self.token_id] += self.bonus
        return SimpleNamespace(logits=logits)


@pytest.fixture(scope="module")
def test_records():
    return load_records("mmlu", SHARED_DATA, "test")


def test_round_robin_covers_subjects_and_matches_per_subject_prefix(test_records):
    n_subjects = len({r["subject"] for r in test_records})
    chosen = select_items(test_records, 2 * n_subjects, None)
    counts = Counter(r["subject"] for r in chosen)
    assert len(counts) == n_subjects and set(counts.values()) == {2}
    for subject in counts:  # exactly the first two items of each subject, in file order
        first_two = [r["id"] for r in test_records if r["subject"] == subject][:2]
        assert [r["id"] for r in chosen if r["subject"] == subject] == first_two
    assert len(select_items(test_records, 5, None)) == 5
    assert len(select_items(test_records, None, ["abstract_algebra"])) == 100
    with pytest.raises(SftscopeError, match="unknown MMLU subject"):
        select_items(test_records, 5, ["astrology"])


def test_k_shot_context_uses_first_dev_examples_of_the_same_subject(test_records):
    dev = {}
    for r in load_records("mmlu", SHARED_DATA, "dev"):
        dev.setdefault(r["subject"], []).append(r)
    record = next(r for r in test_records if r["subject"] == "college_mathematics")
    context = build_context(record, dev, 2)
    first, second = dev["college_mathematics"][:2]
    assert context.startswith("The following are multiple choice questions (with answers) about college mathematics.\n\n"
                              f"{first['question'].strip()}\nA. ")
    assert f"Answer: {'ABCD'[int(first['answer'])]}\n\n{second['question'].strip()}\nA. " in context
    assert context.endswith(f"{record['question'].strip()}\nA. {record['choice0']}\nB. {record['choice1']}\n"
                            f"C. {record['choice2']}\nD. {record['choice3']}\nAnswer:")
    assert context.count("Answer:") == 3
    assert build_context(record, dev, 0, header=False) == question_text(record)
    with pytest.raises(SftscopeError, match="dev examples"):
        build_context(record, dev, 6)


def test_score_mmlu_micro_and_macro():
    records = [{"subject": "x", "answer": "0"}, {"subject": "x", "answer": "1"}, {"subject": "x", "answer": "2"},
               {"subject": "y", "answer": "0"}]
    scores = [[0, -1, -2, -3]] * 4  # always predicts A
    metrics, details = score_mmlu(scores, records)
    assert metrics["acc"] == pytest.approx(2 / 4)
    assert metrics["acc_macro"] == pytest.approx((1 / 3 + 1) / 2)
    assert [d["predicted"] for d in details] == ["A"] * 4


@pytest.mark.parametrize("k_shot", [0, 1])
def test_model_that_always_says_c_scores_the_share_of_c_answers(k_shot):
    tokenizer = make_tokenizer()
    token_c = encode_pair(tokenizer, "Answer:", " C").continuation  # the token ' C' is in the prompt's text
    assert len(token_c) == 1
    model = PreferToken(build_tiny("llama"), token_c[0])
    result = run_mmlu(model, tokenizer, data_dir=SHARED_DATA, limit=24, batch_size=8, k_shot=k_shot,
                      subjects=SHORT_SUBJECTS)
    items = select_items(load_records("mmlu", SHARED_DATA, "test"), 24, SHORT_SUBJECTS)
    share_c = sum(int(r["answer"]) == 2 for r in items) / len(items)
    assert result.n == 24 and len(result.details) == 24
    assert [d["id"] for d in result.details] == [r["id"] for r in items]
    assert all(d["predicted"] == "C" for d in result.details)
    assert result.metrics["acc"] == pytest.approx(share_c)
    per_subject = [sum(int(r["answer"]) == 2 for r in items if r["subject"] == s) /
                   sum(r["subject"] == s for r in items) for s in SHORT_SUBJECTS]
    assert result.metrics["acc_macro"] == pytest.approx(sum(per_subject) / 3)
    assert result.metrics["n_subjects"] == 3


def test_batch_size_does_not_change_scores():
    tokenizer, model = make_tokenizer(), build_tiny("llama")
    one = run_mmlu(model, tokenizer, data_dir=SHARED_DATA, limit=6, batch_size=1, subjects=SHORT_SUBJECTS)
    many = run_mmlu(model, tokenizer, data_dir=SHARED_DATA, limit=6, batch_size=24, subjects=SHORT_SUBJECTS)
    for a, b in zip(one.details, many.details):
        assert a["logprob_A"] == pytest.approx(b["logprob_A"], abs=1e-4)
        assert a["predicted"] == b["predicted"]


def test_template_and_headers_are_lm_evals():
    """The installed lm-eval's MMLU template, choices and every subject's description line."""
    lm_eval = lm_eval_or_skip()
    import yaml
    from pathlib import Path
    from sftscope.evaluation.mmlu import CHOICES, subject_header
    folder = Path(lm_eval.__file__).parent / "tasks" / "mmlu" / "default"
    template = yaml.safe_load((folder / "_default_template_yaml").read_text())
    assert template["doc_to_text"] == ("{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\n"
                                       "C. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:")
    assert tuple(" " + c for c in template["doc_to_choice"]) == CHOICES
    assert template["fewshot_config"]["sampler"] == "first_n" and template["fewshot_split"] == "dev"
    subjects = {r["subject"] for r in load_records("mmlu", SHARED_DATA, "dev")}
    assert len(subjects) == 57
    for subject in subjects:
        config = yaml.safe_load((folder / f"mmlu_{subject}.yaml").read_text())
        assert config["description"] == subject_header(subject)
