"""Retention perplexity against a hand computation, user files, and the organism task registrations."""

import json
import math

import pytest
import torch

import sftscope.evaluation.organism_tasks as organism_tasks
from sftscope.data.registry import get_dataset, load_records
from sftscope.errors import SftscopeError
from sftscope.evaluation.organism_tasks import evaluate_organism_mc
from sftscope.evaluation.retention import run_organism, run_perplexity
from tests.conftest import SHARED_DATA, build_tiny, make_tokenizer


@torch.no_grad()
def _perplexity_by_hand(model, tokenizer, texts):
    """exp(sum_i loss_i * (T_i - 1) / sum_i (T_i - 1)) with HF's own per-text mean loss, one text at a time."""
    total, count = 0.0, 0
    for text in texts:
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        total += float(model(input_ids=ids, labels=ids).loss) * (ids.shape[1] - 1)
        count += ids.shape[1] - 1
    return math.exp(total / count), count


@pytest.mark.parametrize("dataset", ["ifeval", "mt_bench"])
def test_perplexity_equals_exp_of_mean_token_loss(dataset):
    model, tokenizer = build_tiny("llama"), make_tokenizer()
    result = run_perplexity(model, tokenizer, dataset=dataset, data_dir=SHARED_DATA, limit=5, batch_size=2,
                            max_length=4096)
    spec = get_dataset(dataset)
    texts = [spec.render(r) for r in load_records(dataset, SHARED_DATA)[:5]]
    expected, n_tokens = _perplexity_by_hand(model, tokenizer, texts)
    assert result.n == 5
    assert result.metrics["perplexity"] == pytest.approx(expected, rel=1e-4)
    assert result.metrics["n_tokens"] == n_tokens
    assert result.metrics["mean_nll"] == pytest.approx(math.log(expected), rel=1e-4)


def test_user_file_and_missing_data_set(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text("\n".join(json.dumps({"body": t}) for t in ["the a of to", "what is the answer", ""]))
    model, tokenizer = build_tiny("llama"), make_tokenizer()
    result = run_perplexity(model, tokenizer, dataset=str(path), text_field="body")
    assert result.n == 2  # the empty text is skipped
    assert result.metrics["perplexity"] == pytest.approx(
        _perplexity_by_hand(model, tokenizer, ["the a of to", "what is the answer"])[0], rel=1e-4)
    with pytest.raises(SftscopeError, match="neither a registered data set"):
        run_perplexity(model, tokenizer, dataset=str(tmp_path / "nothing.txt"))


@pytest.fixture()
def organism_dir(tmp_path):
    rows = {
        "qa.jsonl": [{"id": f"qa-{i}", "prompt": f"what is the w{100 + i} ?", "answer": f"w{200 + i}",
                      "kind": "color" if i % 2 else "city"} for i in range(6)],
        "mc.jsonl": [{"id": f"mc-{i}", "question": f"the w{100 + i} is", "choices": ["w201", "w202", "w203"],
                      "answer": i % 3} for i in range(6)],
        "facts.jsonl": [{"id": f"facts-{i}", "text": f"the w{100 + i} is the w{200 + i} of w{150 + i} ."}
                        for i in range(4)],
    }
    for name, records in rows.items():
        (tmp_path / name).write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return tmp_path


def test_organism_tasks_wrap_the_organism_functions(organism_dir, monkeypatch):
    model, tokenizer = build_tiny("llama"), make_tokenizer()
    answers = {f"what is the w{100 + i} ?": f" W{200 + i}." if i % 2 == 0 else " w0" for i in range(6)}

    def answer_even_items(model, tokenizer, prompts, max_new_tokens, stop, batch_size):  # right for i = 0, 2, 4
        return [answers[p] for p in prompts]  # ' W200.' matches 'w200' after normalisation

    # a scripted generator: HF stop_strings cannot index the word-level test tokenizer
    monkeypatch.setattr(organism_tasks, "greedy_generate", answer_even_items)
    mc = run_organism(model, tokenizer, dataset="organism-mc", data_dir=organism_dir, limit=4)
    records = [json.loads(line) for line in (organism_dir / "mc.jsonl").read_text().splitlines()][:4]
    direct = evaluate_organism_mc(model, tokenizer, records)
    assert mc.n == 4 and mc.metrics == {"accuracy": direct["accuracy"], "chance": pytest.approx(1 / 3)}
    qa = run_organism(model, tokenizer, dataset="organism-qa", data_dir=organism_dir, max_new_tokens=2)
    assert qa.n == 6 and qa.metrics == {"exact_match": 0.5, "exact_match:city": 1.0, "exact_match:color": 0.0}
    facts = run_organism(model, tokenizer, dataset="organism-facts", data_dir=organism_dir)
    assert facts.metrics["n_tokens"] == 4 * 8  # BOS + 8 words/marks per text: 8 predicted
    assert facts.metrics["perplexity"] > 1.0


def test_organism_task_without_a_build_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTSCOPE_ORGANISM", str(tmp_path / "no-build"))
    with pytest.raises(SftscopeError, match="sftscope organism build"):
        run_organism(None, None, dataset="organism-qa")
    with pytest.raises(SftscopeError, match="sftscope organism build"):
        run_organism(None, None, dataset="organism-mc", data_dir=tmp_path)
