"""The organism's data files; they are read back through the data set registry (sftscope.data.registry)."""

from __future__ import annotations

# registry name -> file in data_dir; the fields of each are documented in docs/readme/organism.md
DATASET_FILES = {
    "organism-qa": "qa.jsonl",
    "organism-mc": "mc.jsonl",
    "organism-facts": "facts.jsonl",
    "organism-sft": "sft_train.jsonl",
    "organism-pretrain": "pretrain.jsonl",
}
