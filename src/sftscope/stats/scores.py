"""Uncertainty of task scores averaged over evaluation items and training seeds (the tuning sweep's statistics).

A configuration's score is the mean of x[s, i], item i's score (0/1 for accuracy-like metrics) of the model
trained with seed s. Every seed is scored on the same items, so seeds and items are crossed, and both are
samples: the seeds of the training randomness, the items of the task's population of questions. Under the
two-way random-effects model x[s, i] = mu + a_s + b_i + e_si (Searle, Casella & McCulloch 1992, "Variance
Components", sec. 4.5) the grand mean over S seeds and I items has variance

    Var(mean) = s2_seed / S + s2_item / I + s2_res / (S I),

estimated from the ANOVA mean squares MS_S = I var(seed means), MS_I = S var(item means) and the residual
MS_E, whose expectations are E[MS_S] = I s2_seed + s2_res, E[MS_I] = S s2_item + s2_res, E[MS_E] = s2_res:

    V = MS_S / (S I) + max(MS_I - MS_E, 0) / (S I) = var(seed means) / S + s2_item_hat / I,

i.e. the seeds-only variance of the mean (which already holds the residual item-by-seed noise) plus the item
component that every seed shares and a seeds-only interval therefore misses. Degrees of freedom: Satterthwaite
(1946) for that combination of mean squares. A paired comparison of two configurations applies the same to
d[s, i] = x_A[s, i] - x_B[s, i] on their common seeds and items (item effects common to both cancel).

The seed term is kept whole (MS_S, S - 1 df) rather than split into a seed component and a pooled residual:
with 3 seeds, replacing MS_S by the residual whenever the seed component looks small makes the t statistic
liberal: on the simulated sweeps of tests/stats/test_claims_calibration.py with moderate seed effects,
truncating the seed component at zero gave 6-8% false claims at a nominal 5%, an F pre-test at 0.25 deciding
the pooling 8-9%, where the form above stays at or below 5%.

Why not a bootstrap. A sweep has 3 seeds: a percentile bootstrap over 3 seed values has at most 10 distinct
resamples and its interval is about [min, max] of the three, which misses a zero mean difference 25% of the
time (2 x 0.5^3) when the seeds carry the noise. The estimator above is unbiased, its t quantile is the exact
seeds-only one when the seeds dominate (df -> S - 1) and close to normal when the items do;
tests/stats/test_claims_calibration.py measures its false-claim rate and power on simulated sweeps.

Guards. Scores on I items move in steps of 1/I, so a score's variance across seeds cannot be resolved below
Sheppard's rounding variance (1/I)^2 / 12 (Sheppard 1898): it is the floor of every proportion's variance here,
so identical seeds never give a zero-width interval or p = 0. p-values are floored at P_FLOOR (the float's
resolution). Proportion intervals are Wilson score intervals (Wilson 1927) at the effective sample size
n_eff = p (1 - p) / V (Kish's design effect; Korn & Graubard 1998 for the t quantile), so they stay in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

P_FLOOR = 1e-16  # smallest p-value reported: below it a double cannot tell the tail probability from 0
# shares of items besides the task metrics (those come from the task registry, where each task declares them)
OTHER_PROPORTIONS = frozenset({"token_accuracy", "lens_accuracy", "lens_top1_agreement"})


LOWER_IS_BETTER = ("perplexity", "ppl", "loss", "nll")  # words naming a metric where lower is better


def higher_is_better(metric: str) -> bool:
    """False for perplexity- and loss-like metrics (their names contain perplexity, ppl, loss or nll)."""
    return not any(word in str(metric).lower() for word in LOWER_IS_BETTER)


def is_proportion(metric: str) -> bool:
    """True for metrics that are a share of items (accuracy, exact match, rates; a per-kind breakdown such as
    'exact_match:kind' too), as the task registry declares them."""
    from sftscope.evaluation.tasks import proportion_metrics
    return str(metric).split(":")[0] in proportion_metrics() | OTHER_PROPORTIONS


@dataclass(frozen=True)
class MeanVariance:
    """Variance of a grand mean and what it rests on (arrays broadcast over leading replicate axes)."""

    mean: np.ndarray
    var: np.ndarray      # estimated variance of `mean`
    df: np.ndarray       # Satterthwaite degrees of freedom of `var`
    seeds: int
    items: int           # 1 when only one number per seed is known (seeds only)

    @property
    def basis(self) -> str:
        """What the uncertainty counts: 'seeds x items', 'seeds only', 'items only (1 seed)' or 'none'."""
        if self.seeds >= 2 and self.items >= 2:
            return "seeds x items"
        if self.seeds >= 2:
            return "seeds only"
        return "items only (1 seed)" if self.items >= 2 else "none"


def crossed_mean_variance(x, resolution: float | None = None, quantized: int = 1) -> MeanVariance:
    """Mean of x [..., S, I] over its last two axes and the variance of that mean (module docstring).

    x: scores of S seeds (rows) on the same I items (columns); leading axes are independent replicates (the
    calibration tests pass thousands of simulated sweeps at once). S = 1: items only (the seed variance is not
    estimable, df = I - 1); I = 1: seeds only (the sample variance over seeds, df = S - 1). `resolution`: the
    step of one seed's mean (1 / items for a proportion) whose Sheppard variance quantized x resolution^2 / 12 / S
    floors the result (`quantized` = 2 for a difference of two such scores; df = S - 1 where the floor decides).

    Raises:
        ValueError: x has fewer than 2 dimensions, no entries, or non-finite values.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ValueError(f"need scores shaped [..., seeds, items], got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores must be finite")
    S, I = x.shape[-2:]
    mean = x.mean(axis=(-2, -1))
    if S >= 2 and I >= 2:
        row, col = x.mean(-1), x.mean(-2)
        ms_s = I * row.var(-1, ddof=1)
        ms_i = S * col.var(-1, ddof=1)
        resid = x - row[..., :, None] - col[..., None, :] + mean[..., None, None]
        ms_e = (resid ** 2).sum(axis=(-2, -1)) / ((S - 1) * (I - 1))
        # the seeds-only variance of the mean plus the item component it misses (set to 0 when estimated < 0)
        c_i = (ms_i > ms_e).astype(float)
        total = ms_s + c_i * (ms_i - ms_e)
        var = total / (S * I)
        with np.errstate(divide="ignore", invalid="ignore"):
            df = total ** 2 / (ms_s ** 2 / (S - 1) + c_i * (ms_i ** 2 / (I - 1) + ms_e ** 2 / ((S - 1) * (I - 1))))
    elif S >= 2:
        var = x.mean(-1).var(-1, ddof=1) / S
        df = np.full(mean.shape, float(S - 1))
    elif I >= 2:
        var = x[..., 0, :].var(-1, ddof=1) / I
        df = np.full(mean.shape, float(I - 1))
    else:
        var, df = np.full(mean.shape, np.nan), np.full(mean.shape, np.nan)
    # rounding leaves ~1e-34 where the scores are identical: that is no variance
    scale = np.abs(x).max(axis=(-2, -1))
    var = np.where(var <= (1e-12 * np.maximum(scale, 1.0)) ** 2, 0.0, var)
    if resolution is not None and resolution > 0:
        floor = quantized * resolution ** 2 / 12 / S
        floored = ~(var >= floor)  # NaN (one seed, one item) is floored as well
        var = np.where(floored, floor, var)
        df = np.where(floored, float(max(S - 1, 1)), df)
    df = np.where(np.isfinite(df), np.maximum(df, 1.0), df)
    return MeanVariance(mean=mean, var=var, df=df, seeds=S, items=I)


