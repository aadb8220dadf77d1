"""Named data sets: Hugging Face id/config/split AND a local layout (../shared/data), templates, sampling."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from sftscope.data import readers, templates
from sftscope.errors import SftscopeError, UnknownNameError


@dataclass(frozen=True)
class DatasetSpec:
    """A named data set. `local` is relative to the data dir; `from_hub` maps a hub record to the local schema."""

    name: str
    description: str
    hf_id: str | None
    hf_config: str | None
    hf_split: str
    local: dict[str, str]  # split -> path relative to the data dir
    read_local: Callable[[Path], Iterable[dict]]
    render: Callable[[dict], str]
    split: Callable[[dict], tuple[str, str]] | None = None  # (prompt, completion): chat template, tuning
    from_hub: Callable[[dict], dict] = dict
    id_key: str | None = None
    task: str | None = None
    default_root: Callable[[], Path] | None = None  # where the files live when --data-dir lacks them


def _text(rec: dict) -> str:
    return rec["text"]


def _hub_mmlu(rec: dict) -> dict:
    return {"subject": rec.get("subject", ""), "question": rec["question"],
            **{f"choice{i}": c for i, c in enumerate(rec["choices"])}, "answer": rec["answer"]}


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    DATASETS[spec.name] = spec
    return spec


for _spec in [
    DatasetSpec("gsm8k", "grade-school math word problems with worked solutions ending in '#### N'",
                "openai/gsm8k", "main", "test", {"test": "gsm8k/test.jsonl", "train": "gsm8k/train.jsonl"}, readers.read_jsonl,
                templates.joined(templates.gsm8k_split), templates.gsm8k_split, task="gsm8k"),
    DatasetSpec("mmlu", "57-subject multiple choice; 'Question: ..\\nA) ..\\nAnswer: X'", "cais/mmlu", "all", "test",
                {"test": "mmlu/test.csv", "dev": "mmlu/dev.csv"}, readers.read_csv, templates.joined(templates.mmlu_split), templates.mmlu_split,
                from_hub=_hub_mmlu, task="mmlu"),
    DatasetSpec("wikitext", "WikiText-2 raw test paragraphs (headings dropped)", "Salesforce/wikitext",
                "wikitext-2-raw-v1", "test", {"test": "wikitext/wikitext-2-raw/wiki.test.raw"}, readers.read_wikitext, _text,
                from_hub=lambda r: {"text": r["text"].strip()}, task="perplexity"),
    DatasetSpec("ifeval", "instruction-following prompts", "google/IFEval", None, "train", {"train": "ifeval/input_data.jsonl"},
                readers.read_jsonl, lambda r: r["prompt"], id_key="key", task="perplexity"),
    DatasetSpec("humaneval", "Python function prompts with their canonical solutions", "openai/openai_humaneval",
                None, "test", {"test": "humaneval/HumanEval.jsonl"}, readers.read_jsonl,
                templates.joined(templates.humaneval_split), templates.humaneval_split, id_key="task_id"),
    DatasetSpec("mt_bench", "multi-turn chat prompts (both user turns)", "HuggingFaceH4/mt_bench_prompts", None,
                "train", {"train": "mt_bench/question.jsonl"}, readers.read_jsonl, templates.mt_bench_text,
                from_hub=lambda r: {"question_id": r.get("prompt_id"), "category": r.get("category"),
                                    "turns": list(r["prompt"])},
                id_key="question_id", task="perplexity"),
    DatasetSpec("toxigen", "ToxiGen hate/neutral statement lists (label from the source)", "toxigen/toxigen-data",
                "annotated", "test", {"test": "toxigen/prompts"}, readers.read_toxigen_prompts, _text,
                from_hub=lambda r: {"text": r["text"], "label": "hate" if r.get("toxicity_human", 0) > 2.5
                                    else "neutral", "target_group": r.get("target_group", "")},
                id_key="id", task="toxigen"),
]:
    register_dataset(_spec)


def organism_data_dir() -> Path:
    """$SFTSCOPE_ORGANISM/data if set, else the default cached organism build (sftscope organism build)."""
    if os.environ.get("SFTSCOPE_ORGANISM"):
        return Path(os.environ["SFTSCOPE_ORGANISM"]).expanduser() / "data"
    from sftscope.organism import default_cache_dir
    from sftscope.organism.build import FORMAT_VERSION
    return default_cache_dir() / f"{FORMAT_VERSION}-default-seed0" / "data"


def _organism_qa_split(rec: dict) -> tuple[str, str]:
    return rec["prompt"], " " + rec["answer"]


def _organism_sft_split(rec: dict) -> tuple[str, str]:
    return rec["prompt"], rec["completion"]


for _name, _split, _file, _desc, _task, _pc in [
    ("organism-qa", "test", "qa.jsonl", "organism: held-out instruction questions (prompt + answer); analog of "
     "GSM8K", "organism-qa", _organism_qa_split),
    ("organism-mc", "test", "mc.jsonl", "organism: 4-way multiple choice over facts; analog of MMLU", "organism-mc",
     None),
    ("organism-facts", "test", "facts.jsonl", "organism: held-out pretraining-style text; analog of WikiText",
     "organism-facts", None),
    ("organism-sft", "train", "sft_train.jsonl", "organism: the SFT training pairs (prompt + completion)", None,
     _organism_sft_split),
]:
    register_dataset(DatasetSpec(_name, _desc, None, None, _split, {_split: _file}, readers.read_jsonl,
                                 templates.joined(_pc) if _name == "organism-sft" else _text, split=_pc,
                                 id_key="id", task=_task, default_root=organism_data_dir))


def get_dataset(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise UnknownNameError("data set", name, list(DATASETS),
                               "or give a file path (.jsonl/.csv/.parquet/.txt) with --text-field")
    return DATASETS[name]


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """--data-dir, else $SFTSCOPE_DATA_DIR, else None (the hub)."""
    chosen = data_dir or os.environ.get("SFTSCOPE_DATA_DIR")
    if not chosen:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise SftscopeError(f"data directory {path} does not exist (from --data-dir or SFTSCOPE_DATA_DIR)")
    return path


def _with_ids(records: Iterable[dict], prefix: str, id_key: str | None) -> list[dict]:
    out = []
    for i, rec in enumerate(records):
        rec = dict(rec)
        rec["id"] = f"{prefix}:{rec[id_key]}" if id_key and id_key in rec else f"{prefix}:{i}"
        out.append(rec)
    return out


def _load_from_hub(spec: DatasetSpec, split: str) -> list[dict]:
    try:
        import datasets  # optional: only needed when no local copy is given
    except ImportError as exc:
        raise SftscopeError(f"data set {spec.name!r} has no local copy (pass --data-dir) and the 'datasets' "
                            "package is missing for the hub: pip install 'sftscope[hub]'") from exc
    try:
        ds = datasets.load_dataset(spec.hf_id, spec.hf_config, split=split)
    except Exception as exc:  # hub errors come in many types (connection, gated, missing config)
        raise SftscopeError(f"cannot load {spec.name!r} from the hub ({spec.hf_id}, {spec.hf_config}, {split}): "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. Offline? Pass "
                            "--data-dir (or SFTSCOPE_DATA_DIR) pointing at local copies") from exc
    return [spec.from_hub(r) for r in ds]


def _organism_root(spec: DatasetSpec, data_dir: str | Path | None, local: str) -> Path:
    """data_dir when it holds the file, else the organism build (SFTSCOPE_DATA_DIR is for the named copies)."""
    if data_dir is not None and (Path(data_dir).expanduser() / local).is_file():
        return Path(data_dir).expanduser()
    root = spec.default_root()
    if not (root / local).exists():
        raise SftscopeError(f"{spec.name!r} needs the built-in organism: run `sftscope organism build` (or "
                            f"`sftscope demo`), or point SFTSCOPE_ORGANISM at a build ({root} has none)")
    return root


def load_records(name: str, data_dir: str | Path | None = None, split: str | None = None) -> list[dict]:
    """All records of a named data set with stable ids: local copy under data_dir if present, else the hub."""
    spec = get_dataset(name)
    split = split or spec.hf_split
    local = spec.local.get(split)
    if spec.default_root is not None:  # the organism's sets: their own ids, no hub copy
        if local is None:
            raise SftscopeError(f"data set {name!r} has no split {split!r}; splits: {', '.join(spec.local)}")
        records = spec.read_local(_organism_root(spec, data_dir, local) / local)
        return [r if "id" in r else {**r, "id": f"{name}:{i}"} for i, r in enumerate(records)]
    root = resolve_data_dir(data_dir)
    if local is None and root is not None:
        raise SftscopeError(f"data set {name!r} has no split {split!r} locally; splits: {', '.join(spec.local)}")
    if root is not None and (root / local).exists():
        records = list(spec.read_local(root / local))
    elif root is not None and spec.hf_id is None:
        raise SftscopeError(f"data set {name!r} expects {root / local}, which does not exist")
    else:
        records = _load_from_hub(spec, split)
    return _with_ids(records, name, spec.id_key)


def load_user_file(path: str | Path, text_field: str = "text") -> tuple[DatasetSpec, list[dict]]:
    """A user's own file as an ad-hoc data set named after the file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise SftscopeError(f"data file {path} does not exist")
    records = _with_ids(readers.read_user_file(path), path.stem, None)
    if not records:
        raise SftscopeError(f"data file {path} holds no records")
    for number, record in enumerate(records, 1):  # every record, not just the first: fail before any model loads
        if text_field not in record:
            raise SftscopeError(f"{path}: record {number} has no field {text_field!r} (fields: "
                                f"{', '.join(map(str, record))}); choose one with --text-field")
        value = record[text_field]
        if not isinstance(value, str) and not (isinstance(value, (int, float)) and value == value):
            raise SftscopeError(f"{path}: record {number} has {type(value).__name__} {value!r} in field "
                                f"{text_field!r}, not text")
    spec = DatasetSpec(path.stem, f"user file {path}", None, None, "file", {"file": str(path)}, readers.read_user_file,
                       lambda r: str(r[text_field]))
    return spec, records


def sample_records(records: list[dict], n: int | None, seed: int) -> list[dict]:
    """n records drawn without replacement by a seeded permutation; a prefix of a larger draw (same seed)."""
    if n is None or n >= len(records):
        n = len(records)
    order = np.random.default_rng(seed).permutation(len(records))[:n]
    return [records[i] for i in order]
