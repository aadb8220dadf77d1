"""Generic scoring primitives and the organism's evaluation tasks (text -> ids: sftscope.tokenization).

Names are re-exported lazily (importing the package loads no torch).
"""

from sftscope._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "organism_tasks": ("evaluate_organism_facts", "evaluate_organism_mc", "evaluate_organism_qa", "normalize_answer"),
    "scoring": ("continuation_logprobs", "greedy_generate", "perplexity"),
})
