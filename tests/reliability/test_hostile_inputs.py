"""Hostile inputs, as a tired researcher types them at 2 am or a cluster file system serves them.

Every case goes through `sftscope.cli.main` and must: exit with status 2, print at most 3 lines on stderr (no
traceback), name the problem, and leave what was already in the output folder exactly as it was (same files,
same bytes, same modes). The output folder of most cases holds a finished `analyze` run first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from sftscope import cli
from tests.conftest import SHARED_DATA, save_tiny

pytestmark = pytest.mark.integration  # runs the CLI on tiny models (about a second a case)


# -- fixtures ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pair(tmp_path_factory, tiny_pair_dir):
    return tiny_pair_dir("llama")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, pair):
    """A finished analyze run: the results every case must leave untouched."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert cli.main(_analyze(pair, out)) == 0
    return out


def _analyze(pair, out, *extra, data: str = "gsm8k") -> list[str]:
    base, sft = pair
    return ["analyze", "--base", str(base), "--sft", str(sft), "--data", data, "--data-dir", str(SHARED_DATA),
            "--token-samples", "4", "--pooled-samples", "8", "--max-length", "32", "--no-plots", "--out", str(out),
            *extra]


def _tune(pair, out, *extra) -> list[str]:
    return ["tune", "--base", str(pair[0]), "--train", "gsm8k", "--data-dir", str(SHARED_DATA), "--tasks", "mmlu",
            "--limit", "4", "--retention", "none", "--max-steps", "1", "--batch-size", "2", "--max-length", "64",
            "--out", str(out), *extra]


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    if not folder.exists():
        return {}
    if folder.is_file():
        return {".": (hashlib.sha256(folder.read_bytes()).hexdigest(), stat.S_IMODE(folder.stat().st_mode))}
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), stat.S_IMODE(p.stat().st_mode))
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def _jsonl(path: Path, records) -> Path:
    return _write(path, "".join(json.dumps(r) + "\n" for r in records))


def _readonly_parent(tmp: Path) -> Path | None:
    """A folder the process cannot create anything in (as root, chmod does not stop writes: /sys does)."""
    if os.geteuid() != 0:
        folder = tmp / "readonly"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    return Path("/sys") if os.path.isdir("/sys") else None


