"""Run by tests/distributed/test_training.py, in one process or under torchrun: one optimizer step on the same
two records, written to a file by rank 0 (loss, per-parameter gradients of the step, trained LoRA weights)."""

from __future__ import annotations

import sys

import torch


def main(out: str, batch_size: int, grad_accum: int) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from sftscope import distributed
    from sftscope.tuning import train as train_mod
    from sftscope.tuning.config import TrainConfig
    from tests.conftest import make_tokenizer

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    tok = make_tokenizer()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128))
    # two records whose completions differ in length: equal-weight micro-batches would bias toward the short one
    records = [{"prompt": "Question: what is 2 + 3 ?\nAnswer:", "completion": " 5"},
               {"prompt": "Question: a b c ?\nAnswer:", "completion": " the answer is a long one of many words"}]
    config = TrainConfig(blocks="all", rank=4, lr=1e-2, max_steps=1, batch_size=batch_size, grad_accum=grad_accum,
                         max_length=64, warmup_ratio=0.0, lr_scheduler="constant", max_grad_norm=None, seed=0)
    grads: dict[str, torch.Tensor] = {}
    real_step = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):  # the step's gradient, read just before the optimizer uses it
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    grads[id(p)] = p.grad.detach().clone()
        return real_step(self, *args, **kwargs)
    torch.optim.AdamW.step = recording_step
    result = train_mod.train_cell(model, tok, records, config, progress=False)
    named = {n: p for n, p in result.model.named_parameters() if p.requires_grad}
    payload = {"loss": result.loss_curve[0],
               "grads": {n: grads[id(p)] for n, p in named.items()},
               "params": {n: p.detach().clone() for n, p in named.items()},
               "world": distributed.world_size()}
    if distributed.is_main():
        torch.save(payload, out)
    distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
