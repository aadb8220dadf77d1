"""Score the organism's Base and SFT models on its own tasks (the numbers that go into card.json)."""

from __future__ import annotations

import torch

from sftscope.evaluation.organism_tasks import evaluate_organism_facts, evaluate_organism_mc, evaluate_organism_qa


@torch.no_grad()
def evaluate_model(model, tokenizer, data: dict[str, list[dict]], max_length: int) -> dict:
    """organism-qa, organism-mc (all / held-out facts), organism-facts and exact match on the SFT training set."""
    train_as_qa = [{"prompt": r["prompt"], "answer": r["completion"], "kind": r["kind"]} for r in data["sft_train"]]
    return {
        "organism-qa": evaluate_organism_qa(model, tokenizer, data["qa"]),
        "organism-mc": evaluate_organism_mc(model, tokenizer, data["mc"]),
        "organism-mc-heldout": evaluate_organism_mc(model, tokenizer, [r for r in data["mc"] if r["heldout"]]),
        "organism-facts": evaluate_organism_facts(model, tokenizer, data["facts"], max_length=max_length),
        "sft-train-qa": evaluate_organism_qa(model, tokenizer, train_as_qa),
    }


def evaluate_pair(base, sft, tokenizer, data: dict[str, list[dict]], max_length: int) -> dict:
    """{'base': ..., 'sft': ...} results of evaluate_model for both sides."""
    return {"base": evaluate_model(base, tokenizer, data, max_length),
            "sft": evaluate_model(sft, tokenizer, data, max_length)}