# -- the cases: (name, builder(tmp, pair, out) -> argv, words the message must hold) -----------------------------
def _model_cases():
    def no_tokenizer(tmp, pair, out):
        model = _copy_model(pair[1], tmp / "no-tok")
        for f in ("tokenizer.json", "tokenizer_config.json"):
            (model / f).unlink()
        return _analyze((pair[0], model), out)

    def no_config(tmp, pair, out):
        model = _copy_model(pair[1], tmp / "no-config")
        (model / "config.json").unlink()
        return _analyze((pair[0], model), out)

    def broken_config(tmp, pair, out):
        model = _copy_model(pair[1], tmp / "broken-config")
        (model / "config.json").write_text("{\"model_type\": ")
        return _analyze((pair[0], model), out)

    def unknown_model_type(tmp, pair, out):
        model = _copy_model(pair[1], tmp / "foo-type")
        cfg = json.loads((model / "config.json").read_text())
        (model / "config.json").write_text(json.dumps({**cfg, "model_type": "no_such_arch"}))
        return _analyze((pair[0], model), out)

    def truncated_weights(tmp, pair, out):
        model = _copy_model(pair[1], tmp / "truncated")
        weights = model / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        return _analyze((pair[0], model), out)

    def truncated_weights_for_weights_stage(tmp, pair, out):
        model = _copy_model(pair[1], tmp / "truncated2")
        weights = model / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
        return ["weights", "--base", str(pair[0]), "--sft", str(model), "--no-plots", "--out", str(out)]

    def garbage_weights(tmp, pair, out):
        model = _copy_model(pair[1], tmp / "garbage")
        (model / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header at all")
        return _analyze((pair[0], model), out)

    def broken_tokenizer(tmp, pair, out):
        model = _copy_model(pair[1], tmp / "broken-tok")
        (model / "tokenizer.json").write_text("{\"version\": ")
        return _analyze((pair[0], model), out)

    def model_is_a_file(tmp, pair, out):
        return _analyze((pair[0], pair[1] / "model.safetensors"), out)

    def other_architecture(tmp, pair, out):
        other = save_tiny("qwen2", tmp / "qwen")
        return _analyze((pair[0], other), out)

    def path_with_equals_missing(tmp, pair, out):
        return _analyze((pair[0], tmp / "lr=1e-4" / "sft"), out)

    def unknown_hub_id_offline(tmp, pair, out):
        return _analyze(("no-such-org/no-such-model", pair[1]), out)

    def max_length_beyond_positions(tmp, pair, out):
        argv = _analyze(pair, out)
        argv[argv.index("--max-length") + 1] = "4096"
        return argv

    def duplicate_names(tmp, pair, out):
        return _analyze(pair, out, "--variant", f"sft={pair[1]}")

    return [
        ("model folder without tokenizer files", no_tokenizer, "no tokenizer files"),
        ("model folder without config.json", no_config, "no config.json"),
        ("config.json not valid JSON", broken_config, "cannot load the config"),
        ("config.json of an unknown architecture", unknown_model_type, "cannot load the config"),
        ("truncated model.safetensors", truncated_weights, "is truncated"),
        ("truncated model.safetensors (weights stage)", truncated_weights_for_weights_stage, "truncated"),
        ("model.safetensors that is not safetensors", garbage_weights, "model.safetensors"),
        ("tokenizer.json not valid JSON", broken_tokenizer, "cannot load the tokenizer"),
        ("a weights file given as the model", model_is_a_file, "is a file"),
        ("variant of another architecture", other_architecture, "cannot be compared layer by layer"),
        ("missing path that holds '='", path_with_equals_missing, "neither an existing path"),
        ("unknown hub id offline", unknown_hub_id_offline, "cannot load the config"),
        ("--max-length beyond the model's positions", max_length_beyond_positions, "exceeds the 256 positions"),
        ("two models with one name", duplicate_names, "must be unique"),
    ]


def _data_cases():
    def file_case(content, name="d.jsonl", field=None):
        def build(tmp, pair, out):
            path = _write(tmp / name, content)
            return _analyze(pair, out, *(["--text-field", field] if field else []), data=str(path))
        return build

    def folder_as_file(tmp, pair, out):
        folder = tmp / "samples.jsonl"
        folder.mkdir()
        return _analyze(pair, out, data=str(folder))

    def corrupt_parquet(tmp, pair, out):
        return _analyze(pair, out, data=str(_write(tmp / "d.parquet", b"PAR1 this is not parquet PAR1")))

    def missing_field_later(tmp, pair, out):
        path = _jsonl(tmp / "d.jsonl", [{"text": "a b c"}, {"text": "d e f"}, {"body": "g h"}])
        return _analyze(pair, out, data=str(path))

    def non_text_field(tmp, pair, out):
        path = _jsonl(tmp / "d.jsonl", [{"text": "a b c"}, {"text": {"nested": 1}}])
        return _analyze(pair, out, data=str(path))

    def missing_data_dir(tmp, pair, out):
        argv = _analyze(pair, out)
        argv[argv.index("--data-dir") + 1] = str(tmp / "no-such-dir")
        return argv

    def too_short(tmp, pair, out):
        argv = _analyze(pair, out)
        argv[argv.index("--max-length") + 1] = "1"
        return argv

    return [
        ("unknown data set name", lambda tmp, pair, out: _analyze(pair, out, data="gsm9k"), "unknown data set 'gsm9k'"),
        ("missing data file", lambda tmp, pair, out: _analyze(pair, out, data=str(tmp / "no.jsonl")),
         "does not exist"),
        ("data file with non-UTF-8 bytes", file_case(b'{"text": "caf\xe9 au lait"}\n'), "not UTF-8"),
        ("empty .csv", file_case("", "d.csv"), "is empty"),
        ("header-only .csv", file_case("text\n", "d.csv"), "holds no records"),
        ("empty .jsonl", file_case(""), "holds no records"),
        ("broken .jsonl line", file_case('{"text": "a"}\n{"text": \n'), "d.jsonl:2 is not valid JSON"),
        ("a .jsonl line that is a list", file_case('["a", "b"]\n'), "not an object"),
        (".json that is not a list", file_case('"just a string"', "d.json"), "must hold a JSON list"),
        ("ragged .tsv", file_case("text\tlabel\na\t1\nb\t2\t3\t4\n", "d.tsv"), "cannot read"),
        ("a folder named like a data file", folder_as_file, "is a folder"),
        ("corrupt .parquet", corrupt_parquet, "cannot read"),
        ("text field missing in a later record", missing_field_later, "record 3 has no field 'text'"),
        ("text field holding a dict", non_text_field, "not text"),
        ("text field that no record has", file_case('{"body": "a"}\n'), "no field 'text'"),
        ("--data-dir that does not exist", missing_data_dir, "does not exist"),
        ("every sample shorter than two tokens", too_short, "shorter than 2 tokens"),
    ]


def _out_cases():
    def out_is_file(tmp, pair, out):
        target = _write(tmp / "results.txt", "my notes\n")
        return _analyze(pair, target)

    def out_under_file(tmp, pair, out):
        target = _write(tmp / "notes.txt", "my notes\n")
        return _analyze(pair, target / "run")

    def out_read_only(tmp, pair, out):
        parent = _readonly_parent(tmp)
        if parent is None:
            pytest.skip("no folder here refuses writes to this user")
        return _analyze(pair, parent / "sftscope-run")

    def different_config(tmp, pair, out):
        return _analyze(pair, out, "--seed", "5")

    def damaged_config_json(tmp, pair, out):
        (out / "config.json").write_text("{ not json")
        return _analyze(pair, out)

    return [
        ("--out is an existing file", out_is_file, "is an existing file"),
        ("--out under a file", out_under_file, "is a file"),
        ("--out in a folder that refuses writes", out_read_only, "cannot write results"),
        ("--out holding a run made differently", different_config, "different config"),
        ("--out whose config.json is damaged", damaged_config_json, "cannot be read"),
    ]


def _option_cases():
    def config_file(content):
        def build(tmp, pair, out):
            path = _write(tmp / "opts.yaml", content)
            return ["analyze", "--config", str(path), "--out", str(out)]
        return build

    def mask_too_long(tmp, pair, out):
        return _tune(pair, out, "--blocks", "000001")  # 6 segments of a 4-layer model

    def sweep_cell_out_of_range(tmp, pair, out):
        return ["sweep", "--base", str(pair[0]), "--train", "gsm8k", "--data-dir", str(SHARED_DATA), "--tasks",
                "mmlu", "--retention", "none", "--k", "2", "--masks", "10,all", "--seeds", "0", "--controls",
                "none", "--cell", "99", "--out", str(out)]

    return [
        ("a bad choice", lambda tmp, pair, out: _analyze(pair, out, "--preset", "bogus"), "invalid choice: 'bogus'"),
        ("a misspelt option", lambda tmp, pair, out: _analyze(pair, out, "--pooled-sample", "3"),
         "unrecognized arguments"),
        ("--batch-size 0", lambda tmp, pair, out: _analyze(pair, out, "--batch-size", "0"), "at least 1"),
        ("a number that is not one", lambda tmp, pair, out: _analyze(pair, out, "--token-samples", "ten"),
         "--token-samples"),
        ("a mask with a typo", lambda tmp, pair, out: _tune(pair, out, "--blocks", "01200"), "segment mask"),
        ("a mask with more segments than layers", mask_too_long, "only 4 layers"),
        ("a layer out of range", lambda tmp, pair, out: _tune(pair, out, "--blocks", "layers:9"), "out of range"),
        ("a misspelt target module", lambda tmp, pair, out: _tune(pair, out, "--target-modules", "q_prj"), "q_prj"),
        ("missing training file", lambda tmp, pair, out: _tune(pair, out, "--train", str(tmp / "no.jsonl")),
         "neither a registered data set"),
        ("unknown task", lambda tmp, pair, out: _tune(pair, out, "--tasks", "gsm9k"), "unknown task 'gsm9k'"),
        ("task whose data is not there (offline)", lambda tmp, pair, out: [
            "evaluate", "--model", str(pair[0]), "--tasks", "mmlu", "--data-dir", str(tmp), "--out", str(out)],
         "mmlu"),
        ("sweep cell out of range", sweep_cell_out_of_range, "out of range"),
        ("more segments than layers (swap)", lambda tmp, pair, out: [
            "swap", "--base", str(pair[0]), "--sft", str(pair[1]), "--data", "gsm8k", "--data-dir", str(SHARED_DATA),
            "--segments", "9", "--max-length", "32", "--out", str(out)], "cannot split 4 layers into 9 segments"),
        ("config file with a misspelt key", config_file("base: x\nsft: y\ntoken_sampels: 3\n"), "token_sampels"),
        ("config file that is not YAML", config_file("base: [x\n"), "not valid"),
        ("config file that does not exist", lambda tmp, pair, out: [
            "analyze", "--config", str(tmp / "none.yaml"), "--out", str(out)], "cannot read config file"),
        ("report of a folder without results", lambda tmp, pair, out: [
            "report", str((tmp / "empty").mkdir() or tmp / "empty")], "holds no results"),
        ("correlate without a weights table", lambda tmp, pair, out: ["correlate", str(out)], "weights"),
        ("seeds that are not numbers", lambda tmp, pair, out: [
            "sweep", "--base", str(pair[0]), "--seeds", "0,x", "--out", str(out)], "--seeds must be an integer"),
    ]


CASES = _model_cases() + _data_cases() + _out_cases() + _option_cases()


def test_at_least_forty_cases():
    assert len(CASES) >= 40 and len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("name,build,needle", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_one_clear_line_and_nothing_is_lost(name, build, needle, tmp_path, pair, finished_run,
                                                          capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    argv = build(tmp_path, pair, out)
    target = Path(argv[argv.index("--out") + 1]) if "--out" in argv else out
    watched = {p: _snapshot(p) for p in {out, target}}
    capsys.readouterr()
    rc = cli.main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert rc == 2, f"{name}: exit {rc}\n{err}"
    assert "Traceback" not in err and 1 <= len(lines) <= 3, f"{name}:\n{err}"
    assert needle in err, f"{name}: {needle!r} not in\n{err}"
    for path, before in watched.items():
        assert _snapshot(path) == before, f"{name}: {path} changed"


def test_a_failed_attempt_does_not_block_the_corrected_command(tmp_path, pair, capsys):
    """A typo found by the checks must not record its config: the corrected command into the same --out runs."""
    out = tmp_path / "cell"
    assert cli.main(_tune(pair, out, "--blocks", "000001")) == 2
    assert not (out / "config.json").exists()
    assert cli.main(_tune(pair, out, "--blocks", "0001")) == 0, capsys.readouterr().err


def test_wrong_model_path_fails_before_any_data_is_fetched(tmp_path, pair, capsys, monkeypatch):
    """The model is checked first: a data set that would come from the hub is never touched."""
    import sftscope.data.registry as registry

    def no_hub(*args, **kwargs):
        raise AssertionError("the hub must not be asked for data before the models are checked")
    monkeypatch.setattr(registry, "_load_from_hub", no_hub)
    argv = _analyze((tmp_path / "nope", pair[1]), tmp_path / "o", data="humaneval")
    argv[argv.index("--data-dir") + 1] = str(tmp_path)  # no local copy of humaneval there
    assert cli.main(argv) == 2
    assert "does not exist" in capsys.readouterr().err


def test_fewer_samples_than_asked_are_said(tmp_path, pair, capsys):
    path = _jsonl(tmp_path / "small.jsonl", [{"text": f"sample number {i} of a small file"} for i in range(24)])
    argv = _analyze(pair, tmp_path / "o", data=str(path))
    argv[argv.index("--pooled-samples") + 1] = "5000"
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "24 non-empty samples, fewer than the 5000 asked for" in err


def test_an_existing_path_with_equals_and_at_is_a_path(tmp_path, pair, capsys):
    sft = _copy_model(pair[1], tmp_path / "lr=1e-4" / "sft@v2")
    assert cli.main(_analyze((pair[0], sft), tmp_path / "o")) == 0, capsys.readouterr().err


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_run_folders_follow_the_umask(tmp_path, pair, umask):
    """Colleagues of the same group read (0o002: also write) the results; mkstemp's private 0600 is gone."""
    old = os.umask(umask)
    try:
        from sftscope.results import rundir
        rundir.file_mode.cache_clear()
        out = tmp_path / "shared"
        assert cli.main(_analyze(pair, out)) == 0
    finally:
        os.umask(old)
        rundir.file_mode.cache_clear()
    files = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".sftscope")]
    assert files and {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o666 & ~umask}
