"""Sampling uncertainty of layer metrics on pooled matrices: bootstrap intervals and a split-half robustness test.

Inputs are pooled matrices X (Base) and Y (SFT), N x d (numpy or torch), row i of both = sample i. A metric is
any `metric_fn(X, Y) -> float` on row-aligned matrices (CKA, cosine similarity, mean shift, or a dataset-level
difference such as `lambda X, Y: erank(Y) - erank(X)`).

Duplicated rows. A with-replacement resample holds only ~63% distinct rows, the rest repeated. Metrics that
are biased in the number of samples move with it: biased linear CKA rises as the effective N falls (CKA of
unrelated data is ~0.8-0.95 when N << d), and the debiased HSIC counts a repeated pair as two independent
samples, so both shift upward on resamples and the percentile interval can sit above the full-sample estimate.
`method="bc"` (bias-corrected percentile, Efron 1981) re-centres the interval on the estimate by the
bootstrap's own median bias; it is the sensible choice for CKA with N not much larger than d. The shift
(bootstrap mean - estimate) is returned by `bootstrap_distribution` so it can be reported.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
from scipy import stats

from sftscope.errors import SftscopeError

MetricFn = Callable[[Any, Any], float]


def _take(M: Any, idx: np.ndarray) -> Any:
    """Rows idx of a numpy array or torch tensor (same type back)."""
    if hasattr(M, "index_select"):  # torch
        import torch

        return M.index_select(0, torch.as_tensor(idx, device=M.device))
    return np.asarray(M)[idx]


def _check_pair(X: Any, Y: Any, minimum: int) -> int:
    if len(X) != len(Y):
        raise SftscopeError(f"X and Y must have the same rows (samples in the same order): {len(X)} vs {len(Y)}")
    if len(X) < minimum:
        raise SftscopeError(f"need at least {minimum} samples, got {len(X)}")
    return len(X)


def bootstrap_distribution(X: Any, Y: Any, metric_fn: MetricFn, n_boot: int = 1000, seed: int = 0
                           ) -> tuple[float, np.ndarray]:
    """(metric on all N rows, metric on n_boot paired resamples of the rows [n_boot]); X, Y: N x d."""
    n = _check_pair(X, Y, 2)
    rng = np.random.default_rng(seed)
    estimate = float(metric_fn(X, Y))
    boot = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, size=n)  # the same rows for X and Y: the pairing is kept
        boot[b] = float(metric_fn(_take(X, idx), _take(Y, idx)))
    finite = np.isfinite(boot)
    if not finite.all():
        warnings.warn(f"{(~finite).sum()} of {n_boot} bootstrap replicates were not finite and are dropped",
                      stacklevel=2)
    return estimate, boot[finite]


def bootstrap_ci(X: Any, Y: Any, metric_fn: MetricFn, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                 method: str = "percentile") -> tuple[float, float, float]:
    """(estimate, low, high) of metric_fn(X, Y) for row-aligned X, Y (N x d) by resampling samples (rows).

    method "percentile": the (1-level)/2 and (1+level)/2 quantiles of the bootstrap replicates.
    method "bc": bias-corrected percentile (Efron 1981): z0 = Phi^-1(share of replicates below the estimate),
    quantiles Phi(2 z0 +- z_{(1+level)/2}); equals "percentile" when the replicates are median-unbiased.
    The same seed draws the same resamples, so intervals of different layers use the same samples.
    """
    if not 0 < level < 1:
        raise SftscopeError(f"level must be in (0, 1), got {level}")
    if method not in ("percentile", "bc"):
        raise SftscopeError(f"unknown bootstrap method {method!r}; use percentile or bc")
    estimate, boot = bootstrap_distribution(X, Y, metric_fn, n_boot, seed)
    return (estimate, *interval_from_replicates(estimate, boot, level, method))


def interval_from_replicates(estimate: float, boot: np.ndarray, level: float = 0.95,
                             method: str = "percentile") -> tuple[float, float]:
    """(low, high) of a bootstrap distribution: plain or bias-corrected ("bc") percentile interval."""
    if len(boot) < 2:
        raise SftscopeError("fewer than 2 finite bootstrap replicates: the metric is undefined on resamples")
    alpha = (1 - level) / 2
    quantiles = np.array([alpha, 1 - alpha])
    if method == "bc":
        below = (np.sum(boot < estimate) + 0.5 * np.sum(boot == estimate)) / len(boot)
        below = np.clip(below, 0.5 / len(boot), 1 - 0.5 / len(boot))  # keeps z0 finite
        z0 = stats.norm.ppf(below)
        quantiles = stats.norm.cdf(2 * z0 + stats.norm.ppf(quantiles))
    low, high = np.quantile(boot, quantiles)
    return float(low), float(high)


_CHANGE = {  # metric value -> "amount of change" (larger = the two matrices differ more)
    "similarity": lambda v: -v,     # CKA, cosine similarity
    "distance": lambda v: v,        # mean shift, relative mean shift
    "difference": lambda v: abs(v),  # f(Y) - f(X) of a single-model metric
}


def split_robustness(X_base: Any, Y_sft: Any, metric_fn: MetricFn, n_splits: int = 20, seed: int = 0,
                     kind: str = "similarity") -> dict[str, Any]:
    """Is the Base-vs-SFT change of a layer larger than the change from swapping the samples? X, Y: N x d.

    Design. Split s (s = 0..n_splits-1, its own seed) permutes the rows and cuts two disjoint halves A, B of
    h = N // 2 rows. On the same halves:
      cross_s = mean(c(f(X_A, Y_A)), c(f(X_B, Y_B)))   Base vs SFT on the same samples
      null_s  = mean(c(f(X_A, X_B)), c(f(Y_A, Y_B)))   Base vs Base and SFT vs SFT on disjoint samples
    where c turns the metric into an amount of change (`kind`: similarity -> -v, distance -> v,
    difference -> |v|). The null is what the metric shows when the model is held fixed and only the
    inputs change (rows of A and B are paired by position, an arbitrary pairing). Excess e_s = cross_s -
    null_s; H1 (one-sided): E[e] > 0. The halves of different splits overlap, so the e_s are correlated and
    a plain t-test over splits would be anti-conservative (p -> 0 as n_splits grows); the p-value is the
    corrected resampled t-test (Nadeau & Bengio 2003): t = mean(e) / sqrt((1/J + n_B/n_A) var(e)), n_B/n_A = 1,
    df = J - 1. Welch's t and Mann-Whitney U of cross vs null are also returned, uncorrected, for reference.
    Reading: for mean shift and dataset-level differences the null is the sampling-noise floor, so a small p
    says the SFT effect exceeds sampling noise. For per-sample alignment (CKA, cosine) the null is the
    different-inputs (chance) level, so a small p says SFT moved the layer further than changing its inputs
    would: a strict criterion; use `bootstrap_ci` for their sampling uncertainty.
    """
    if kind not in _CHANGE:
        raise SftscopeError(f"unknown kind {kind!r}; use one of {', '.join(_CHANGE)}")
    if n_splits < 2:
        raise SftscopeError("split_robustness needs n_splits >= 2")
    n = _check_pair(X_base, Y_sft, 4)
    half = n // 2
    change = _CHANGE[kind]
    cross, null = np.empty(n_splits), np.empty(n_splits)
    for s in range(n_splits):
        perm = np.random.default_rng([seed, s]).permutation(n)
        a, b = perm[:half], perm[half:2 * half]
        xa, xb, ya, yb = _take(X_base, a), _take(X_base, b), _take(Y_sft, a), _take(Y_sft, b)
        cross[s] = (change(float(metric_fn(xa, ya))) + change(float(metric_fn(xb, yb)))) / 2
        null[s] = (change(float(metric_fn(xa, xb))) + change(float(metric_fn(ya, yb)))) / 2
    excess = cross - null
    t_corrected, p_corrected = _corrected_resampled_t(excess, test_over_train=1.0)
    with warnings.catch_warnings():  # identical splits (e.g. X == Y) make the naive tests degenerate, not wrong
        warnings.simplefilter("ignore", RuntimeWarning)
        welch = stats.ttest_ind(cross, null, equal_var=False, alternative="greater")
        mwu = stats.mannwhitneyu(cross, null, alternative="greater")
    return {
        "estimate": float(metric_fn(X_base, Y_sft)), "kind": kind, "n": n, "n_half": half, "n_splits": n_splits,
        "cross": cross, "null": null, "cross_mean": float(cross.mean()), "null_mean": float(null.mean()),
        "excess_mean": float(excess.mean()), "t": t_corrected, "p_value": p_corrected,
        "welch_t": float(welch.statistic), "welch_p": float(welch.pvalue),
        "mannwhitney_u": float(mwu.statistic), "mannwhitney_p": float(mwu.pvalue),
        "design": "disjoint halves; cross = Base-vs-SFT same samples, null = within-model different samples; "
                  "one-sided corrected resampled t (Nadeau & Bengio 2003)",
    }


def _corrected_resampled_t(excess: np.ndarray, test_over_train: float) -> tuple[float, float]:
    """One-sided (mean > 0) Nadeau-Bengio t statistic and p-value for J correlated resampling differences."""
    j = len(excess)
    mean, var = float(excess.mean()), float(excess.var(ddof=1))
    if var == 0:  # every split agrees exactly: only the sign of the mean is left
        if mean == 0:
            return 0.0, 0.5
        return (np.inf, 0.0) if mean > 0 else (-np.inf, 1.0)
    t = mean / np.sqrt((1 / j + test_over_train) * var)
    return float(t), float(stats.t.sf(t, df=j - 1))


def cluster_ratio_interval(numerators, denominators, n_boot: int = 200, level: float = 0.95, seed: int = 0
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval (low [k], high [k]) of the ratios sum_j num[k, j] / sum_j den[j].

    numerators [k, N] and denominators [N] are per-cluster totals (e.g. correct predictions per layer and
    predicted tokens of each of N samples). Clusters are resampled with replacement, so the tokens of one
    sample move together (their correlation is kept; a binomial interval over tokens would be too narrow).
    The same resamples serve every row k. Replicates whose denominator is 0 are dropped.

    Raises:
        SftscopeError: shapes that do not match, fewer than 2 clusters, level outside (0, 1), or fewer than 2
            usable replicates.
    """
    num = np.atleast_2d(np.asarray(numerators, dtype=np.float64))
    den = np.asarray(denominators, dtype=np.float64).reshape(-1)
    if num.shape[1] != den.size:
        raise SftscopeError(f"numerators [k, N] and denominators [N] disagree: {num.shape} vs {den.shape}")
    if den.size < 2:
        raise SftscopeError("a cluster bootstrap needs at least 2 clusters")
    if not 0 < level < 1:
        raise SftscopeError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(den.size, np.full(den.size, 1.0 / den.size), size=n_boot).astype(np.float64)
    totals = counts @ den                       # [B]
    keep = totals > 0
    if keep.sum() < 2:
        raise SftscopeError("fewer than 2 bootstrap replicates with a non-zero denominator")
    ratios = (counts[keep] @ num.T) / totals[keep, None]  # [B, k]
    alpha = (1 - level) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha], axis=0)
    return low, high
