"""Command line: parse a stage's config, call its pipeline, print where the results went.

Every stage's options are generated from its config dataclass (sftscope.config, sftscope.stages); this module
holds no option of its own besides --out, --config, --debug and the positional arguments of `ls`, `report` and
`correlate`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

from sftscope import __version__, distributed
from sftscope.config import (
    _config_parser_class,
    config_from_namespace,
    read_config_file,
)
from sftscope.errors import SftscopeError, describe, print_error
from sftscope.stages import COMMANDS, POSITIONAL, REQUIRED, Command

LS_CHOICES = ("datasets", "metrics", "tasks", "architectures")


class _Parser(argparse.ArgumentParser):
    """The top-level parser: a usage error is one line, like every stage's."""

    def error(self, message: str):
        sys.stderr.write(f"sftscope: error: {message}; see `{self.prog} --help`\n")
        sys.exit(2)


def _add_common(p: argparse.ArgumentParser, cmd: Command | None = None) -> None:
    if cmd is not None and cmd.out == POSITIONAL:
        p.add_argument("out", metavar="RUN_DIR", help=cmd.out_help)
    elif cmd is not None:
        p.add_argument("--out", required=cmd.out == REQUIRED, default=None if cmd.out == REQUIRED else cmd.out,
                       help=cmd.out_help)
    p.add_argument("--config", metavar="FILE", default=None,
                   help="read options from a YAML or JSON file (keys = option names; command-line options win)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The `sftscope` parser and each stage's sub-parser (by command name, `organism build` as 'organism')."""
    ConfigParser = _config_parser_class()
    parser = _Parser(prog="sftscope", description="Where in depth does fine-tuning change a model? "
                     "Layer-wise Base-vs-SFT analysis and Mid-Block Efficient Tuning.", allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"sftscope {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=ConfigParser)
    stage_parsers = {}

    ls = sub.add_parser("ls", help="list registered data sets, metrics, tasks or architectures")
    ls.add_argument("what", choices=LS_CHOICES)
    for cmd in COMMANDS.values():
        # allow_abbrev=False: a misspelt option (--pooled-sample) is an error, never silently another option
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help, dataclass_types=[cmd.config_class()],
                           allow_abbrev=False)
        _add_common(p, cmd)
        stage_parsers[cmd.name] = p

    rp = sub.add_parser("report", help="one self-contained HTML report of run directories (reads files only)",
                        allow_abbrev=False)
    rp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories; several are overlaid on depth")
    rp.add_argument("--out", default=None, help="HTML file (default: report.html in the first run directory)")
    rp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")

    from sftscope.organism.config import OrganismBuildConfig
    org = sub.add_parser("organism", help="the built-in tiny Base/SFT model pair")
    org_sub = org.add_subparsers(dest="organism_command", required=True, metavar="ACTION",
                                 parser_class=ConfigParser)
    ob = org_sub.add_parser("build", help="build (or reuse) the organism: world, tokenizer, Base, SFT, card",
                            dataclass_types=[OrganismBuildConfig], allow_abbrev=False)
    ob.add_argument("--out", default=None, help="folder (default: the user cache, reused when complete)")
    _add_common(ob)
    stage_parsers["organism"] = ob
    return parser, stage_parsers


def _config_file_values(argv: list[str]) -> str | None:
    """The value of --config in argv, if any (read before parsing, so the file can supply required options)."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def _parse(argv: list[str]):
    """Parse argv; a --config file's values become the stage parser's defaults (command-line options win)."""
    parser, stage_parsers = build_parser()
    config_file = _config_file_values(argv)
    name = next((a for a in argv if a in stage_parsers), None)
    if config_file is not None and name is not None:
        stage = stage_parsers[name]
        values = {str(k).replace("-", "_"): v for k, v in read_config_file(config_file).items()}
        known = {a.dest for a in stage._actions} - {"help", "config", "debug"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SftscopeError(f"{config_file}: unknown option(s) {', '.join(unknown)} for `sftscope {name}`; "
                                f"see `sftscope {name} --help`")
        for action in stage._actions:  # the file may supply what the command line would require
            if action.dest in values:
                action.required = False
        stage.set_defaults(**values)
    return parser.parse_args(argv)


def _attribute_organism():
    from sftscope.organism.config import OrganismBuildConfig
    return OrganismBuildConfig


# -- what each command prints after its pipeline ----------------------------------------------------------------
def _print_results(cmd: Command, run) -> None:
    for name in cmd.results:
        extra = " (and .csv)" if name.endswith(".parquet") else ""
        print(f"results: {run.path / name}{extra}")
    if cmd.figures:
        print(f"figures: {run.path / 'figures'}")


def _after_evaluate(run, cfg) -> None:
    from sftscope.results.schema import Tables
    print(run.read_table(Tables.TASKS)[["side", "dataset", "metric", "value", "n"]].to_string(index=False))


def _after_tune(run, cfg) -> None:
    from sftscope.results.schema import Tables
    df = run.read_table(Tables.TUNE_EVAL)
    print(df[df["side"] == "tuned"][["dataset", "metric", "value", "n", "layers", "trainable_params"]]
          .to_string(index=False))


def _after_sweep(run, cfg) -> None:
    from sftscope.results.schema import Tables
    from sftscope.tuning.summary import summary_wide
    if cfg.cell is not None:
        print(f"cell {cfg.cell} done under {run.path / 'cells'}\nwhen all cells are done: the same command with "
              "--summarize-only instead of --cell")
        return
    print(summary_wide(run.read_table(Tables.SWEEP_SUMMARY)).to_string(index=False))
    print(f"per cell: {run.path / 'cells'}")


def _after_suggest(run, cfg) -> None:
    from sftscope.suggest.pipeline import read_suggestion
    print(read_suggestion(run).text())


def _after_correlate(run, cfg) -> None:
    print("layers joined as block l <-> layer l (output of block l), l = 1..L")


AFTER = {"evaluate": _after_evaluate, "tune": _after_tune, "sweep": _after_sweep, "suggest": _after_suggest,
         "correlate": _after_correlate}


def _run_command(args) -> None:
    cmd = COMMANDS[args.command]
    cfg = config_from_namespace(cmd.config_class(), args)
    if cmd.name == "tune" and cfg.export_peft_config:
        from sftscope.tuning.export import export_peft_config
        path = distributed.on_main(lambda: export_peft_config(cfg, cfg.export_peft_config))
        print(f"peft LoraConfig: {path}\nload it with LoraConfig(**json.load(open(path))) and pass it to your trainer")
        return
    if cmd.name == "sweep" and cfg.list_cells:
        from sftscope.tuning.sweep import expand_cells, list_commands
        print("\n".join(list_commands(expand_cells(cfg, args.out))))
        return
    run = cmd.runner()(cfg, args.out)
    if cmd.name == "demo":
        return  # run_demo printed its own summary
    AFTER.get(cmd.name, lambda run, cfg: None)(run, cfg)
    if not (cmd.name == "sweep" and cfg.cell is not None):
        _print_results(cmd, run)


def _run(args) -> None:
    if args.command == "ls":
        from sftscope.listing import listing
        print(listing(args.what))
        return
    from sftscope.runtime import configure_cpu_threads
    configure_cpu_threads()
    if args.command == "report":
        from sftscope.report import write_report
        out = distributed.on_main(lambda: write_report(args.run_dirs, args.out))
        print(f"report: {out.resolve()}\nopen it in a browser, e.g. xdg-open {out} (macOS: open {out})")
    elif args.command == "organism":
        from sftscope.organism import build_organism
        cfg = config_from_namespace(_attribute_organism(), args)
        paths = distributed.on_main(lambda: build_organism(Path(args.out) if args.out else None, seed=cfg.seed,
                                                           size=cfg.size, force=cfg.force))
        print(f"base: {paths.base_dir}\nsft:  {paths.sft_dir}\ndata: {paths.data_dir}\ncard: {paths.card_path}")
    else:
        _run_command(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sftscope` console script; returns the exit status (2 for bad input).

    Under torchrun / accelerate launch every rank runs this; only rank 0 prints results and errors (an error
    only another rank met is printed by that rank, with its number)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        try:
            args = _parse(argv)
        except SystemExit as stop:  # --help, --version, or a usage error already printed as one line
            return int(stop.code or 0)
        if args.command == "ls":
            _run(args)
            return 0
        distributed.state()  # a launch whose processes do not form one group fails here, before any work
        with contextlib.redirect_stdout(sys.stdout if distributed.is_main() else io.StringIO()):
            _run(args)
    except KeyboardInterrupt:
        print("sftscope: interrupted; finished units are kept: run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  every failure ends as one line (--debug: the traceback)
        if debug:
            raise
        status = 2 if isinstance(exc, SftscopeError) or not describe(exc).startswith("unexpected ") else 1
        if distributed.is_main():
            print_error(exc)
        elif not isinstance(exc, SftscopeError):  # met on this rank alone: nobody else can report it
            print(f"sftscope: error (rank {distributed.rank()}): {describe(exc)}", file=sys.stderr)
        return status
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
