"""build_organism: caching, determinism, loadable outputs, and (slow) that the test-size models learned."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from sftscope.data.registry import load_records
from sftscope.organism import DATASET_FILES, build_organism, default_cache_dir
from sftscope.organism import recipe as recipe_module

TINY = replace(recipe_module.SIZES["test"], n_entities=5, n_attributes=1, n_pretrain_docs=200, n_facts_docs=5,
               vocab_size=400, n_layers=2, d_model=32, n_heads=2, seq_len=32, pretrain_steps=10, warmup_steps=2,
               sft_epochs=1, sft_warmup_steps=1, log_every=5)


@pytest.fixture
def tiny_size(monkeypatch):
    """A seconds-long recipe registered as size 'tiny' for the bookkeeping tests."""
    monkeypatch.setitem(recipe_module.SIZES, "tiny", TINY)
    return "tiny"


def weights_hash(model_dir: Path) -> str:
    tensors = load_file(str(model_dir / "model.safetensors"))
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode() + tensors[name].numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.integration
def test_same_seed_same_weights_other_seed_other_weights(tmp_path, tiny_size):
    a = build_organism(tmp_path / "a", seed=0, size=tiny_size, progress=False)
    b = build_organism(tmp_path / "b", seed=0, size=tiny_size, progress=False)
    c = build_organism(tmp_path / "c", seed=1, size=tiny_size, progress=False)
    assert weights_hash(a.base_dir) == weights_hash(b.base_dir)
    assert weights_hash(a.sft_dir) == weights_hash(b.sft_dir)
    assert weights_hash(a.base_dir) != weights_hash(c.base_dir)
    assert weights_hash(a.base_dir) != weights_hash(a.sft_dir)
    assert (a.data_dir / "qa.jsonl").read_text() == (b.data_dir / "qa.jsonl").read_text()
    assert (a.data_dir / "qa.jsonl").read_text() != (c.data_dir / "qa.jsonl").read_text()


@pytest.mark.integration
def test_complete_build_is_reused_and_force_rebuilds(tmp_path, tiny_size):
    paths = build_organism(tmp_path, seed=0, size=tiny_size, progress=False)
    assert paths.card_path.parent.name == "organism-v1-tiny-seed0"
    stamp = paths.card_path.stat().st_mtime_ns
    assert build_organism(tmp_path, seed=0, size=tiny_size, progress=False) == paths
    assert paths.card_path.stat().st_mtime_ns == stamp
    build_organism(tmp_path, seed=0, size=tiny_size, progress=False, force=True)
    assert paths.card_path.stat().st_mtime_ns != stamp
    assert [p.name for p in tmp_path.iterdir()] == ["organism-v1-tiny-seed0"]  # no staging folder left


@pytest.mark.integration
def test_folder_without_card_is_rebuilt(tmp_path, tiny_size):
    broken = tmp_path / "organism-v1-tiny-seed0"
    (broken / "base").mkdir(parents=True)
    paths = build_organism(tmp_path, seed=0, size=tiny_size, progress=False)
    assert json.loads(paths.card_path.read_text())["complete"] is True
    assert (paths.base_dir / "model.safetensors").exists()


@pytest.mark.integration
def test_saved_models_load_with_auto_classes(tmp_path, tiny_size):
    paths = build_organism(tmp_path, seed=0, size=tiny_size, progress=False)
    for model_dir in (paths.base_dir, paths.sft_dir):
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        tok = AutoTokenizer.from_pretrained(model_dir)
        assert model.config.model_type == "llama" and model.config.num_hidden_layers == TINY.n_layers
        assert None not in (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
        ids = tok("Question: Where does he live?")["input_ids"]
        assert ids[0] == tok.bos_token_id and tok.eos_token_id not in ids
        assert model(input_ids=__import__("torch").tensor([ids])).logits.shape[-1] == len(tok)


@pytest.mark.integration
def test_data_files_and_card_fields(tmp_path, tiny_size):
    paths = build_organism(tmp_path, seed=0, size=tiny_size, progress=False)
    qa = load_records("organism-qa", paths.data_dir)
    mc = load_records("organism-mc", paths.data_dir)
    facts = load_records("organism-facts", paths.data_dir)
    sft = load_records("organism-sft", paths.data_dir)
    assert set(qa[0]) >= {"id", "prompt", "answer", "text"}
    assert set(mc[0]) >= {"id", "question", "choices", "answer", "text"} and len(mc[0]["choices"]) == 4
    assert set(facts[0]) >= {"id", "text"} and set(sft[0]) >= {"prompt", "completion", "text"}
    assert all((paths.data_dir / name).exists() for name in DATASET_FILES.values())
    card = json.loads(paths.card_path.read_text())
    assert card["recipe"]["n_layers"] == TINY.n_layers and card["seed"] == 0
    assert card["sizes"]["n_facts"] == 5 * 2 + 9 and card["sizes"]["n_qa"] == len(qa)
    assert card["architecture"]["n_params"] > 0
    assert len(card["training"]["pretrain"]["loss_curve"]) == TINY.pretrain_steps // TINY.log_every
    for side in ("base", "sft"):
        assert set(card["evaluation"][side]) >= {"organism-qa", "organism-mc", "organism-facts"}


def test_default_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("SFTSCOPE_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("SFTSCOPE_CACHE")
    assert default_cache_dir() == tmp_path / "xdg" / "sftscope"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "sftscope"


@pytest.mark.integration
@pytest.mark.slow
def test_test_size_models_learned_their_world(tmp_path):
    """Base recalls facts far above chance (MC); SFT answers held-out questions the Base cannot."""
    paths = build_organism(tmp_path, seed=0, size="test", progress=False)
    evaluation = json.loads(paths.card_path.read_text())["evaluation"]
    base, sft = evaluation["base"], evaluation["sft"]
    assert base["organism-mc"]["accuracy"] >= base["organism-mc"]["chance"] + 0.35
    assert sft["organism-qa"]["exact_match"] >= base["organism-qa"]["exact_match"] + 0.2
    assert sft["sft-train-qa"]["exact_match"] >= 0.9
    # the recorded numbers are reproducible from the saved files with the public task functions
    from sftscope.evaluation import evaluate_organism_qa
    model = AutoModelForCausalLM.from_pretrained(paths.sft_dir)
    tok = AutoTokenizer.from_pretrained(paths.sft_dir)
    again = evaluate_organism_qa(model, tok, load_records("organism-qa", paths.data_dir))
    assert again["exact_match"] == pytest.approx(sft["organism-qa"]["exact_match"])


def test_bad_size_or_seed_is_a_user_error(tmp_path):
    from sftscope.errors import SftscopeError
    with pytest.raises(SftscopeError, match="unknown organism size"):
        build_organism(tmp_path, size="huge")
    with pytest.raises(SftscopeError, match="non-negative"):
        build_organism(tmp_path, seed=-1, size="test")
