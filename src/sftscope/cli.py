"""Command line: parse arguments into a config, call one pipeline, print where the results went."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sftscope import __version__
from sftscope.errors import SftscopeError


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _add_model_args(p: argparse.ArgumentParser, sft_required: bool = True) -> None:
    p.add_argument("--base", required=True, help="Base model: hub id or local dir (ID@REVISION pins a revision)")
    p.add_argument("--sft", required=sft_required, default=None, help="fine-tuned model compared with the Base")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=ID",
                   help="more fine-tuned variants of the same Base (repeatable), e.g. dpo=allenai/OLMo-2-0425-1B-DPO")
    p.add_argument("--dtype", default="auto", help="auto (float32 on CPU, checkpoint dtype on GPU), float32, bf16, fp16")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--device-map", default=None, help="'auto' spreads layers over all GPUs (models that do not fit one)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from the hub (off by default)")


def _add_data_args(p: argparse.ArgumentParser, default: str = "gsm8k") -> None:
    p.add_argument("--data", type=_csv, default=_csv(default),
                   help=f"comma-separated data set names (sftscope ls datasets) or files (default {default})")
    p.add_argument("--data-dir", default=None, help="folder with local copies (else $SFTSCOPE_DATA_DIR, else the hub)")
    p.add_argument("--text-field", default="text", help="field holding the text in user files")
    p.add_argument("--max-length", type=int, default=512, help="tokens per sample; longer samples are cut and counted")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sftscope", description="Where in depth does fine-tuning change a model? "
                                     "Layer-wise Base-vs-SFT analysis and Mid-Block Efficient Tuning.")
    parser.add_argument("--version", action="version", version=f"sftscope {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = sub.add_parser("ls", help="list registered data sets, metrics, tasks or architectures")
    ls.add_argument("what", choices=["datasets", "metrics", "tasks", "architectures"])

    an = sub.add_parser("analyze", help="layer-wise representation metrics of Base vs fine-tuned model(s)")
    _add_model_args(an, sft_required=False)
    _add_data_args(an)
    an.add_argument("--preset", default="both", choices=["paper", "canonical", "both"])
    an.add_argument("--token-samples", type=int, default=100, help="samples for token-level metrics")
    an.add_argument("--pooled-samples", type=int, default=1000, help="samples for pooled (data set level) metrics")
    an.add_argument("--mode", default="resident", choices=["resident", "sequential"],
                    help="resident: all models loaded together; sequential: one at a time (pairs that do not fit)")
    an.add_argument("--chat-template", action="store_true", help="render fine-tuned sides with their chat template")
    an.add_argument("--padding-side", default="right", choices=["left", "right"])
    an.add_argument("--bootstrap", type=int, default=200, help="replicates for 95%% CIs of CKA/cosine/mean shift (0: off)")
    an.add_argument("--robustness-splits", type=int, default=20,
                    help="split-half test: Base-vs-SFT mean shift vs within-model resampling noise (0: off)")
    an.add_argument("--out", required=True, help="run directory (re-run the same command to resume)")
    an.add_argument("--no-plots", action="store_true")

    pr = sub.add_parser("probe", help="logit lens at every layer: next-token accuracy/loss, KL to final, agreement")
    _add_model_args(pr, sft_required=False)
    _add_data_args(pr)
    pr.add_argument("--samples", type=int, default=200)
    pr.add_argument("--chunk", type=int, default=256, help="positions per head application (memory: chunk x vocab)")
    pr.add_argument("--out", required=True)
    pr.add_argument("--no-plots", action="store_true")

    sw = sub.add_parser("swap", help="Base/SFT hybrids per segment, evaluated on data sets and tasks")
    _add_model_args(sw)
    _add_data_args(sw)
    sw.add_argument("--segments", type=int, default=5, help="k equal segments (whole segments are swapped)")
    sw.add_argument("--swap-depth", type=int, default=None, help="swap only the last n blocks of each segment")
    sw.add_argument("--directions", type=_csv, default=["base<-sft", "sft<-base"])
    sw.add_argument("--heads", type=_csv, default=["original", "transferred"], help="final norm + head kept or moved")
    sw.add_argument("--samples", type=int, default=200)
    sw.add_argument("--no-tasks", action="store_true", help="skip task scores (MMLU, organism-qa/mc)")
    sw.add_argument("--task-limit", type=int, default=200, help="items per task evaluation")
    sw.add_argument("--out", required=True)
    sw.add_argument("--no-plots", action="store_true")

    we = sub.add_parser("weights", help="per-block, per-module weight change, streamed from the checkpoint files")
    we.add_argument("--base", required=True)
    we.add_argument("--sft", default=None)
    we.add_argument("--variant", action="append", default=[], metavar="NAME=ID")
    we.add_argument("--no-strict", action="store_true", help="skip tensors present on one side only (else an error)")
    we.add_argument("--out", required=True)
    we.add_argument("--no-plots", action="store_true")

    co = sub.add_parser("correlate", help="correlation of weight change with each representation metric across layers")
    co.add_argument("run_dir", help="a run directory holding both the weights and the metrics tables")
    co.add_argument("--weight-metric", default="attn_qkvo_delta_fro")
    co.add_argument("--method", type=_csv, default=["pearson", "spearman"])

    ev = sub.add_parser("evaluate", help="registered tasks (gsm8k, mmlu, toxigen, ppl:*, organism-*) on models")
    ev.add_argument("--model", action="append", required=True, metavar="[NAME=]ID",
                    help="model to evaluate (repeatable), e.g. --model base=allenai/OLMo-2-0425-1B")
    ev.add_argument("--tasks", type=_csv, required=True, help="comma-separated task names (sftscope ls tasks)")
    ev.add_argument("--limit", type=int, default=None, help="items per task (default: the whole test set)")
    ev.add_argument("--data-dir", default=None)
    ev.add_argument("--batch-size", type=int, default=8)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--dtype", default="auto")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--device-map", default=None)
    ev.add_argument("--trust-remote-code", action="store_true")
    ev.add_argument("--out", required=True)

    sg = sub.add_parser("suggest", help="training-free choice of the blocks to tune: mask, depth range, layer list")
    sg.add_argument("--base", required=True, help="Base model: hub id or local dir (ID@REVISION pins a revision)")
    sg.add_argument("--sft", default=None, help="optional fine-tuned model: adds Base-vs-SFT CKA and weight change")
    sg.add_argument("--dtype", default="auto", help="auto (float32 on CPU, checkpoint dtype on GPU), float32, bf16, fp16")
    sg.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    sg.add_argument("--device-map", default=None, help="'auto' spreads layers over all GPUs (models that do not fit one)")
    sg.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from the hub (off by default)")
    _add_data_args(sg)
    sg.add_argument("--samples", type=int, default=200, help="samples per data set")
    sg.add_argument("--k", type=int, default=5, help="segments of the printed mask")
    sg.add_argument("--out", default="sftscope-runs/suggest", help="directory for suggestion.json and the profiles")

    rp = sub.add_parser("report", help="one self-contained HTML report of run directories (reads files only)")
    rp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories; several are overlaid on depth")
    rp.add_argument("--out", default=None, help="HTML file (default: report.html in the first run directory)")

    org = sub.add_parser("organism", help="the built-in tiny Base/SFT model pair")
    org_sub = org.add_subparsers(dest="organism_command", required=True, metavar="ACTION")
    ob = org_sub.add_parser("build", help="build (or reuse) the organism: world, tokenizer, Base, SFT, card")
    ob.add_argument("--out", default=None, help="folder (default: the user cache, reused when complete)")
    ob.add_argument("--seed", type=int, default=0)
    ob.add_argument("--size", default="default", choices=["default", "test"])
    ob.add_argument("--force", action="store_true", help="rebuild even if a complete build exists")
    demo = sub.add_parser("demo", help="the main job: every stage on the built-in organism (or --base/--sft)")
    demo.add_argument("--quick", action="store_true", help="small organism and sample counts (about 3 minutes on CPU)")
    demo.add_argument("--out", default=None, help="run directory (default sftscope-runs/demo[-quick]; resumable)")
    demo.add_argument("--base", default=None, help="run on your own Base instead of the organism (with --sft)")
    demo.add_argument("--sft", default=None)
    demo.add_argument("--data", type=_csv, default=None, help="data sets (default: the organism's, or gsm8k,mmlu)")
    demo.add_argument("--data-dir", default=None)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--stages", type=_csv, default=None, help="only these stages (comma-separated)")

    tu = sub.add_parser("tune", help="Mid-Block Efficient Tuning: one cell (blocks x method x seed), trained and scored")
    tu.add_argument("--blocks", required=True, help="block spec: all, a mask like 01000, 20%%-80%%, layers:8-12, "
                    "random:4; with --method full also early/middle/late/random")
    tu.add_argument("--segments", type=int, default=None, help="k; if given, a mask must have exactly k digits")
    tu.add_argument("--method", default="lora", choices=["lora", "full"])
    tu.add_argument("--seed", type=int, default=0, help="data order, LoRA init and random block choice")
    _add_tune_args(tu)
    tu.add_argument("--base-eval", default=None, help="run dir caching the Base's scores (default: --out; a sweep "
                    "shares one)")
    tu.add_argument("--name", default="", help="the cell's label in tables (default: the --out folder's name)")
    tu.add_argument("--out", required=True, help="run directory of this cell (re-run to resume)")

    sp = sub.add_parser("sweep", help="masks x seeds x controls as independent tune cells, then a summary")
    sp.add_argument("--k", type=int, default=5, help="segments of the masks")
    sp.add_argument("--masks", type=_csv, default=None, help="comma-separated masks (and 'all'); default: every "
                    "single-segment mask, 01100, 01110 and all")
    sp.add_argument("--seeds", type=lambda t: [int(x) for x in _csv(t)], default=[0, 1, 2])
    sp.add_argument("--controls", type=lambda t: [] if t == "none" else _csv(t),
                    default=["lora-early", "lora-late", "lora-random", "full-early", "full-middle", "full-late",
                             "full-random"], help="same-budget controls, or 'none'")
    sp.add_argument("--also-k", type=lambda t: [int(x) for x in _csv(t)], default=[],
                    help="also single-segment masks of these k (e.g. 3,10: the inverted-U ablation)")
    _add_tune_args(sp)
    sp.add_argument("--out", required=True, help="sweep directory (cells/<name>/ per cell; re-run to resume)")
    sp.add_argument("--list", action="store_true", help="print one `sftscope tune` line per cell and stop")
    sp.add_argument("--cell", type=int, default=None, help="run only cell I (0-based, as --list orders them)")
    sp.add_argument("--summarize-only", action="store_true", help="only gather finished cells and summarise")
    sp.add_argument("--no-plots", action="store_true")
    return parser


def _cmd_demo(args) -> None:
    from sftscope.demo import plan_demo, run_demo

    plan = run_demo(plan_demo(args.out, args.quick, args.base, args.sft, args.data, args.data_dir, args.seed),
                    args.stages)
    print(f"\nsftscope demo finished: results in {plan.out.resolve()}")
    for name, where in plan.done:
        print(f"  {name:<10} {where}")
    print(f"  figures    {plan.out.resolve() / 'figures'}")


def _cmd_ls(args) -> None:
    from sftscope.listing import listing
    print(listing(args.what))


def _cmd_analyze(args) -> None:
    from sftscope.analysis.config import AnalyzeConfig
    from sftscope.analysis.pipeline import run_analyze

    cfg = AnalyzeConfig(**_pair_kwargs(args), preset=args.preset, token_samples=args.token_samples,
                        pooled_samples=args.pooled_samples, mode=args.mode, chat_template=args.chat_template,
                        padding_side=args.padding_side, bootstrap=args.bootstrap,
                        robustness_splits=args.robustness_splits)
    run = run_analyze(cfg, args.out, plots=not args.no_plots)
    print(f"results: {run.path / 'metrics.parquet'} (and .csv)\nfigures: {run.path / 'figures'}")


def _pair_kwargs(args) -> dict:
    return dict(base=args.base, sft=args.sft, variants=args.variant, data=args.data, data_dir=args.data_dir,
                text_field=args.text_field, max_length=args.max_length, batch_size=args.batch_size, seed=args.seed,
                dtype=args.dtype, device=args.device, device_map=args.device_map,
                trust_remote_code=args.trust_remote_code)


def _cmd_probe(args) -> None:
    from sftscope.probing.pipeline import ProbeConfig, run_probe

    run = run_probe(ProbeConfig(**_pair_kwargs(args), samples=args.samples, chunk=args.chunk), args.out,
                    plots=not args.no_plots)
    print(f"results: {run.path / 'probe.parquet'} (and .csv)\nfigures: {run.path / 'figures'}")


def _cmd_swap(args) -> None:
    from sftscope.swapping.pipeline import SwapConfig, run_swap

    cfg = SwapConfig(**_pair_kwargs(args), segments=args.segments, swap_depth=args.swap_depth,
                     directions=args.directions, heads=args.heads, samples=args.samples, tasks=not args.no_tasks,
                     task_limit=args.task_limit)
    run = run_swap(cfg, args.out, plots=not args.no_plots)
    print(f"results: {run.path / 'swap.parquet'} (and .csv)\nfigures: {run.path / 'figures'}")


def _variants(args) -> dict[str, str]:
    from sftscope.models.loading import ModelRef

    refs = ([ModelRef.parse(args.sft, "sft")] if args.sft else []) + \
        [ModelRef.parse(v, f"variant{i + 1}") for i, v in enumerate(args.variant)]
    if not refs:
        raise SftscopeError("give a fine-tuned model: --sft ID or --variant NAME=ID")
    return {r.name: r.id + (f"@{r.revision}" if r.revision else "") for r in refs}


def _cmd_weights(args) -> None:
    from sftscope.weights.pipeline import run_weights

    run = run_weights(args.base, _variants(args), args.out, strict=not args.no_strict, plots=not args.no_plots)
    print(f"results: {run.path / 'weights.parquet'} (and .csv)\nfigures: {run.path / 'figures'}")


def _cmd_correlate(args) -> None:
    from sftscope.stats.pipeline import run_correlate

    run = run_correlate(args.run_dir, args.weight_metric, tuple(args.method))
    print(f"results: {run.path / 'correlation.parquet'}\nheatmap: {run.figures / f'correlation_{args.weight_metric}.png'}"
          "\nlayers joined as block l <-> layer l (output of block l), l = 1..L")


def _cmd_evaluate(args) -> None:
    from sftscope.evaluation.pipeline import run_evaluate
    from sftscope.models.loading import LoadOptions, ModelRef

    refs = [ModelRef.parse(m, f"model{i + 1}") for i, m in enumerate(args.model)]
    run = run_evaluate(refs, args.tasks, args.out, args.data_dir, args.limit, args.batch_size, args.seed,
                       LoadOptions(args.dtype, args.device, args.device_map, args.trust_remote_code))
    print(run.read_table("tasks")[["side", "dataset", "metric", "value", "n"]].to_string(index=False))
    print(f"results: {run.path / 'tasks.parquet'} (and .csv)")


def _cmd_suggest(args) -> None:
    from sftscope.suggest.pipeline import SUGGESTION_FILE, SuggestConfig, run_suggest

    cfg = SuggestConfig(base=args.base, sft=args.sft, data=args.data, data_dir=args.data_dir, text_field=args.text_field,
                        samples=args.samples, max_length=args.max_length, batch_size=args.batch_size, k=args.k,
                        seed=args.seed, dtype=args.dtype, device=args.device, device_map=args.device_map,
                        trust_remote_code=args.trust_remote_code)
    run, suggestion = run_suggest(cfg, args.out)
    print(suggestion.text())
    print(f"results: {run.path / SUGGESTION_FILE}, {run.path / 'suggest.parquet'} (and .csv)")


def _cmd_report(args) -> None:
    from sftscope.report.build import write_report

    out = write_report(args.run_dirs, args.out)
    print(f"report: {out.resolve()}\nopen it in a browser, e.g. xdg-open {out} (macOS: open {out})")


def _cmd_organism(args) -> None:
    from sftscope.organism import build_organism

    paths = build_organism(Path(args.out) if args.out else None, seed=args.seed, size=args.size, force=args.force)
    print(f"base: {paths.base_dir}\nsft:  {paths.sft_dir}\ndata: {paths.data_dir}\ncard: {paths.card_path}")


def _add_tune_args(p: argparse.ArgumentParser) -> None:
    """Options shared by `tune` and `sweep` (everything but which blocks, method and seed)."""
    p.add_argument("--base", required=True, help="Base model to tune: hub id (ID@REVISION) or local dir")
    p.add_argument("--train", default="gsm8k", help="training data: gsm8k (train split), organism-sft, or a "
                   ".jsonl/.csv file with prompt and completion fields")
    p.add_argument("--train-limit", type=int, default=None, help="first N training records (default all)")
    p.add_argument("--rank", type=int, default=8, help="budget reference: LoRA of this rank on every block")
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--alpha-policy", default="constant-scale", choices=["constant-scale", "rslora", "fixed"])
    p.add_argument("--target-modules", default="q_proj,k_proj,v_proj,o_proj", help="comma-separated, or all-linear")
    p.add_argument("--full-scope", default="block", choices=["block", "targets"], help="what --method full unfreezes")
    p.add_argument("--tasks", type=_none_or_csv, default=["gsm8k"], help="evaluation tasks (sftscope ls tasks)")
    p.add_argument("--retention", type=_none_or_csv, default=["ppl:ifeval", "ppl:mt_bench"],
                   help="retention perplexity tasks (change vs the Base is reported), or 'none'")
    p.add_argument("--limit", type=int, default=None, help="items per evaluation task (default all)")
    p.add_argument("--retention-limit", type=int, default=None, help="texts per retention task (default all)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None, help="optimizer steps (overrides --epochs)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--max-length", type=int, default=512, help="tokens per example; the prompt is cut, never the answer")
    p.add_argument("--warmup-ratio", type=float, default=0.03)
    p.add_argument("--lr-scheduler", default="linear", choices=["linear", "cosine", "constant", "constant_with_warmup"])
    p.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"])
    p.add_argument("--eval-batch-size", type=int, default=8)
    p.add_argument("--data-dir", default=None, help="local data copies (for organism-sft: the organism's data folder)")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--device-map", default=None)
    p.add_argument("--trust-remote-code", action="store_true")


def _none_or_csv(text: str) -> list[str]:
    return [] if text.strip() == "none" else _csv(text)


def _tune_cell(args, blocks: str = "all", method: str = "lora", seed: int = 0, segments: int | None = None):
    """argparse namespace (tune or sweep) -> TuneCell; sweep cells replace blocks, method, seed and segments."""
    from sftscope.models.loading import LoadOptions
    from sftscope.tuning.config import TuneConfig
    from sftscope.tuning.pipeline import TuneCell

    targets = args.target_modules if args.target_modules == "all-linear" else tuple(_csv(args.target_modules))
    config = TuneConfig(method=method, blocks=blocks, segments=segments, rank=args.rank, alpha=args.alpha,
                        alpha_policy=args.alpha_policy, target_modules=targets, full_scope=args.full_scope,
                        lr=args.lr, epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
                        grad_accum=args.grad_accum, max_length=args.max_length, warmup_ratio=args.warmup_ratio,
                        lr_scheduler=args.lr_scheduler, mixed_precision=args.mixed_precision, seed=seed,
                        eval_tasks=tuple(args.tasks), eval_limit=args.limit, eval_batch_size=args.eval_batch_size)
    return TuneCell(base=args.base, train=args.train, config=config, retention=tuple(args.retention),
                    data_dir=args.data_dir, train_limit=args.train_limit, retention_limit=args.retention_limit,
                    load=LoadOptions(args.dtype, args.device, args.device_map, args.trust_remote_code),
                    base_eval=getattr(args, "base_eval", None), name=getattr(args, "name", ""))


def _cmd_tune(args) -> None:
    from sftscope.tuning.pipeline import EVAL, run_tune

    cell = _tune_cell(args, args.blocks, args.method, args.seed, args.segments)
    run = run_tune(cell, args.out)
    df = run.read_table(EVAL)
    print(df[df["side"] == "tuned"][["dataset", "metric", "value", "n", "layers", "trainable_params"]]
          .to_string(index=False))
    print(f"results: {run.path / 'tune_eval.parquet'} and {run.path / 'tuning.parquet'} (and .csv)")


def _cmd_sweep(args) -> None:
    from sftscope.tuning.summary import SUMMARY, summary_wide
    from sftscope.tuning.sweep import SweepConfig, expand_cells, list_commands, run_sweep, summarize_sweep

    cfg = SweepConfig(template=_tune_cell(args), k=args.k, masks=args.masks, seeds=tuple(args.seeds),
                      controls=tuple(args.controls), also_k=tuple(args.also_k))
    if args.list:
        print("\n".join(list_commands(expand_cells(cfg, args.out))))
        return
    if args.summarize_only:
        cells = expand_cells(cfg, args.out)
    else:
        _, cells = run_sweep(cfg, args.out, only=args.cell)
        if args.cell is not None:
            print(f"cell {args.cell} done: {cells[args.cell].path}\nwhen all cells are done: the same command "
                  "with --summarize-only instead of --cell")
            return
    run = summarize_sweep(args.out, cells, plots=not args.no_plots)
    print(summary_wide(run.read_table(SUMMARY)).to_string(index=False))
    print(f"results: {run.path / (SUMMARY + '.parquet')} (and .csv), per cell under {run.path / 'cells'}"
          f"\nfigures: {run.path / 'figures'}")


COMMANDS = {"ls": _cmd_ls, "analyze": _cmd_analyze, "probe": _cmd_probe, "swap": _cmd_swap,
            "weights": _cmd_weights, "correlate": _cmd_correlate, "evaluate": _cmd_evaluate,
            "organism": _cmd_organism, "demo": _cmd_demo, "suggest": _cmd_suggest, "report": _cmd_report,
            "tune": _cmd_tune, "sweep": _cmd_sweep}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sftscope` console script; returns the exit status (2 for bad input)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command != "ls":
            from sftscope.runtime import configure_cpu_threads
            configure_cpu_threads()
        COMMANDS[args.command](args)
    except SftscopeError as exc:
        if args.debug:
            raise
        print(f"sftscope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sftscope: interrupted; finished units are kept: run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
