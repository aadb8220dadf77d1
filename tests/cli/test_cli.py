import subprocess
import sys
from pathlib import Path

import pytest

from sftscope.cli import main
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.integration  # runs the CLI end to end


def _run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("what,expect", [("datasets", "gsm8k"), ("architectures", "olmo2"), ("metrics", "cka"),
                                         ("tasks", "mmlu")])
def test_ls(capsys, what, expect):
    rc, out, _ = _run(capsys, "ls", what)
    assert rc == 0 and expect in out


def test_console_script_and_module_entry_points():
    script = Path(sys.executable).parent / "sftscope"
    for cmd in ([str(script), "--help"], [sys.executable, "-m", "sftscope", "--help"]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "analyze" in done.stdout


def _analyze(base, sft, out, *extra):
    return ["analyze", "--base", str(base), "--sft", str(sft), "--data-dir", str(SHARED_DATA), "--token-samples", "4",
            "--pooled-samples", "8", "--max-length", "32", "--out", str(out), "--no-plots", *extra]


def _assert_one_line_error(rc, err, needle):
    assert rc == 2, err
    lines = [line for line in err.strip().splitlines() if line.startswith("sftscope: error:")]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def test_bad_inputs_exit_2_with_one_line(capsys, tmp_path, tiny_pair_dir):
    base, sft = tiny_pair_dir("llama")
    qwen, _ = tiny_pair_dir("qwen2")
    cases = [
        (_analyze(tmp_path / "missing", sft, tmp_path / "o1"), "does not exist"),
        (_analyze(base, qwen, tmp_path / "o2"), "cannot be compared layer by layer"),
        (_analyze(base, sft, tmp_path / "o3", "--data", "gsm9k"), "unknown data set 'gsm9k'"),
        (_analyze(base, sft, tmp_path / "o4", "--data", str(tmp_path / "nofile.jsonl")), "does not exist"),
        (["analyze", "--base", str(base), "--data", "gsm8k", "--out", str(tmp_path / "o5")], "--sft"),
    ]
    for argv, needle in cases:
        rc, _, err = _run(capsys, *argv)
        _assert_one_line_error(rc, err, needle)


def test_missing_text_field_and_too_short(capsys, tmp_path, tiny_pair_dir):
    base, sft = tiny_pair_dir("llama")
    data = tmp_path / "d.jsonl"
    data.write_text('{"body": "A"}\n{"body": "B"}\n')
    rc, _, err = _run(capsys, *_analyze(base, sft, tmp_path / "o", "--data", str(data)))
    _assert_one_line_error(rc, err, "no field 'text'")
    too_short = [*_analyze(base, sft, tmp_path / "o", "--data", str(data), "--text-field", "body"), "--max-length", "1"]
    rc, _, err = _run(capsys, *too_short)
    _assert_one_line_error(rc, err, "shorter than 2 tokens")


def test_config_change_refused_and_results_kept(capsys, tmp_path, tiny_pair_dir):
    base, sft = tiny_pair_dir("llama")
    out = tmp_path / "run"
    assert _run(capsys, *_analyze(base, sft, out, "--data", "gsm8k"))[0] == 0
    before = (out / "metrics.parquet").read_bytes()
    rc, _, err = _run(capsys, *_analyze(base, sft, out, "--data", "gsm8k", "--seed", "1"))
    _assert_one_line_error(rc, err, "different config")
    assert (out / "metrics.parquet").read_bytes() == before


def test_debug_shows_traceback(tmp_path):
    from sftscope.errors import SftscopeError
    with pytest.raises(SftscopeError):
        main(["--debug", *_analyze(tmp_path / "missing", tmp_path / "x", tmp_path / "o")])


def test_evaluate_command_and_unknown_task(capsys, tmp_path, tiny_pair_dir):
    base, _ = tiny_pair_dir("llama")
    rc, out, _ = _run(capsys, "evaluate", "--model", f"base={base}", "--tasks", "mmlu", "--limit", "4",
                      "--data-dir", str(SHARED_DATA), "--out", str(tmp_path / "ev"))
    assert rc == 0 and "acc_macro" in out
    rc, _, err = _run(capsys, "evaluate", "--model", str(base), "--tasks", "gsm9k", "--out", str(tmp_path / "e2"))
    _assert_one_line_error(rc, err, "unknown task 'gsm9k'")
