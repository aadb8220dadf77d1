import pandas as pd
import pytest

from sftscope.analysis.config import AnalyzeConfig
from sftscope.analysis.pipeline import run_analyze
from tests.conftest import ARCHS, SHARED_DATA

pytestmark = pytest.mark.integration  # runs the analyze pipeline on tiny models saved to and loaded from disk


def _cfg(base, sft, **kw):
    opts = dict(data=["gsm8k"], data_dir=str(SHARED_DATA), token_samples=6, pooled_samples=12, max_length=40,
                batch_size=4)
    opts.update(kw)
    return AnalyzeConfig(base=str(base), sft=str(sft), **opts)


def test_model_against_itself_is_perfectly_aligned(tiny_pair_dir, tmp_path):
    base, _ = tiny_pair_dir("llama")
    df = pd.read_parquet(run_analyze(_cfg(base, base), tmp_path / "self").path / "metrics.parquet")
    align = df[df["mode"] == "alignment"].set_index(["metric", "preset", "layer"])["value"]
    layers = range(5)
    for preset in ("paper", "canonical"):
        for layer in layers:
            assert align[("cka", preset, layer)] == pytest.approx(1.0, abs=1e-9)
            assert align[("cosine_similarity", preset, layer)] == pytest.approx(1.0, abs=1e-9)
            assert align[("mean_shift", preset, layer)] == pytest.approx(0.0, abs=1e-9)
    diffs = df[df["mode"].isin(["sample_diff", "dataset_diff"])]["value"]
    assert diffs.abs().max() < 1e-9


def test_sequential_mode_equals_resident_mode(tiny_pair_dir, tmp_path):
    base, sft = tiny_pair_dir("llama")
    key = ["side", "dataset", "layer", "metric", "preset", "mode"]
    frames = []
    for mode in ("resident", "sequential"):
        run = run_analyze(_cfg(base, sft, mode=mode), tmp_path / mode)
        frames.append(pd.read_parquet(run.path / "metrics.parquet").drop(columns="run").sort_values(key)
                      .reset_index(drop=True))
    pd.testing.assert_frame_equal(frames[0], frames[1], rtol=1e-6)


def test_left_padding_and_batch_size_do_not_change_results(tiny_pair_dir, tmp_path):
    base, sft = tiny_pair_dir("llama")
    key = ["side", "dataset", "layer", "metric", "preset", "mode"]
    a = run_analyze(_cfg(base, sft, batch_size=1), tmp_path / "a")
    b = run_analyze(_cfg(base, sft, batch_size=5, padding_side="left"), tmp_path / "b")
    fa, fb = (pd.read_parquet(r.path / "metrics.parquet").drop(columns="run").sort_values(key).reset_index(drop=True)
              for r in (a, b))
    pd.testing.assert_frame_equal(fa, fb, rtol=1e-5, atol=1e-7)


def test_resume_skips_finished_datasets(tiny_pair_dir, tmp_path, monkeypatch):
    base, sft = tiny_pair_dir("llama")
    run_analyze(_cfg(base, sft), tmp_path / "r")
    import sftscope.analysis.pipeline as pipeline
    monkeypatch.setattr(pipeline, "capture", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-ran")))
    monkeypatch.setattr(pipeline, "load_pair", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    run = run_analyze(_cfg(base, sft, data=["gsm8k"]), tmp_path / "r")
    assert len(pd.read_parquet(run.path / "metrics.parquet")) > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_end_to_end_with_variant(tiny_pair_dir, tmp_path, arch):
    base, sft = tiny_pair_dir(arch)
    plots = arch == "llama"  # the figures read only the table: drawing them once is enough (and slow)
    run = run_analyze(_cfg(base, sft, variants=[f"copy={base}"], data=["mmlu", "wikitext"], plots=plots),
                      tmp_path / arch)
    df = pd.read_parquet(run.path / "metrics.parquet")
    assert set(df["side"]) == {"base", "sft", "copy"} and set(df["dataset"]) == {"mmlu", "wikitext"}
    assert df["value"].notna().all() and (df["n"] > 0).all()
    copy_cka = df[(df.side == "copy") & (df.metric == "cka") & (df["mode"] == "alignment")]["value"]
    assert copy_cka.min() == pytest.approx(1.0, abs=1e-9)
    if plots:
        names = {p.name for p in (run.path / "figures").glob("*.png")}
        assert {"alignment__mmlu.png", "prompt_entropy__wikitext.png", "overview__paper.png"} <= names


def test_alignment_rows_carry_bootstrap_cis_and_robustness_rows(tiny_pair_dir, tmp_path):
    base, sft = tiny_pair_dir("llama")
    run = run_analyze(_cfg(base, sft, pooled_samples=16, bootstrap=50, robustness_splits=6), tmp_path / "ci")
    df = pd.read_parquet(run.path / "metrics.parquet")
    ci = df[(df["mode"] == "alignment") & df["metric"].isin(["cka", "cosine_similarity", "mean_shift"])]
    assert ci["ci_low"].notna().all() and (ci["ci_low"] <= ci["value"] + 1e-12).all()
    assert (ci["value"] <= ci["ci_high"] + 1e-12).all()
    rob = df[df["metric"] == "robustness:mean_shift"]
    assert len(rob) == 5 and rob["p_value"].between(0, 1).all()
