"""build_organism: world -> data sets -> tokenizer -> Base (pretrained) -> SFT model, cached on disk.

A build is written to a temporary sibling folder and renamed into place after card.json (written last) is
complete, so a folder with a card is always a whole build and an interrupted build leaves nothing behind.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import transformers

from sftscope.errors import SftscopeError
from sftscope.runtime import cpu_threads
from sftscope.tuning.sequences import encode_records
from sftscope.organism import corpus
from sftscope.organism.evaluate import evaluate_pair
from sftscope.organism.recipe import OrganismRecipe, recipe_for
from sftscope.organism.tokenizer import save_tokenizer, tokens_per_word, train_tokenizer
from sftscope.organism.training import finetune, make_model, pack_documents, pretrain
from sftscope.organism.world import make_world

FORMAT_VERSION = "organism-v1"


@dataclass(frozen=True)
class OrganismPaths:
    """Where a built organism lives: two HF model dirs, the jsonl data sets and the card."""

    base_dir: Path
    sft_dir: Path
    data_dir: Path
    card_path: Path

    @classmethod
    def under(cls, root: Path) -> "OrganismPaths":
        return cls(root / "base", root / "sft", root / "data", root / "card.json")


def default_cache_dir() -> Path:
    """$SFTSCOPE_CACHE, else $XDG_CACHE_HOME/sftscope, else ~/.cache/sftscope."""
    if os.environ.get("SFTSCOPE_CACHE"):
        return Path(os.environ["SFTSCOPE_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "sftscope"


def is_complete(root: Path) -> bool:
    """True when root holds a finished build (its card parses and says so)."""
    try:
        return json.loads((root / "card.json").read_text()).get("complete") is True
    except (OSError, ValueError):
        return False


@contextmanager
def build_runtime(threads: int):
    """Deterministic kernels and a fixed thread count for the build; the caller's settings come back after."""
    previous = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.set_num_threads(previous[1])


def build_organism(out_dir: Path | None = None, seed: int = 0, size: str = "default", progress: bool = True,
                   force: bool = False) -> OrganismPaths:
    """Build (or reuse a cached) organism under out_dir/organism-v1-<size>-seed<seed>; returns its paths."""
    recipe = recipe_for(size)
    if not isinstance(seed, int) or seed < 0:
        raise SftscopeError(f"organism seed must be a non-negative integer, got {seed!r}")
    root = Path(out_dir).expanduser() if out_dir is not None else default_cache_dir()
    final = root / f"{FORMAT_VERSION}-{size}-seed{seed}"
    if is_complete(final) and not force:
        return OrganismPaths.under(final)
    staging = root / f".{final.name}.partial-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        with build_runtime(cpu_threads()):
            _build_into(staging, recipe, seed, size, progress)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except OSError as error:
        raise SftscopeError(f"could not write the organism under {root}: {error}; pass another --out "
                            "or set SFTSCOPE_CACHE") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return OrganismPaths.under(final)


