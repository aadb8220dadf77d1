import pytest
import pandas as pd

from sftscope.swapping.pipeline import SwapConfig, hybrids, run_swap
from tests.conftest import SHARED_DATA


def test_hybrid_plan_counts_and_swap_depth():
    cfg = SwapConfig(base="b", sft="s", segments=5)
    plans = hybrids(10, cfg)
    # 2 unswapped + per direction: head-only + 5 segments x 2 heads
    assert len(plans) == 2 + 2 * (1 + 5 * 2)
    assert [p["layers"] for p in plans if p["hybrid"] == "base<-sft seg1 head=original"] == [[2, 3]]
    deep = hybrids(10, SwapConfig(base="b", sft="s", segments=5, swap_depth=1))
    assert [p["layers"] for p in deep if p["hybrid"] == "base<-sft seg1 head=original"] == [[3]]


@pytest.mark.integration
def test_swap_runs_end_to_end_and_resumes(tiny_pair_dir, tmp_path):
    base, sft = tiny_pair_dir("llama")
    cfg = SwapConfig(base=str(base), sft=str(sft), data=["wikitext"], data_dir=str(SHARED_DATA), samples=6,
                     max_length=32, segments=2, tasks=False)
    run = run_swap(cfg, tmp_path / "run")
    df = pd.read_parquet(run.path / "swap.parquet")
    assert set(df["metric"]) == {"token_accuracy", "perplexity"}
    assert len(df) == 2 * (2 + 2 * (1 + 2 * 2))
    assert df[df["hybrid"] == "base"]["value"].tolist() != df[df["hybrid"] == "sft"]["value"].tolist()
    # Resume: drop one finished unit; the re-run recomputes only it, with the same numbers.
    part = next((run.path / "parts" / "swap").glob("wikitext--sft_-base_seg1*original*"))
    part.unlink()
    again = run_swap(cfg, tmp_path / "run")
    key = ["hybrid", "metric"]
    pd.testing.assert_frame_equal(df.sort_values(key).reset_index(drop=True),
                                  pd.read_parquet(again.path / "swap.parquet").sort_values(key).reset_index(drop=True))
    assert list((run.path / "figures").glob("swap_wikitext_*.png"))


@pytest.mark.integration
def test_finished_swap_run_resumes_without_loading_models(tiny_pair_dir, tmp_path, monkeypatch):
    import sftscope.swapping.pipeline as pipeline
    base, sft = tiny_pair_dir("llama")
    cfg = SwapConfig(base=str(base), sft=str(sft), data=["wikitext"], data_dir=str(SHARED_DATA), samples=4,
                     max_length=16, segments=2, tasks=False, directions=["base<-sft"], heads=["original"])
    run_swap(cfg.replace(plots=False), tmp_path / "run")
    monkeypatch.setattr(pipeline, "load_pair", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    assert not run_swap(cfg.replace(plots=False), tmp_path / "run").read_table("swap").empty


@pytest.mark.integration
def test_swap_task_scores_name_their_protocol(tiny_pair_dir, tmp_path):
    base, sft = tiny_pair_dir("llama")
    cfg = SwapConfig(base=str(base), sft=str(sft), data=["mmlu"], data_dir=str(SHARED_DATA), samples=4,
                     max_length=32, segments=2, task_limit=2, directions=["base<-sft"], heads=["original"],
                     plots=False)
    df = run_swap(cfg, tmp_path / "run").read_table("swap")
    protocols = df.groupby("metric")["protocol"].agg(set).to_dict()
    assert protocols["mmlu:acc"] == {"lm-eval:mmlu@2"} and protocols["mmlu:acc_macro"] == {"sftscope:mmlu-macro@1"}
    assert protocols["token_accuracy"] == {"sftscope:teacher-forced@1"}
