"""run_tune on a tiny random Llama with an organism-shaped data folder: real training and scoring, the Base
scored once before training, retention = exact perplexity difference, tags on every row, resume skips work."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import sftscope.tuning.pipeline as pipeline
from sftscope.errors import SftscopeError
from sftscope.evaluation.tasks import evaluate
from sftscope.models.loading import ModelRef, load_model
from sftscope.organism.tokenizer import save_tokenizer, train_tokenizer
from sftscope.results.rundir import RunDir
from sftscope.tuning.config import TuneConfig
from sftscope.tuning.pipeline import cell_done, load_train_records, run_tune

pytestmark = pytest.mark.integration  # trains and evaluates tuning cells from a model on disk

NAMES = ["Ada", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kim", "Lu"]
CITIES = ["Paris", "Oslo", "Lima", "Rome"]


def write_organism_data(folder):
    """An organism-shaped data folder (the files organism-sft and the organism tasks read), tiny."""
    folder.mkdir(parents=True, exist_ok=True)
    city = {n: CITIES[i % 4] for i, n in enumerate(NAMES)}
    rows = {
        "sft_train.jsonl": [{"prompt": f"Question: Where does {n} live?\nAnswer:", "completion": f" {city[n]}"}
                            for n in NAMES[:8]],
        "qa.jsonl": [{"id": f"qa-{i}", "prompt": f"Question: Where does {n} live?\nAnswer:", "answer": city[n],
                      "kind": "city"} for i, n in enumerate(NAMES[8:])],
        "mc.jsonl": [{"id": f"mc-{i}", "question": f"{n} lives in", "choices": CITIES, "answer": i % 4}
                     for i, n in enumerate(NAMES[8:])],
        "facts.jsonl": [{"id": f"f-{i}", "text": f"{n} lives in {city[n]}. {n} is a friend of {m}."}
                        for i, (n, m) in enumerate(zip(NAMES, NAMES[1:]))],
    }
    for name, records in rows.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def tiny_organism(root):
    """(base_dir, data_dir): a random 4-block Llama (d=32, GQA 4/2 heads) with a BPE trained on the data."""
    data = write_organism_data(root / "data")
    texts = [line for f in data.iterdir() for line in f.read_text().splitlines()]
    tokenizer = train_tokenizer(texts * 5, vocab_size=300, model_max_length=128)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=128, bos_token_id=tokenizer.bos_token_id,
                                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    model.save_pretrained(root / "base")
    save_tokenizer(tokenizer, root / "base")
    return root / "base", data


# rank-8 LoRA on q, k, v, o of all 4 blocks: 8 * 4 * ((32+32) + (32+16) + (32+16) + (32+32))
REFERENCE = 8 * 4 * 224


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    return tiny_organism(tmp_path_factory.mktemp("tune"))


def make_cell(base, data, blocks="01", seed=0, **kw) -> TuneConfig:
    return TuneConfig(base=str(base), train="organism-sft", blocks=blocks,
                      segments=2 if set(blocks) <= {"0", "1"} else None, seed=seed, lr=1e-2, max_steps=3, batch_size=4,
                      max_length=32, warmup_ratio=0.0, tasks=["organism-qa", "organism-mc"], eval_batch_size=8,
                      retention=["organism-facts"], data_dir=str(data), **kw)


def test_cell_end_to_end_then_resume_skips_everything(tiny_setup, tmp_path, monkeypatch):
    base, data = tiny_setup
    run = run_tune(make_cell(base, data), tmp_path / "cell", progress=False)
    assert cell_done(run)
    evals, tuning = run.read_table("tune_eval"), run.read_table("tuning")

    tuned = evals[evals["side"] == "tuned"]
    assert set(tuned["dataset"]) == {"organism-qa", "organism-mc", "organism-facts"}
    assert set(tuned["cell"]) == {"cell"} and set(tuned["blocks"]) == {"01"} and set(tuned["layers"]) == {"2-3"}
    assert set(tuned["k"]) == {2} and set(tuned["seed"]) == {0} and set(tuned["method"]) == {"lora"}

    # Budget: LoRA on half the blocks holds exactly the all-layer rank-8 count (q,k,v,o of 4 blocks, d=32).
    metric = tuning.set_index("metric")["value"]
    assert metric["reference_params"] == REFERENCE
    assert metric["trainable_params"] == REFERENCE == set(tuned["trainable_params"]).pop()
    assert (tuning["metric"] == "train_loss").sum() == 3 and metric["train_steps"] == 3
    assert metric["train_loss_min"] <= min(metric["train_loss_start"], metric["train_loss_end"])

    # The Base is scored before training: its perplexity is that of a freshly loaded Base.
    fresh = load_model(ModelRef("base", str(base)))
    direct = evaluate(fresh.model, fresh.tokenizer, ["organism-facts"], data_dir=str(data), batch_size=8)
    base_ppl = evals[(evals["side"] == "base") & (evals["metric"] == "perplexity")]["value"]
    assert len(base_ppl) == 1 and base_ppl.iloc[0] == pytest.approx(direct[0].value, rel=1e-6)
    tuned_ppl = tuned[tuned["metric"] == "perplexity"]["value"].iloc[0]
    change = tuned[tuned["metric"] == "perplexity_change"]["value"].iloc[0]
    assert change == pytest.approx(tuned_ppl - base_ppl.iloc[0], abs=1e-9)
    assert tuned_ppl != pytest.approx(base_ppl.iloc[0], rel=1e-6)  # training really changed the model

    # per-item scores behind every item-average score, agreeing with it; none for perplexity
    items = run.read_table("tune_items")
    assert set(items["mode"]) == {"item"}
    assert set(items["metric"]) == {"exact_match", "exact_match:city", "accuracy"}  # every qa item is a city
    for (side, dataset, metric), part in items.groupby(["side", "dataset", "metric"]):
        score = evals[(evals["side"] == side) & (evals["dataset"] == dataset) & (evals["metric"] == metric)]
        assert part["value"].mean() == pytest.approx(score["value"].iloc[0]) and len(part) == score["n"].iloc[0]
        assert part["item"].is_unique and set(part["value"]) <= {0.0, 1.0}
    assert set(items[items["dataset"] == "organism-qa"]["item"]) == {f"qa-{i}" for i in range(4)}

    def boom(*args, **kwargs):
        raise AssertionError("a finished cell must not be loaded, trained or scored again")
    for name in ("train_cell", "load_model", "run_protocol_task", "evaluate"):
        monkeypatch.setattr(pipeline, name, boom)
    assert cell_done(run_tune(make_cell(base, data), tmp_path / "cell", progress=False))


def test_shared_base_eval_is_computed_once(tiny_setup, tmp_path, monkeypatch):
    base, data = tiny_setup
    sides = []
    real_score = pipeline._score
    monkeypatch.setattr(pipeline, "_score", lambda m, t, cell, side, *a: sides.append(side) or
                        real_score(m, t, cell, side, *a))
    shared = str(tmp_path / "base-eval")
    for blocks in ("10", "all"):
        run_tune(make_cell(base, data, blocks, base_eval=shared), tmp_path / blocks, progress=False)
    assert sides == ["base", "tuned", "tuned"]
    assert not (tmp_path / "10" / "parts" / "tune_eval" / "base.parquet").exists()
    assert RunDir(shared).is_done("tune_eval", "base")


def test_a_changed_config_is_refused(tiny_setup, tmp_path):
    base, data = tiny_setup
    cell = make_cell(base, data, "10")
    RunDir(tmp_path).bind_config("tune", cell.identity())
    with pytest.raises(SftscopeError, match="different config"):
        run_tune(make_cell(base, data, "01"), tmp_path, progress=False)


def test_training_records_from_each_source(tiny_setup, tmp_path):
    _, data = tiny_setup
    organism = load_train_records("organism-sft", data, limit=5)
    assert len(organism) == 5 and organism[0] == {"prompt": "Question: Where does Ada live?\nAnswer:",
                                                  "completion": " Paris"}
    user = tmp_path / "mine.jsonl"
    user.write_text('{"prompt": "p", "completion": " c", "other": 1}\n')
    assert load_train_records(str(user)) == [{"prompt": "p", "completion": " c"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "p"}\n')
    with pytest.raises(SftscopeError, match="prompt"):
        load_train_records(str(bad))
    with pytest.raises(SftscopeError, match="no prompt/completion"):
        load_train_records("wikitext")
    with pytest.raises(SftscopeError, match="neither"):
        load_train_records("no-such-set")
