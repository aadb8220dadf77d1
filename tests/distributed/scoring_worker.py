"""Run by test_launch.py in one process or under torchrun: the scoring primitives on a tiny random Llama, their
outputs written by rank 0 (generations, continuation log-likelihoods, perplexity)."""

from __future__ import annotations

import sys

import torch


def main(out: str) -> None:
    from sftscope import distributed
    from sftscope.evaluation.scoring import continuation_logprobs, greedy_generate, perplexity
    from tests.evaluation.scoring_fixtures import tiny_llama, tiny_tokenizer

    torch.set_num_threads(1)
    tok = tiny_tokenizer()
    model = tiny_llama(tok)
    texts = [f"the cat number {i} sat on the mat and " + "the dog " * (i % 5) for i in range(11)]
    payload = {
        "generations": greedy_generate(model, tok, texts, max_new_tokens=6, stop=["\n"], batch_size=2),
        "logprobs": continuation_logprobs(model, tok, texts, [" the mat."] * len(texts), batch_size=3),
        "perplexity": perplexity(model, tok, texts * 2, max_length=8, batch_size=3),
        "world": distributed.world_size(),
    }
    if distributed.is_main():
        torch.save(payload, out)
    distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
