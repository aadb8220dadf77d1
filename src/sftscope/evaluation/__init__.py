"""Generic scoring primitives and the organism's evaluation tasks (text -> ids: sftscope.tokenization)."""

from sftscope.evaluation.organism_tasks import (
    evaluate_organism_facts,
    evaluate_organism_mc,
    evaluate_organism_qa,
    normalize_answer,
)
from sftscope.evaluation.scoring import continuation_logprobs, greedy_generate, perplexity
from sftscope.tokenization import IGNORE_INDEX, encode_pair

__all__ = [
    "IGNORE_INDEX", "continuation_logprobs", "encode_pair", "evaluate_organism_facts",
    "evaluate_organism_mc", "evaluate_organism_qa", "greedy_generate", "normalize_answer", "perplexity",
]
