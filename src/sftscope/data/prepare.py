"""Turn a data set name (or a user file) into the samples one analysis run uses, rendered per model side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sftscope.data.registry import DatasetSpec, get_dataset, load_records, load_user_file, sample_records
from sftscope.errors import SftscopeError, note


@dataclass
class PreparedData:
    """Samples drawn once per run: token-level ids are a prefix of the same seeded draw as the pooled ids."""

    spec: DatasetSpec
    records: list[dict]
    token_ids: set[str]
    pooled_ids: set[str]
    dropped_empty: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.records]


def is_file_entry(entry: str) -> bool:
    return Path(entry).suffix.lower() in (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt", ".ndjson") \
        or "/" in entry and Path(entry).expanduser().exists()


def prepare_dataset(entry: str, data_dir: str | Path | None, seed: int, token_samples: int, pooled_samples: int,
                    text_field: str = "text") -> PreparedData:
    """Load, render and sample: one seeded draw of max(token, pooled) samples, empty texts dropped and counted."""
    spec, records = load_user_file(entry, text_field) if is_file_entry(entry) else \
        (get_dataset(entry), load_records(entry, data_dir))
    non_empty = [r for r in records if spec.render(r).strip()]
    if not non_empty:
        raise SftscopeError(f"data set {spec.name!r} has no non-empty text ({len(records)} records)")
    wanted = max(token_samples, pooled_samples)
    if len(non_empty) < wanted:
        note(f"data set {spec.name!r} has {len(non_empty)} non-empty samples, fewer than the {wanted} asked for; "
             f"using {len(non_empty)}")
    drawn = sample_records(non_empty, wanted, seed)
    return PreparedData(spec, drawn, {r["id"] for r in drawn[:token_samples]},
                        {r["id"] for r in drawn[:pooled_samples]}, len(records) - len(non_empty))


def render_for_side(spec: DatasetSpec, record: dict, tokenizer=None, chat_template: bool = False) -> str:
    """The authors' plain template; with chat_template, the fine-tuned model's own chat format of the same
    prompt/answer (where the data set has that split and the tokenizer a template). The rendered string carries
    the template's markers (and its BOS, if the template writes one); `sftscope.tokenization.encode_text` turns it
    into ids without adding a second BOS."""
    from sftscope.tokenization import has_chat_template, render_chat

    if chat_template and spec.split is not None and has_chat_template(tokenizer):
        prompt, completion = spec.split(record)
        messages = [{"role": "user", "content": prompt.strip()}, {"role": "assistant", "content": completion.strip()}]
        return render_chat(tokenizer, messages)
    return spec.render(record)
