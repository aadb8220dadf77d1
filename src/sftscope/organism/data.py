"""Reading the organism's jsonl data sets back (for the data set and task registries)."""

from __future__ import annotations

import json
from pathlib import Path

# registry name -> file in data_dir; the fields of each are documented in docs/readme/organism.md
DATASET_FILES = {
    "organism-qa": "qa.jsonl",
    "organism-mc": "mc.jsonl",
    "organism-facts": "facts.jsonl",
    "organism-sft": "sft_train.jsonl",
    "organism-pretrain": "pretrain.jsonl",
}


def load_records(data_dir: Path, name: str) -> list[dict]:
    """All records of one organism data set (by registry name or file name), in file order."""
    filename = DATASET_FILES.get(name, name)
    with (Path(data_dir) / filename).open() as handle:
        return [json.loads(line) for line in handle if line.strip()]
