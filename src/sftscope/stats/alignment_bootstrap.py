"""Fast bootstrap intervals for the Base-vs-variant alignment curves (CKA, cosine similarity, mean shift).

The generic `bootstrap_ci` recomputes a metric from the raw N x d matrices per replicate; for every layer of a
large model that is O(n_boot N^2 d). Here the Gram matrices are formed once per layer, so a CKA replicate is
O(N^2) (index, centre, contract), a cosine replicate O(N) and a mean-shift replicate O(N d). The values on
the full sample equal `sftscope.metrics.cka / cosine_similarity / mean_shift`. CKA intervals use the
bias-corrected percentile method because duplicated rows in a resample push biased CKA upward.
"""

from __future__ import annotations

import numpy as np
import torch

from sftscope.stats.uncertainty import interval_from_replicates

ALIGNMENT_CI_METRICS = ("cka", "cosine_similarity", "mean_shift")


def _centered_gram(gram: torch.Tensor) -> torch.Tensor:
    return gram - gram.mean(0, keepdim=True) - gram.mean(1, keepdim=True) + gram.mean()


def _cka_from_grams(gx: torch.Tensor, gy: torch.Tensor) -> float:
    kc, lc = _centered_gram(gx), _centered_gram(gy)
    return float((kc * lc).sum() / (kc.norm() * lc.norm()))


def alignment_bootstrap(X, Y, n_boot: int = 200, level: float = 0.95, seed: int = 0
                        ) -> dict[str, tuple[float, float, float]]:
    """{metric: (estimate, low, high)} for row-aligned X (Base), Y (variant) [N, d], resampling samples."""
    x = torch.as_tensor(np.asarray(X) if not torch.is_tensor(X) else X).double()
    y = torch.as_tensor(np.asarray(Y) if not torch.is_tensor(Y) else Y).double()
    gx, gy = x @ x.T, y @ y.T
    cos = (x * y).sum(1) / (x.norm(dim=1).clamp_min(1e-8) * y.norm(dim=1).clamp_min(1e-8))
    diff = y - x
    estimates = {"cka": _cka_from_grams(gx, gy), "cosine_similarity": float(cos.mean()),
                 "mean_shift": float(diff.mean(0).norm())}
    rng = np.random.default_rng(seed)
    boot = {m: np.empty(n_boot) for m in ALIGNMENT_CI_METRICS}
    n = len(x)
    for b in range(n_boot):
        idx = torch.as_tensor(rng.integers(0, n, size=n))
        boot["cka"][b] = _cka_from_grams(gx[idx][:, idx], gy[idx][:, idx])
        boot["cosine_similarity"][b] = float(cos[idx].mean())
        boot["mean_shift"][b] = float(diff[idx].mean(0).norm())
    out = {}
    for metric, values in boot.items():
        values = values[np.isfinite(values)]
        method = "bc" if metric == "cka" else "percentile"
        out[metric] = (estimates[metric], *interval_from_replicates(estimates[metric], values, level, method))
    return out