def _write_jsonl(path: Path, records: list[dict]) -> None:
    with path.open("w") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def _build_into(root: Path, recipe: OrganismRecipe, seed: int, size: str, progress: bool) -> None:
    paths = OrganismPaths.under(root)
    paths.data_dir.mkdir(parents=True)
    timings, started = {}, time.perf_counter()
    rngs = [np.random.default_rng([seed, stream]) for stream in range(6)]  # independent stream per stage

    world = make_world(rngs[0], recipe.n_entities, recipe.n_attributes, recipe.with_friend, recipe.max_addend)
    docs, sightings = corpus.pretraining_documents(world, recipe.n_pretrain_docs, rngs[1])
    sft_facts, heldout_facts = corpus.split_facts(world, recipe.heldout_fraction, rngs[2])
    data = {
        "sft_train": corpus.sft_records(world, sft_facts),
        "qa": corpus.qa_records(world, heldout_facts),
        "mc": corpus.mc_records(world, set(heldout_facts), rngs[3]),
        "facts": corpus.facts_records(world, recipe.n_facts_docs, set(docs), rngs[4]),
    }
    for name, records in data.items():
        _write_jsonl(paths.data_dir / f"{name}.jsonl", records)
    _write_jsonl(paths.data_dir / "pretrain.jsonl", [{"text": d} for d in docs])
    (paths.data_dir / "world.json").write_text(json.dumps(
        {"entities": world.entities, "facts": [vars(f) for f in world.facts],
         "sft_facts": [vars(f) for f in sft_facts], "heldout_facts": [vars(f) for f in heldout_facts]}, indent=1))
    timings["data_s"] = time.perf_counter() - started

    mark = time.perf_counter()
    tokenizer = train_tokenizer(docs + [r["prompt"] for r in data["sft_train"] + data["qa"]],
                                recipe.vocab_size, recipe.max_position)
    words = world.entities + sorted({f.value for f in world.facts if f.attribute != "sum"})
    word_lengths = tokens_per_word(tokenizer, words)
    blocks = pack_documents(tokenizer, docs, recipe.seq_len)
    timings["tokenizer_s"] = time.perf_counter() - mark

    torch.manual_seed(seed)
    base = make_model(recipe, tokenizer)
    pretraining = pretrain(base, blocks, recipe, rngs[5], progress)
    base.save_pretrained(paths.base_dir)
    save_tokenizer(tokenizer, paths.base_dir)

    sft = copy.deepcopy(base)
    examples = encode_records(tokenizer, data["sft_train"], recipe.max_position).examples
    finetuning = finetune(sft, examples, tokenizer.pad_token_id, recipe, np.random.default_rng([seed, 6]), progress)
    sft.save_pretrained(paths.sft_dir)
    save_tokenizer(tokenizer, paths.sft_dir)
    timings["pretrain_s"], timings["sft_s"] = pretraining["seconds"], finetuning["seconds"]

    mark = time.perf_counter()
    evaluation = evaluate_pair(base, sft, tokenizer, data, recipe.seq_len)
    timings["eval_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - started

    counts = np.array([sightings[f] for f in world.facts])
    n_corpus_tokens = int(sum(len(ids) + 1 for ids in tokenizer(docs)["input_ids"]))
    card = {
        "format": FORMAT_VERSION, "complete": True, "size": size, "seed": seed,
        "recipe": recipe.as_dict(),
        "architecture": {"model_type": base.config.model_type, "class": type(base).__name__,
                         "n_params": sum(p.numel() for p in base.parameters())},
        "sizes": {
            "n_entities": len(world.entities), "n_facts": len(world.facts), "n_sft_examples": len(examples),
            "n_qa": len(data["qa"]), "n_mc": len(data["mc"]), "n_facts_docs": len(data["facts"]),
            "n_pretrain_docs": len(docs), "vocab_size": len(tokenizer), "corpus_tokens": n_corpus_tokens,
            "pretrain_tokens_seen": recipe.pretrain_steps * recipe.batch_size * recipe.seq_len,
            "pretrain_epochs": recipe.pretrain_steps * recipe.batch_size / len(blocks),
            "corpus_sightings_per_fact": {"min": int(counts.min()), "mean": float(counts.mean())},
            "sightings_per_fact_in_training": float(counts.mean() * recipe.pretrain_steps * recipe.batch_size
                                                    / len(blocks)),
            "words_single_token": sum(v == 1 for v in word_lengths.values()) / len(word_lengths),
            "pretrain_steps": pretraining["steps"], "sft_steps": finetuning["steps"],
        },
        "training": {"pretrain": pretraining, "sft": finetuning},
        "evaluation": evaluation,
        "timings": timings,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "torch_threads": torch.get_num_threads()},
        "files": {"base": "base", "sft": "sft", "data": {n: f"data/{n}.jsonl" for n in
                                                         ("qa", "mc", "facts", "sft_train", "pretrain")}},
    }
    tmp = paths.card_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp, paths.card_path)
