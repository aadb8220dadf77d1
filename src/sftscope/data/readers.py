"""Readers for local files: the ../shared/data layout of each named data set, and any user file."""

from __future__ import annotations

import csv
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd

from sftscope.errors import SftscopeError, describe, first_line


@contextmanager
def reading(path: Path):
    """Turn what can go wrong while reading `path` (not UTF-8, unparseable, a folder, no permission) into one
    SftscopeError naming the file."""
    try:
        yield
    except SftscopeError:
        raise
    except UnicodeDecodeError as exc:
        raise SftscopeError(f"{path} is not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at byte "
                            f"{exc.start}); convert it to UTF-8") from exc
    except (ValueError, OSError) as exc:  # pandas / pyarrow / json parse errors subclass ValueError
        detail = describe(exc) if isinstance(exc, OSError) else first_line(exc)
        raise SftscopeError(f"cannot read {path}: {detail}") from exc
    except Exception as exc:  # noqa: BLE001  pyarrow and pandas raise their own types
        raise SftscopeError(f"cannot read {path}: {describe(exc)}") from exc


def read_jsonl(path: Path) -> Iterator[dict]:
    """One record per non-empty line of a JSON Lines file; every line must be a JSON object."""
    with reading(path), open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SftscopeError(f"{path}:{line_no} is not valid JSON ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise SftscopeError(f"{path}:{line_no} is a JSON {type(record).__name__}, not an object with "
                                        "named fields")
                yield record


def read_csv(path: Path) -> Iterator[dict]:
    """Rows of a CSV file with a header line (quoted fields may hold newlines)."""
    with reading(path), open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise SftscopeError(f"{path} is empty: a CSV file needs a header line and rows")
        for row_no, row in enumerate(reader, 2):
            if None in row:
                raise SftscopeError(f"{path}:{row_no} has more fields than the header")
            yield row


def read_text_lines(path: Path) -> Iterator[dict]:
    """One record per non-empty line (CRLF tolerated)."""
    with reading(path), open(path, encoding="utf-8") as f:
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
    if path.is_dir():
        raise SftscopeError(f"{path} is a folder; give a data file (.jsonl, .json, .csv, .tsv, .parquet or .txt)")
    if suffix in (".jsonl", ".ndjson"):
        yield from read_jsonl(path)
    elif suffix == ".json":
        with reading(path):
            data = json.loads(path.read_text(encoding="utf-8"))
        records = data if isinstance(data, list) else data.get("data") if isinstance(data, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise SftscopeError(f"{path} must hold a JSON list of objects (or {{\"data\": [...]}})")
        yield from records
    elif suffix in (".csv", ".tsv"):
        with reading(path):
            try:
                frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", encoding="utf-8")
            except pd.errors.EmptyDataError:
                raise SftscopeError(f"{path} is empty: a {suffix[1:].upper()} file needs a header line and rows") \
                    from None
        yield from frame.to_dict("records")
    elif suffix == ".parquet":
        with reading(path):
            frame = pd.read_parquet(path)
        yield from frame.to_dict("records")
    elif suffix in (".txt", ".raw", ".md"):
        yield from read_text_lines(path)
    else:
        raise SftscopeError(f"cannot read {path}: use .jsonl, .json, .csv, .tsv, .parquet or .txt")
