"""Every hyperparameter of an organism build, for the two sizes ('default' and the fast 'test')."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from sftscope.errors import SftscopeError


@dataclass(frozen=True)
class OrganismRecipe:
    """World, corpus, tokenizer, model and training settings; recorded verbatim in card.json."""

    # world and data
    n_entities: int = 40
    n_attributes: int = 5            # city, job, color, pet, instrument (in that order)
    with_friend: bool = True         # the best-friend relation between entities
    max_addend: int = 7              # sums a+b for 1 <= a, b <= max_addend
    heldout_fraction: float = 0.4    # share of each attribute's facts never asked in SFT (-> organism-qa)
    n_pretrain_docs: int = 24000
    n_facts_docs: int = 300          # organism-facts: held-out pretraining-style documents
    # tokenizer
    vocab_size: int = 1024
    # model (LlamaConfig)
    n_layers: int = 10
    d_model: int = 64
    n_heads: int = 4
    ffn_multiplier: int = 4
    max_position: int = 256
    # pretraining
    seq_len: int = 128
    batch_size: int = 8
    pretrain_steps: int = 2270
    pretrain_lr: float = 5e-3
    warmup_steps: int = 100
    # SFT (loss on the completion only)
    sft_epochs: int = 20
    sft_batch_size: int = 16
    sft_lr: float = 5e-4             # measured: 2e-3 overfits (held-out ppl x10), 5e-4 keeps the Base's knowledge
    sft_warmup_steps: int = 20
    # shared optimisation
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    log_every: int = 10

    def as_dict(self) -> dict:
        return asdict(self)


SIZES = {
    "default": OrganismRecipe(),
    # ~1-1.5 minutes on one busy core: 33 facts, 4 layers, 64-token blocks; still learns its facts
    "test": OrganismRecipe(n_entities=8, n_attributes=2, max_addend=3, heldout_fraction=0.5, n_pretrain_docs=3000,
                           n_facts_docs=40, vocab_size=600, n_layers=4, seq_len=64, pretrain_steps=500, warmup_steps=30,
                           sft_epochs=30, sft_batch_size=8, sft_warmup_steps=10, log_every=10),
}


def recipe_for(size: str, **overrides) -> OrganismRecipe:
    """The recipe of a named size, with optional field overrides."""
    if size not in SIZES:
        raise SftscopeError(f"unknown organism size {size!r}; use one of {', '.join(SIZES)}")
    return replace(SIZES[size], **overrides)
