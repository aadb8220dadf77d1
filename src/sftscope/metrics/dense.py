"""Dense float64 kernels of the metrics: batched Gram matrices and symmetric eigenvalues, on the data's device.

Accelerators run torch (cuBLAS, cuSOLVER). On the CPU both go through NumPy's BLAS and LAPACK (OpenBLAS in
its wheels): on the development machine (AMD EPYC) that ran 1.7x faster than torch's bundled MKL for the T x d
Grams, and LAPACK's symmetric eigenvalue drivers without vectors (dsyevd, dsyevr: both reduce to tridiagonal
form and call dsterf) agree to ~1e-14 relative. Both paths give each sample's values independently of the rest
of its batch.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from typing import Iterator

import numpy as np
import torch

CPU_LIBRARIES = True  # False: the CPU runs the accelerator path in torch (benchmarks count its ops that way)


def batched_gram(z: torch.Tensor, workers: int | None = None) -> torch.Tensor:
    """Z Z^T for z [B, T, d] -> [B, T, T], in z's dtype and on its device (one batched product; on the CPU
    through NumPy's BLAS, `workers` samples at a time with one BLAS thread each (None: torch's intra-op thread
    count). Multiplying only the blocks on and above the diagonal, or dsyrk, ran slower there)."""
    if z.device.type != "cpu" or not CPU_LIBRARIES:
        return torch.bmm(z, z.transpose(1, 2))
    x = z.detach().numpy()
    out = np.empty((x.shape[0], x.shape[1], x.shape[1]), dtype=x.dtype)

    def one(i: int) -> None:
        np.matmul(x[i], x[i].T, out=out[i])

    _host_map(one, list(range(x.shape[0])), workers)
    return torch.from_numpy(out)


def eigvalsh(mats: torch.Tensor, workers: int | None = None) -> torch.Tensor:
    """Eigenvalues, ascending, of symmetric matrices [..., n, n] -> [..., n], on the matrices' device (on the CPU
    `workers` matrices at a time; None: torch's intra-op thread count).

    Raises:
        torch.linalg.LinAlgError / ValueError: the decomposition failed (non-finite input).
    """
    n = mats.shape[-1]
    if not _host_route(mats) or n == 0:
        return torch.linalg.eigvalsh(mats)
    flat = mats.detach().reshape(-1, n, n).numpy()
    values = _host_eigvalsh(list(flat), workers)
    out = np.stack(values) if values else np.empty((0, n))
    return torch.from_numpy(out).reshape(mats.shape[:-1])


def eigvalsh_blocks(mats: torch.Tensor, sizes: torch.Tensor, fill: float = -1.0,
                    workers: int | None = None) -> torch.Tensor:
    """Eigenvalues of each matrix's leading block: mats [B, W, W] symmetric, zero outside the leading
    sizes[i] x sizes[i] block, sizes [B] int -> [B, W], row i ascending: `fill` in the first W - sizes[i]
    columns, the block's eigenvalues in the last sizes[i]. `fill` must lie below every block eigenvalue.

    Accelerators decompose the whole padded batch in one call, with `fill` on the padding diagonal (a
    block-diagonal matrix: its spectrum is the block's plus `fill` W - sizes[i] times), so the number of
    launches does not grow with the batch. The CPU decomposes only each block (cost sizes[i]^3, not W^3), on
    `workers` threads (None: torch's intra-op thread count).

    Raises:
        torch.linalg.LinAlgError / ValueError: the decomposition failed (non-finite input).
    """
    b, w, _ = mats.shape
    if not _host_route(mats):
        pad = torch.arange(w, device=mats.device)[None, :] >= sizes.to(mats.device)[:, None]
        mats = mats.clone()
        mats.diagonal(dim1=-2, dim2=-1).add_(torch.where(pad, fill, 0.0).to(mats.dtype))
        return torch.linalg.eigvalsh(mats)
    host = mats.detach().numpy()
    counts = [int(n) for n in sizes.tolist()]
    out = np.full((b, w), fill, dtype=np.float64)
    values = _host_eigvalsh([host[i, :n, :n] for i, n in enumerate(counts) if n > 0], workers)
    for i, lam in zip([i for i, n in enumerate(counts) if n > 0], values):
        out[i, w - counts[i]:] = lam
    return torch.from_numpy(out)


def _host_route(mats: torch.Tensor) -> bool:
    """Whether these matrices take the CPU's NumPy route (float64 on the CPU) rather than torch's."""
    return mats.device.type == "cpu" and CPU_LIBRARIES and mats.dtype == torch.float64


_MAX_WORKERS = max(os.cpu_count() or 1, 1)


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_MAX_WORKERS, thread_name_prefix="sftscope-dense")


def _host_eigvalsh(mats: list[np.ndarray], workers: int | None = None) -> list[np.ndarray]:
    """Eigenvalues of float64 symmetric matrices on the CPU (LAPACK dsyevd through NumPy, no vectors).

    Raises:
        ValueError: a matrix has non-finite entries.
    """
    for m in mats:
        if not np.isfinite(m).all():
            raise ValueError("eigvalsh: the matrix has non-finite entries")
    values: list = [None] * len(mats)

    def one(i: int) -> None:
        values[i] = np.linalg.eigvalsh(mats[i])

    # the largest first, so that no thread is left alone with a big matrix at the end
    _host_map(one, sorted(range(len(mats)), key=lambda i: -mats[i].shape[0]), workers)
    return values


def _host_map(work, items: list, workers: int | None) -> None:
    """Run work(item) for every item, `workers` at a time (None: torch's intra-op thread count), one BLAS thread
    each. A 512 x 512 tridiagonal reduction or a 512 x 2048 Gram gains little from a second BLAS thread, and
    NumPy releases the GIL inside BLAS and LAPACK: on the 2-core development machine, at the OLMo-2-1B shape,
    two at a time made the Grams and decompositions of a batch 1.8x faster than one at a time on one thread,
    and 512 x 512 decompositions 1.3x faster than one at a time on two BLAS threads, without a pool that
    spin-waits for a busy core. Each item's result does not depend on the others."""
    workers = min(workers or torch.get_num_threads(), len(items), _MAX_WORKERS)
    if workers <= 1:
        for item in items:
            work(item)
        return
    controller = _controller()
    limit = controller.limit(limits=1, user_api="blas") if controller is not None else nullcontext()
    with limit:
        for future in [_pool().submit(work, item) for item in items]:
            future.result()  # re-raises a worker's exception here


@lru_cache(maxsize=1)
def _controller():
    """threadpoolctl's view of the BLAS libraries NumPy and SciPy loaded (None without threadpoolctl)."""
    import scipy.linalg  # noqa: F401  (load SciPy's BLAS before looking for it)

    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


@contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """Limit torch's intra-op threads and NumPy / SciPy's BLAS threads to `count` (None: leave them)."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    controller = _controller()
    try:
        if controller is None:
            yield
        else:
            with controller.limit(limits=count, user_api="blas"):
                yield
    finally:
        torch.set_num_threads(before)
