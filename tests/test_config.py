"""Config dataclasses are the single source of every option: the CLI, `to_argv` and config files agree with them."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from sftscope import cli
from sftscope.config import config_from_namespace
from sftscope.errors import SftscopeError
from sftscope.stages import COMMANDS, POSITIONAL, REQUIRED
from sftscope.tuning.config import DEFAULT_RETENTION, DEFAULT_TASKS, SweepConfig, TuneConfig

# The fields each config cannot do without (everything else has a default).
REQUIRED_FIELDS = {"analyze": {"base": "b", "sft": "s"}, "probe": {"base": "b", "sft": "s"},
                   "swap": {"base": "b", "sft": "s"}, "weights": {"base": "b", "sft": "s"}, "correlate": {},
                   "evaluate": {"models": ["m"], "tasks": ["mmlu"]}, "suggest": {"base": "b"}, "tune": {"base": "b"},
                   "sweep": {"base": "b"}, "demo": {}}


def _argv(values: dict) -> list[str]:
    out = []
    for key, value in values.items():
        out += [f"--{key.replace('_', '-')}", ",".join(value) if isinstance(value, list) else value]
    return out


def _out(cmd) -> list[str]:
    return ["RUN"] if cmd.out == POSITIONAL else ["--out", "RUN"]


def _parse(name: str, *argv: str):
    # a positional RUN_DIR goes first: a list option before it would take it as one more value
    positional = [a for a in argv if a == "RUN"] if COMMANDS.get(name) and COMMANDS[name].out == POSITIONAL else []
    rest = [a for a in argv if a not in positional]
    return cli.build_parser()[0].parse_args([name, *positional, *rest])


def test_every_command_is_listed():
    assert set(REQUIRED_FIELDS) == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_python_and_command_line_defaults_are_the_same(name):
    """The `--tasks` drift (gsm8k on the command line, none in Python) cannot come back: one source."""
    cmd = COMMANDS[name]
    cls = cmd.config_class()
    from_cli = config_from_namespace(cls, _parse(name, *_argv(REQUIRED_FIELDS[name]), *_out(cmd)))
    assert from_cli == cls(**REQUIRED_FIELDS[name])


def test_tune_defaults_named_once():
    cfg = TuneConfig(base="b")
    assert cfg.tasks == DEFAULT_TASKS and cfg.retention == DEFAULT_RETENTION and cfg.train == "gsm8k"
    assert SweepConfig(base="b").tasks == DEFAULT_TASKS


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_to_argv_rebuilds_the_config(name):
    cmd = COMMANDS[name]
    cls = cmd.config_class()
    changed = dict(REQUIRED_FIELDS[name])
    for f in fields(cls):  # move every integer and string option off its default where that stays valid
        if f.name in changed or not f.init:
            continue
        value = getattr(cls(**REQUIRED_FIELDS[name]), f.name)
        if isinstance(value, bool):
            changed[f.name] = not value if f.name not in ("quick",) else value
        elif isinstance(value, int) and f.name in ("seed", "batch_size", "max_length", "samples", "eval_seed"):
            changed[f.name] = value + 3
    cfg = cls(**changed)
    rebuilt = config_from_namespace(cls, _parse(name, *cfg.to_argv(), *_out(cmd)))
    assert rebuilt == cfg


def test_lists_commas_repeats_and_none():
    cfg = config_from_namespace(COMMANDS["analyze"].config_class(), _parse(
        "analyze", "--base", "b", "--sft", "s", "--data", "gsm8k,mmlu", "wikitext", "--variant", "dpo=x",
        "--variant", "rl=y", "--out", "o"))
    assert cfg.data == ["gsm8k", "mmlu", "wikitext"] and cfg.variants == ["dpo=x", "rl=y"]
    sweep = config_from_namespace(SweepConfig, _parse("sweep", "--base", "b", "--seeds", "0,1", "2",
                                                      "--controls", "none", "--retention", "none", "--out", "o"))
    assert sweep.seeds == [0, 1, 2] and sweep.controls == [] and sweep.retention == []
    tune = config_from_namespace(TuneConfig, _parse("tune", "--base", "b", "--max-grad-norm", "none", "--out", "o"))
    assert tune.max_grad_norm is None


@pytest.mark.parametrize("argv,needle", [
    (["sweep", "--base", "b", "--seeds", "0,x", "--out", "o"], "--seeds must be an integer"),
    (["tune", "--base", "b", "--tasks", "gsm9k", "--out", "o"], "unknown task 'gsm9k'"),
    (["tune", "--base", "b", "--blocks", "01200", "--out", "o"], "looks like a segment mask"),
    (["analyze", "--base", "b", "--out", "o"], "--sft"),
])
def test_bad_values_are_one_line_errors_before_any_work(capsys, argv, needle):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and err[0].startswith("sftscope: error:")


@pytest.mark.parametrize("argv,needle", [
    (["analyze", "--base", "b", "--sft", "s", "--preset", "bogus", "--out", "o"], "invalid choice: 'bogus'"),
    (["analyze", "--sft", "s", "--out", "o"], "the following arguments are required: --base"),
    (["bogus-command"], "invalid choice"),
])
def test_usage_errors_are_one_line_naming_the_help(capsys, argv, needle):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "--help" in err[0]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_file_supplies_options_and_the_command_line_wins(tmp_path, suffix):
    values = {"base": "b", "sft": "s", "data": ["mmlu", "gsm8k"], "token-samples": 7, "preset": "paper"}
    path = tmp_path / f"analyze{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(values))
    else:
        path.write_text("base: b\nsft: s\ndata: [mmlu, gsm8k]\ntoken-samples: 7\npreset: paper\n")
    cls = COMMANDS["analyze"].config_class()
    cfg = config_from_namespace(cls, cli._parse(["analyze", "--config", str(path), "--out", "o"]))
    assert (cfg.base, cfg.data, cfg.token_samples, cfg.preset) == ("b", ["mmlu", "gsm8k"], 7, "paper")
    assert cfg == cls.from_file(path)
    cfg = config_from_namespace(cls, cli._parse(["analyze", "--config", str(path), "--token-samples", "9",
                                                 "--out", "o"]))
    assert cfg.token_samples == 9


def test_config_file_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: b\nsft: s\ntoken_sampels: 3\n")
    assert cli.main(["analyze", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "unknown option(s) token_sampels" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{base: ")
    with pytest.raises(SftscopeError, match="not valid json"):
        COMMANDS["analyze"].config_class().from_file(broken)


def test_required_out_and_defaults():
    assert COMMANDS["analyze"].out == REQUIRED and COMMANDS["suggest"].out == "sftscope-runs/suggest"
    assert COMMANDS["correlate"].out == POSITIONAL and COMMANDS["demo"].out is None


def test_building_the_command_line_imports_no_torch():
    """`sftscope --help` and usage errors stay fast: the stage configs are light modules."""
    import subprocess
    import sys
    code = ("import sys; from sftscope import cli; cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'peft', 'accelerate') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_the_eigen_route_does_not_decide_results_so_a_resume_may_change_it():
    """Routes agree to ~1e-14: the run folder's identity leaves the route out (a resumed run may take another),
    while options that change numbers stay in."""
    from sftscope.analysis.config import AnalyzeConfig

    a = AnalyzeConfig(base="b", sft="s", eigen_route="host")
    b = a.replace(eigen_route="device")
    assert a.identity() == b.identity() and "eigen_route" not in a.identity()
    assert a.identity() != a.replace(token_samples=7).identity()
    assert "--eigen-route" in a.to_argv() and a.to_argv()[a.to_argv().index("--eigen-route") + 1] == "host"
