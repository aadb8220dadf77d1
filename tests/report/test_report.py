"""The HTML report: self-contained, findings from known curves, any subset of tables, several runs, browser."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sftscope.cli import main
from sftscope.errors import SftscopeError
from sftscope.report import findings as fnd
from sftscope.report import write_report
from sftscope.report.data import load_run
from sftscope.report.figures import key_curves
from sftscope.report.markup import pivot_layers, png_size
from sftscope.results.rundir import RunDir, write_json
from sftscope.results.schema import Row

ROOT = Path(__file__).resolve().parents[2]


def _cka(L: int) -> np.ndarray:
    """Plateau at 0.95, falling below it from layer L - 1 on."""
    cka = np.full(L + 1, 0.95)
    cka[0] = 0.99
    cka[-2:] = [0.8, 0.6]
    return cka


def make_run(path: Path, L: int = 8, tables=("metrics", "probe", "weights", "swap", "sweep_summary", "suggest"),
             intervals: bool = True) -> Path:
    """A run directory with every table the report reads, written from known curves (no model); CKA and lens
    accuracy with 95% intervals as the analyze and probe stages write them (`intervals=False`: without)."""
    run = RunDir(path)
    run.bind_config("analyze", {"data": ["toy"], "preset": "both", "seed": 3})
    run.write_environment(3, [{"name": "base", "id": "org/base", "revision": "abc", "num_layers": L},
                              {"name": "sft", "id": "org/sft", "num_layers": L}])
    if "metrics" in tables:
        ci = {} if not intervals else None
        rows = [Row("sft", "toy", l, "cka", float(v), 32, p, "alignment",
                    extra=ci if ci is not None else {"ci_low": v - 0.02, "ci_high": v + 0.02, "ci_level": 0.95})
                for l, v in enumerate(_cka(L)) for p in ("paper", "canonical")]
        rows += [Row(s, "toy", l, "effective_rank", 0.5 + 0.01 * l, 32, "paper") for s in ("base", "sft") for l in range(L + 1)]
        rows += [Row("base", "toy", -1, "truncated_samples", 5, 32, "", "diagnostic"),
                 Row("sft", "toy", 2, "skipped:curvature", 3, 3, "paper", "diagnostic", extra={"reason": "T < 3"})]
        run.write_unit("metrics", "toy", rows)
    if "probe" in tables:
        acc = [0.0] * (L - 2) + [0.3, 0.5, 0.6]  # half the final gain (0.3) first reached at layer L - 2
        run.write_unit("probe", "toy", [Row(s, "toy", l, "lens_accuracy", a, 100, extra={} if not intervals else {
            "ci_low": max(a - 0.03, 0.0), "ci_high": a + 0.03, "ci_level": 0.95, "samples": 20})
                                        for s in ("base", "sft") for l, a in enumerate(acc)])
    if "weights" in tables:
        change = [1.0] * (L - 1) + [3.0]
        run.write_unit("weights", "sft", [Row("sft", "", l + 1, m, c, 10, mode="alignment", extra={"module": "attn_qkvo"})
                                          for l, c in enumerate(change) for m in ("attn_qkvo_delta_fro", "attn_qkvo_delta_rel")])
    if "swap" in tables:
        run.write_unit("swap", "toy", [Row("base", "toy", -1, "token_accuracy", v, 50, mode="swap",
                                           extra={"hybrid": h, "segment": seg, "blocks": b, "head": "original"})
                                       for h, seg, b, v in [("base", -1, "", 0.2), ("sft", -1, "", 0.4),
                                                            ("base<-sft seg0", 0, "0-3", 0.25),
                                                            ("base<-sft seg1", 1, "4-7", 0.35)]])
    if "sweep_summary" in tables:
        run.write_unit("sweep_summary", "all", [
            dict(method="lora", blocks=s, metric="toy:exact_match", value=m, ci_low=m - 0.02, ci_high=m + 0.02,
                 trainable_params=1000, vs_all_diff=float("nan") if s == "all" else m - 0.3, vs_all_se=0.01,
                 vs_all_df=100.0, vs_all_n=3, vs_all_items=116, uncertainty="seeds x items")
            for s, m in [("all", 0.3), ("0110", 0.4), ("1000", 0.2)]])
    if "suggest" in tables:
        from sftscope.suggest.decide import LayerProfiles, suggest_blocks
        from sftscope.suggest.pipeline import SUGGESTION_FILE, profile_rows
        layer_cka = np.full(L, 0.99)
        layer_cka[0] = 0.6
        profiles = LayerProfiles(layer_cka=layer_cka, effective_rank=np.full(L + 1, 0.5), variant_cka=_cka(L))
        suggestion = suggest_blocks(profiles, k=4)
        run.write_unit("suggest", "profiles", profile_rows(profiles))
        write_json(path / SUGGESTION_FILE, {**suggestion.as_dict(), "data": ["toy"]})
    fig = Figure(figsize=(3, 2))
    fig.subplots().plot([0, 1], [1, 0])
    FigureCanvasAgg(fig)
    fig.savefig(run.figures / "alignment__toy.png")
    return path


@pytest.mark.integration
def test_report_is_one_self_contained_file(tmp_path):
    run = make_run(tmp_path / "run")
    out = write_report([run])
    assert out == run / "report.html"
    text = out.read_text()
    srcs = re.findall(r'<img src="([^"]+)"', text)
    assert len(srcs) == 4  # the run's figure + key curves, sweep chart, suggestion profiles
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    # nothing fetched: no external URL in any src/href, no linked stylesheet or script file
    assert not re.search(r'(src|href)="(https?:)?//', text) and "<link" not in text and "<script src" not in text
    for heading in ("Summary", "What was compared", "Findings", "Representations", "Logit lens", "Weight change",
                    "Layer swapping", "Tuning sweep", "Block suggestion", "Warnings"):
        assert f'href="#{heading.lower().replace(" ", "-")}"' in text, heading
    assert "org/base @ abc" in text and "5 of 32 samples cut at max_length" in text and "T &lt; 3" in text
    assert "0110 (lora)" in text  # the sweep's best


def test_findings_from_known_curves(tmp_path):
    run = load_run(make_run(tmp_path / "run", L=10))
    (cka,) = fnd.cka_findings(run.table("metrics"))
    assert (cka.value, cka.kind, cka.figure) == ("drop at layers 9-10 of 10", "drop", "alignment__toy")
    assert "32 samples per layer" in cka.evidence and "[" in cka.evidence
    lens = {f.key: f.value for f in fnd.lens_findings(run.table("probe"))}
    assert lens == {"Logit lens emerges (base)": "at layer 8 of 10", "Logit lens emerges (sft)": "at layer 8 of 10"}
    assert fnd.weight_findings(run.table("weights"))[0].value == "block 10 of 10"
    swap = fnd.swap_findings(run.table("swap"))[0]
    assert swap.value == "base<-sft seg1" and "0.35" in swap.detail
    assert "n = 50 tokens" in swap.evidence and "intervals overlap" in swap.evidence  # 0.35 vs 0.25 on 50
    (sweep,) = fnd.sweep_findings(run.table("sweep_summary"))
    assert sweep.value == "0110 (lora)" and "all-layer LoRA 0.3 [0.28, 0.32]" in sweep.detail
    # best of 2 compared: +0.1 with se 0.01 is outside its simultaneous interval
    assert sweep.kind == "better" and "3 seeds x 116 items" in sweep.evidence and "simultaneous over 2" in sweep.evidence
    found, comparison = fnd.suggestion_findings(run.suggestion, run.table("sweep_summary"))
    assert comparison["metric"] == "toy:exact_match" and comparison["n_configs"] == 3
    assert found[0].value.endswith("of 0-9")


def test_no_interval_no_claim(tmp_path):
    """A table written without intervals gives inconclusive claims that say why, not a drop or an emergence."""
    run = load_run(make_run(tmp_path / "run", L=10, tables=("metrics", "probe"), intervals=False))
    (cka,) = fnd.cka_findings(run.table("metrics"))
    assert (cka.value, cka.kind) == ("inconclusive", "inconclusive") and "no interval" in cka.evidence
    assert {f.value for f in fnd.lens_findings(run.table("probe"))} == {"inconclusive"}


def test_tiles_show_evidence_and_link_to_their_figure(tmp_path):
    text = write_report([make_run(tmp_path / "run", L=10)], tmp_path / "r.html").read_text()
    tile = re.search(r'<div class="tile drop">.*?</div></div>', text).group(0)
    assert "drop at layers 9-10 of 10" in tile and "32 samples per layer" in tile
    href = re.search(r'href="#([^"]+)">figure</a>', tile).group(1)
    assert f'<figure id="{href}">' in text  # the link lands on the alignment figure
    assert 'id="fig-run-sweep-chart"' in text and 'href="#fig-run-sweep-chart"' in text


def test_any_subset_of_tables(tmp_path):
    only_weights = make_run(tmp_path / "w", tables=("weights",))
    text = write_report([only_weights], tmp_path / "w.html").read_text()
    assert "Weight change" in text and 'id="logit-lens"' not in text
    (tmp_path / "empty").mkdir()
    with pytest.raises(SftscopeError, match="no results"):
        write_report([tmp_path / "empty"])
    with pytest.raises(SftscopeError, match="not a run directory"):
        write_report([tmp_path / "missing"])


@pytest.mark.integration
def test_several_runs_overlaid(tmp_path):
    a, b = make_run(tmp_path / "small", L=4), make_run(tmp_path / "large", L=12)
    png = key_curves([load_run(a), load_run(b)])
    assert png_size(png)[0] > 0
    text = write_report([a, b], tmp_path / "both.html").read_text()
    assert text.count("'pill'>small<") >= 3 and text.count("'pill'>large<") >= 3
    assert "drop at layers 3-4 of 4" in text and "drop at layers 11-12 of 12" in text


def test_pivot_is_one_row_per_layer():
    import pandas as pd
    df = pd.DataFrame([dict(layer=l, side=s, metric="m", value=float(l)) for l in range(5) for s in ("a", "b")])
    wide = pivot_layers(df, ["side", "metric"])
    assert list(wide.columns) == ["layer", "depth", "a | m", "b | m"] and len(wide) == 5
    assert wide["depth"].tolist() == [0, 0.25, 0.5, 0.75, 1.0]


@pytest.mark.integration
def test_cli_report(tmp_path, capsys):
    run = make_run(tmp_path / "run", tables=("probe",))
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    assert "r.html" in capsys.readouterr().out and (tmp_path / "r.html").exists()
    assert main(["report", str(tmp_path / "nope")]) == 2


def _checker():
    spec = importlib.util.spec_from_file_location("check_report", ROOT / "scripts" / "check_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_report_renders_in_headless_chromium(tmp_path):
    checker = _checker()
    if checker.find_chromium() is None:
        pytest.skip("Chromium not installed (apt-get install -y chromium): browser rendering not checked")
    out = write_report([make_run(tmp_path / "run")])
    result = checker.check_report(out, tmp_path / "shot.png", 1200, 1600)
    assert result["total"] == 4 and result["loaded"] == 4, result["stderr_tail"]
    shot = (tmp_path / "shot.png").read_bytes()
    assert png_size(shot) == (1200, 1600)


def test_swap_finding_judges_the_task_score_on_its_items():
    """Swap rows name task scores '<task>:<metric>' (n = the task's items) beside the teacher-forced token
    accuracy (n = tokens): the finding uses the task score and its item count."""
    import pandas as pd
    from sftscope.report.findings import swap_findings
    rows = []
    for hybrid, seg, acc, tok in [("base", -1, 0.30, 0.4), ("sft", -1, 0.50, 0.5), ("base<-sft seg0", 0, 0.35, 0.41),
                                  ("base<-sft seg1", 1, 0.45, 0.45)]:
        rows += [dict(run="r", dataset="mmlu", hybrid=hybrid, segment=seg, blocks="", metric="mmlu:acc", value=acc,
                      n=40),
                 dict(run="r", dataset="mmlu", hybrid=hybrid, segment=seg, blocks="", metric="token_accuracy",
                      value=tok, n=5000)]
    (finding,) = swap_findings(pd.DataFrame(rows))
    assert finding.value == "base<-sft seg1" and "mmlu:acc" in finding.detail and "n = 40 items" in finding.evidence
