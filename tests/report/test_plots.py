import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from sftscope.report.plots.analysis import plot_analysis

pytestmark = pytest.mark.integration  # draws every analysis figure (seconds)


def _table(with_ci=False):
    rows = []
    for dataset in ("gsm8k", "mmlu"):
        for side in ("base", "sft", "dpo"):
            for layer in range(7):
                for preset in ("paper", "canonical"):
                    for metric in ("prompt_entropy", "effective_rank", "condition_number"):
                        value = math.inf if metric == "condition_number" and layer == 3 else layer * 0.1
                        rows.append(dict(run="r", side=side, dataset=dataset, layer=layer, metric=metric,
                                         preset=preset, mode="value", value=value, n=10))
                    if side != "base":
                        for metric in ("cka", "cka_debiased", "cosine_similarity", "mean_shift"):
                            rows.append(dict(run="r", side=side, dataset=dataset, layer=layer, metric=metric,
                                             preset=preset, mode="alignment", value=1 - layer * 0.05, n=10))
                        rows.append(dict(run="r", side=side, dataset=dataset, layer=layer, metric="prompt_entropy",
                                         preset=preset, mode="sample_diff", value=layer * 0.01, n=10))
            rows.append(dict(run="r", side=side, dataset=dataset, layer=1, metric="nonfinite_values", preset="",
                             mode="diagnostic", value=0.0, n=0))
    df = pd.DataFrame(rows)
    if with_ci:
        df["ci_low"], df["ci_high"] = df["value"] - 0.02, df["value"] + 0.02
    return df


def test_plot_analysis_writes_one_readable_png_per_figure(tmp_path):
    paths = plot_analysis(_table(), tmp_path)
    names = sorted(p.name for p in paths)
    expected = {f"{m}__{d}.png" for m in ("prompt_entropy", "effective_rank", "condition_number")
                for d in ("gsm8k", "mmlu")}
    expected |= {"overview__paper.png", "overview__canonical.png", "alignment__gsm8k.png", "alignment__mmlu.png"}
    expected |= {f"differences__{d}__{p}.png" for d in ("gsm8k", "mmlu") for p in ("paper", "canonical")}
    assert set(names) == expected
    for p in paths:
        image = imread(p)
        assert image.shape[0] > 200 and image.shape[1] > 300
        assert np.ptp(image[..., :3]) > 0  # not a blank canvas


def test_confidence_bands_and_empty_table(tmp_path):
    df = _table(with_ci=True)
    df = df[(df["dataset"] == "gsm8k") & (df["preset"] == "paper") & (df["mode"] == "value")]
    assert len(plot_analysis(df, tmp_path / "ci")) == 3 + 1  # three metric figures and the overview
    assert plot_analysis(_table().iloc[0:0], tmp_path / "empty") == []
