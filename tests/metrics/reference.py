"""Literal numpy transcriptions of the METRICS.md formulas, written independently of the package code."""

import numpy as np


def paper_entropy(lam, alpha=1.0):
    lam = np.maximum(lam, 1e-10)
    if lam.sum() < 1e-10:
        return 0.0
    p = lam / (lam.sum() + 1e-10)
    if alpha == 1.0:
        return float(-(p * np.log(p + 1e-10)).sum())
    return float(np.log((p ** alpha).sum() + 1e-10) / (1 - alpha))


def canonical_entropy(lam, alpha=1.0):
    lam = lam[lam > 0]
    p = lam / lam.sum()
    if alpha == 1.0:
        return float(-(p * np.log(p)).sum())
    return float(np.log((p ** alpha).sum()) / (1 - alpha))


def prompt_entropy(z, preset, alpha=1.0):
    t, d = z.shape
    if preset == "paper":
        zn = z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-10)
        k = zn @ zn.T / d + 1e-6 * np.eye(t)
        return paper_entropy(np.linalg.eigvalsh(k), alpha) / np.log(min(t, d))
    zc = z - z.mean(0)
    zn = zc / np.linalg.norm(zc, axis=1, keepdims=True)
    return canonical_entropy(np.linalg.eigvalsh(zn @ zn.T), alpha) / np.log(min(t, d))


def dataset_entropy(p, preset, alpha=1.0):
    n, d = p.shape
    if preset == "paper":
        pn = p / (np.linalg.norm(p, axis=1, keepdims=True) + 1e-10)
        if n <= d:
            lam = np.linalg.eigvalsh(pn @ pn.T / d + 1e-6 * np.eye(n))
        else:
            lam = np.linalg.svd(pn, compute_uv=False) ** 2
        return paper_entropy(lam, alpha) / np.log(min(n, d))
    pc = p - p.mean(0)
    pn = pc / np.linalg.norm(pc, axis=1, keepdims=True)
    return canonical_entropy(np.linalg.eigvalsh(pn @ pn.T), alpha) / np.log(min(n, d))


def curvature(z, preset):
    v = np.diff(z, axis=0)
    out = []
    for a, b in zip(v[:-1], v[1:]):
        if preset == "paper":
            c = np.clip(a @ b / (max(np.linalg.norm(a), 1e-8) * max(np.linalg.norm(b), 1e-8)), -0.999, 0.999)
        else:
            c = np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1)
        out.append(np.arccos(c))
    return float(np.mean(out) / np.pi)


def effective_rank_paper(p):
    s = np.linalg.svd(p, compute_uv=False)
    q = s ** 2 / (s ** 2 + 1e-9).sum()
    return float(np.exp(-(q * np.log(q + 1e-9)).sum()) / min(p.shape))


def hsic_unbiased(k, l):
    """Song et al. (2012), eq. 5: explicit N x N kernels with zeroed diagonals."""
    n = k.shape[0]
    k, l = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    one = np.ones(n)
    term = np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * (one @ k @ l @ one)
    return term / (n * (n - 3))


def cka_biased(x, y):
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    kc, lc = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float((kc * lc).sum() / (np.linalg.norm(kc) * np.linalg.norm(lc)))
