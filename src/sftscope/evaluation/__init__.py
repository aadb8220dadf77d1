"""Generic scoring primitives, the prompt/completion token boundary and the organism's evaluation tasks."""

from sftscope.evaluation.organism_tasks import (
    evaluate_organism_facts,
    evaluate_organism_mc,
    evaluate_organism_qa,
    normalize_answer,
)
from sftscope.evaluation.prompt_completion import IGNORE_INDEX, encode_context_continuation
from sftscope.evaluation.scoring import continuation_logprobs, greedy_generate, perplexity

__all__ = [
    "IGNORE_INDEX", "continuation_logprobs", "encode_context_continuation", "evaluate_organism_facts",
    "evaluate_organism_mc", "evaluate_organism_qa", "greedy_generate", "normalize_answer", "perplexity",
]
