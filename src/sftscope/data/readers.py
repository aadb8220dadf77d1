"""Readers for local files: the ../shared/data layout of each named data set, and any user file."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator

import pandas as pd

from sftscope.errors import SftscopeError


def read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SftscopeError(f"{path}:{line_no} is not valid JSON ({exc.msg})") from exc


def read_csv(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8", newline="") as f:  # quoted fields hold newlines: a real CSV parser
        yield from csv.DictReader(f)


def read_text_lines(path: Path) -> Iterator[dict]:
    """One record per non-empty line (CRLF tolerated)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line.strip():
                yield {"text": line}


def read_wikitext(path: Path) -> Iterator[dict]:
    """Paragraphs of a WikiText file; section headings (' = Title = ') are not samples."""
    for rec in read_text_lines(path):
        stripped = rec["text"].strip()
        if not (stripped.startswith("=") and stripped.endswith("=")):
            yield {"text": stripped}


def read_toxigen_prompts(folder: Path) -> Iterator[dict]:
    """ToxiGen prompt files: hate_<group>_1k.txt / neutral_<group>_1k.txt, one prompt per line with literal
    backslash-n separators; label and target group come from the file name."""
    files = sorted(folder.glob("*_1k.txt"))
    if not files:
        raise SftscopeError(f"no ToxiGen prompt files (*_1k.txt) in {folder}")
    for file in files:
        label, group = file.stem.removesuffix("_1k").split("_", 1)
        for i, rec in enumerate(read_text_lines(file)):
            yield {"id": f"{file.stem}:{i}", "text": rec["text"].replace("\\n", "\n"), "label": label,
                   "target_group": group}


def read_user_file(path: Path) -> Iterator[dict]:
    """Any jsonl / json / csv / tsv / parquet / txt file as records."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from read_jsonl(path)
    elif suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        yield from (data if isinstance(data, list) else data.get("data", []))
    elif suffix in (".csv", ".tsv"):
        yield from pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",").to_dict("records")
    elif suffix == ".parquet":
        yield from pd.read_parquet(path).to_dict("records")
    elif suffix in (".txt", ".raw", ".md"):
        yield from read_text_lines(path)
    else:
        raise SftscopeError(f"cannot read {path}: use .jsonl, .json, .csv, .tsv, .parquet or .txt")
