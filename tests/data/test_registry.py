import json

import pytest

from sftscope.data.prepare import prepare_dataset, render_for_side
from sftscope.data.registry import DATASETS, get_dataset, load_records, load_user_file, sample_records
from sftscope.errors import SftscopeError, UnknownNameError
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data")


@pytest.mark.parametrize("name", sorted(n for n in DATASETS if not n.startswith("organism-")))
def test_every_named_dataset_loads_locally_with_stable_unique_ids(name):
    records = load_records(name, SHARED_DATA)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) > 50
    assert all(get_dataset(name).render(r).strip() for r in records[:20])
    assert [r["id"] for r in load_records(name, SHARED_DATA)][:10] == ids[:10]


def test_authors_templates():
    gsm = load_records("gsm8k", SHARED_DATA)[0]
    text = get_dataset("gsm8k").render(gsm)
    assert text.startswith("Question: Janet") and "\nAnswer: " in text and text.rstrip().endswith("#### 18")
    mmlu = load_records("mmlu", SHARED_DATA)[0]
    assert get_dataset("mmlu").render(mmlu).endswith("\nA) 0\nB) 4\nC) 2\nD) 6\nAnswer: B")
    he = load_records("humaneval", SHARED_DATA)[0]
    assert get_dataset("humaneval").render(he) == he["prompt"] + he["canonical_solution"]


def test_toxigen_labels_from_file_names_and_wikitext_drops_headings():
    tox = load_records("toxigen", SHARED_DATA)
    assert {r["label"] for r in tox} == {"hate", "neutral"} and len(tox) == 31000
    assert "\\n" not in tox[0]["text"] and "\n" in tox[0]["text"]
    texts = [r["text"] for r in load_records("wikitext", SHARED_DATA)]
    assert not any(t.startswith("=") and t.endswith("=") for t in texts) and len(texts) > 2000


def test_splits_and_bad_split():
    assert len(load_records("gsm8k", SHARED_DATA, "train")) == 7473
    assert len(load_records("mmlu", SHARED_DATA, "dev")) == 285
    with pytest.raises(SftscopeError, match="no split"):
        load_records("gsm8k", SHARED_DATA, "validation")


def test_unknown_dataset_and_missing_dir():
    with pytest.raises(UnknownNameError, match="known: gsm8k"):
        get_dataset("gsm9k")
    with pytest.raises(SftscopeError, match="does not exist"):
        load_records("gsm8k", "/nonexistent/dir")


def test_seeded_sampling_is_deterministic_and_prefix_consistent():
    records = [{"id": str(i)} for i in range(100)]
    a, b = sample_records(records, 30, seed=3), sample_records(records, 30, seed=3)
    assert a == b and sample_records(records, 10, seed=3) == a[:10]
    assert sample_records(records, 30, seed=4) != a


def test_prepare_token_samples_are_subset_of_one_draw():
    p = prepare_dataset("gsm8k", SHARED_DATA, seed=0, token_samples=5, pooled_samples=20)
    assert len(p.records) == 20 and p.token_ids <= p.pooled_ids and len(p.token_ids) == 5
    q = prepare_dataset("gsm8k", SHARED_DATA, seed=0, token_samples=30, pooled_samples=10)
    assert len(q.records) == 30 and q.pooled_ids <= q.token_ids


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet", ".txt"])
def test_user_files(tmp_path, suffix):
    import pandas as pd
    rows = [{"body": f"sample number {i}", "x": i} for i in range(5)]
    path = tmp_path / f"mine{suffix}"
    if suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows))
    elif suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    elif suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path)
    else:
        path.write_text("\n".join(r["body"] for r in rows))
    field = "text" if suffix == ".txt" else "body"
    spec, records = load_user_file(path, field)
    assert [spec.render(r) for r in records] == [r["body"] for r in rows]
    if suffix != ".txt":
        with pytest.raises(SftscopeError, match="no field 'text'"):
            load_user_file(path, "text")


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text(json.dumps({"text": "   "}) + "\n")
    with pytest.raises(SftscopeError, match="no non-empty text"):
        prepare_dataset(str(path), None, 0, 5, 5)


def test_chat_template_renders_fine_tuned_side():
    from tests.conftest import make_tokenizer
    tok = make_tokenizer()
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    rec = load_records("gsm8k", SHARED_DATA)[0]
    spec = get_dataset("gsm8k")
    chat = render_for_side(spec, rec, tok, chat_template=True)
    assert chat.startswith("<user>Question:") and "<assistant>" in chat and chat.endswith("#### 18")
    assert render_for_side(spec, rec, tok, chat_template=False) == spec.render(rec)


def test_organism_datasets_resolve_from_a_data_dir_or_the_organism_build(tmp_path, monkeypatch):
    folder = tmp_path / "org" / "data"
    folder.mkdir(parents=True)
    (folder / "qa.jsonl").write_text(json.dumps({"id": "qa-0", "prompt": "Q?", "answer": "A", "text": "Q? A"}))
    monkeypatch.setenv("SFTSCOPE_ORGANISM", str(tmp_path / "org"))
    assert load_records("organism-qa", SHARED_DATA)[0]["id"] == "qa-0"  # not under SHARED_DATA: the build's
    assert load_records("organism-qa", folder)[0]["text"] == "Q? A"
    with pytest.raises(SftscopeError, match="sftscope organism build"):
        load_records("organism-mc")


def test_organism_sets_ignore_a_stale_data_dir_variable(tmp_path, monkeypatch):
    folder = tmp_path / "org" / "data"
    folder.mkdir(parents=True)
    (folder / "mc.jsonl").write_text(json.dumps({"id": "mc-0", "text": "x"}))
    monkeypatch.setenv("SFTSCOPE_ORGANISM", str(tmp_path / "org"))
    monkeypatch.setenv("SFTSCOPE_DATA_DIR", str(tmp_path / "nowhere"))  # for the named copies only
    assert load_records("organism-mc")[0]["id"] == "mc-0"
