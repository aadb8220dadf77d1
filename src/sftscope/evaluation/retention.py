"""Retention perplexity on any text set, and the organism's three tasks as registry entries.

Perplexity is token-weighted over the whole set: exp(sum of token NLLs / number of predicted tokens), each
text scored on its own (BOS prepended, windows of max_length tokens), so a long text weighs more than a
short one. Registered as ppl:wikitext, ppl:ifeval, ppl:mt_bench; ppl:<file.jsonl|.csv|.txt> reads a user
file through its `text_field`.
"""

from __future__ import annotations

import math
from pathlib import Path

from sftscope.data.registry import DATASETS, get_dataset, load_records, load_user_file
from sftscope.errors import SftscopeError
from sftscope.evaluation.organism_tasks import evaluate_organism_facts, evaluate_organism_mc, evaluate_organism_qa
from sftscope.evaluation.scoring import perplexity
from sftscope.evaluation.tasks import TaskResult, first_n


def load_texts(dataset: str, data_dir=None, split: str | None = None, text_field: str = "text") -> list[tuple[str, str]]:
    """(id, text) pairs of a registered data set (rendered by its template) or of a user file path."""
    if dataset in DATASETS:
        render = get_dataset(dataset).render
        return [(r["id"], render(r)) for r in load_records(dataset, data_dir, split)]
    if Path(dataset).expanduser().exists():
        spec, records = load_user_file(dataset, text_field)
        return [(r["id"], spec.render(r)) for r in records]
    raise SftscopeError(f"perplexity data set {dataset!r} is neither a registered data set "
                        f"({', '.join(sorted(DATASETS))}) nor an existing file")


def run_perplexity(model, tokenizer, *, dataset: str, data_dir=None, limit: int | None = None, batch_size: int = 8,
                   seed: int = 0, max_length: int = 1024, split: str | None = None,
                   text_field: str = "text") -> TaskResult:
    """Token-weighted perplexity of the first `limit` texts: metrics perplexity, mean_nll (= log ppl), n_tokens."""
    texts = [(i, t) for i, t in first_n(load_texts(dataset, data_dir, split, text_field), limit) if t.strip()]
    if not texts:
        raise SftscopeError(f"perplexity data set {dataset!r} has no non-empty texts")
    ppl, n_tokens = perplexity(model, tokenizer, [t for _, t in texts], max_length=max_length, batch_size=batch_size)
    metrics = {"perplexity": ppl, "mean_nll": math.log(ppl), "n_tokens": float(n_tokens)}
    details = [{"id": i, "n_chars": len(t)} for i, t in texts]
    config = {"dataset": dataset, "split": split, "max_length": max_length, "limit": limit}
    return TaskResult(f"ppl:{dataset}", metrics, len(texts), details, config)


def _organism_records(dataset: str, data_dir) -> list[dict]:
    """The organism data set's records: from data_dir if it holds them, else the default organism build."""
    from sftscope.data.registry import load_records
    return load_records(dataset, data_dir)


def run_organism(model, tokenizer, *, dataset: str, data_dir=None, limit: int | None = None, batch_size: int = 8,
                 seed: int = 0, **options) -> TaskResult:
    """organism-qa / organism-mc / organism-facts on the first `limit` records of the organism's data folder."""
    records = first_n(_organism_records(dataset, data_dir), limit)
    details = [{"id": r.get("id")} for r in records]
    if dataset == "organism-qa":
        out = evaluate_organism_qa(model, tokenizer, records, batch_size=batch_size, **options)
        metrics = {"exact_match": out["exact_match"], **{f"exact_match:{k}": v for k, v in out["by_kind"].items()}}
        # the per-kind score of an item is named like its metric, so per-kind scores have items too
        details = [{**d, "kind": r.get("kind", "all"), "exact_match": float(h),
                    f"exact_match:{r.get('kind', 'all')}": float(h)} for d, r, h in zip(details, records, out["hits"])]
    elif dataset == "organism-mc":
        out = evaluate_organism_mc(model, tokenizer, records, batch_size=batch_size, **options)
        metrics = {"accuracy": out["accuracy"], "chance": out["chance"]}
        details = [{**d, "accuracy": float(h)} for d, h in zip(details, out["hits"])]
    elif dataset == "organism-facts":
        out = evaluate_organism_facts(model, tokenizer, records, batch_size=batch_size, **options)
        metrics = {"perplexity": out["perplexity"], "n_tokens": float(out["n_tokens"])}
    else:
        raise SftscopeError(f"unknown organism task {dataset!r}")
    config = {"data_dir": str(data_dir), "limit": limit, **options}
    return TaskResult(dataset, metrics, len(records), details, config)