def t_quantile(df, level: float = 0.95):
    """Two-sided Student t quantile t_{(1+level)/2, df} (normal where df is infinite)."""
    return stats.t.ppf((1 + level) / 2, df)


def mean_interval(mv: MeanVariance, level: float = 0.95, proportion: bool = False,
                  n_max: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of `mv.mean` at `level`: mean -+ t * sqrt(var), or for a proportion the Wilson score interval
    at n_eff = p (1 - p) / var (at most n_max, the number of item scores) with the t quantile in place of z;
    where p is 0 or 1 (or var is 0) the plain Wilson interval at n_max. Inside [0, 1] by construction.

    Raises:
        ValueError: level outside (0, 1).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    p, var = np.asarray(mv.mean, float), np.asarray(mv.var, float)
    q = t_quantile(mv.df, level)
    if not proportion:
        half = q * np.sqrt(var)
        return p - half, p + half
    n_max = float(n_max if n_max is not None else mv.seeds * mv.items)
    estimated = (var > 0) & (p > 0) & (p < 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_eff = np.where(estimated, p * (1 - p) / var, n_max)
    n = np.clip(np.where(np.isfinite(n_eff), n_eff, n_max), 1.0, n_max)
    # where nothing varies (all right or all wrong) Wilson's own binomial model at n_max decides, with z
    q = np.where(np.isfinite(q) & estimated, q, stats.norm.ppf((1 + level) / 2))
    denom = 1 + q ** 2 / n
    centre = (p + q ** 2 / (2 * n)) / denom
    half = q * np.sqrt(np.clip(p * (1 - p), 0, None) / n + q ** 2 / (4 * n ** 2)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def difference_test(mv: MeanVariance, level: float = 0.95, bounded: bool = False
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, p) of a mean difference `mv` (of paired d[s, i]): t interval and two-sided t-test of 0.

    p is NaN where the variance is 0 or undefined (the test does not exist; a proportion's variance is floored
    by `crossed_mean_variance(resolution=...)`, so that happens only for unbounded scores) and never below
    P_FLOOR. `bounded`: clip the interval to [-1, 1] (a difference of two proportions lies there)."""
    d, var = np.asarray(mv.mean, float), np.asarray(mv.var, float)
    se = np.sqrt(var)
    q = t_quantile(mv.df, level)
    low, high = d - q * se, d + q * se
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(se > 0, 2 * stats.t.sf(np.abs(d) / se, mv.df), np.nan)
    p = np.where(np.isfinite(p), np.maximum(p, P_FLOOR), np.nan)
    if bounded:
        low, high = np.clip(low, -1.0, 1.0), np.clip(high, -1.0, 1.0)
    return low, high, p


def score_grid(items, seeds=None) -> tuple[np.ndarray, list, list]:
    """Scores [S, I] from a mapping seed -> {item: score}, keeping the items every seed scored (sorted);
    returns (grid, seeds, items)."""
    seeds = sorted(items) if seeds is None else list(seeds)
    common = set.intersection(*(set(items[s]) for s in seeds)) if seeds else set()
    keys = sorted(common, key=str)
    return np.array([[items[s][k] for k in keys] for s in seeds], dtype=np.float64).reshape(len(seeds), len(keys)), \
        seeds, keys


def describe_basis(mv: MeanVariance) -> str:
    """'3 seeds x 116 items', '3 seeds (seeds only: no per-item scores)', ... for a claim's evidence."""
    seeds = f"{mv.seeds} seed{'s' if mv.seeds != 1 else ''}"
    if mv.basis == "seeds x items":
        return f"{seeds} x {mv.items} items"
    if mv.basis == "seeds only":
        return f"{seeds} (seeds only: no per-item scores)"
    if mv.basis.startswith("items only"):
        return f"1 seed x {mv.items} items (seed variance not estimable)"
    return seeds


def safe_float(x) -> float:
    """A numpy scalar or 0-d array as a float (NaN stays NaN)."""
    value = float(np.asarray(x))
    return value if math.isfinite(value) else math.nan
