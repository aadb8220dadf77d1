"""Dense float64 kernels of the metrics: batched Gram matrices and symmetric eigenvalues, on the data's device.

Accelerators run torch (cuBLAS, cuSOLVER). On the CPU both go through NumPy's BLAS and LAPACK (OpenBLAS in
its wheels): on the development machine (AMD EPYC) that ran 1.7x faster than torch's bundled MKL for the T x d
Grams, and LAPACK's symmetric eigenvalue drivers without vectors (dsyevd, dsyevr: both reduce to tridiagonal
form and call dsterf) agree to ~1e-14 relative. Both paths give each sample's values independently of the rest
of its batch.

Eigenvalues of matrices held on an accelerator go where an `EigenRouter` says: the device, the host's CPU
threads, or (`auto`) both at once. A 512 x 512 eigenvalue decomposition is a poor fit for a GPU: its reduction
to tridiagonal form is a sequence of matrix-vector steps, and torch's CUDA eigvalsh calls cuSOLVER once per
matrix above n = 32 (a batched Jacobi solver exists only below that), so each call is bound by launch latency
and memory traffic, while LAPACK on one CPU core takes ~19 ms (development machine). `auto` sends part of each
call's matrices to host threads while the device decomposes the rest, sized from both routes' measured speed
so that they finish together: the host's otherwise idle cores then take work the GPU would do between forward
passes.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
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


def eigvalsh(mats: torch.Tensor, workers: int | None = None, router: "EigenRouter | None" = None,
             pressure: float = 1.0) -> torch.Tensor:
    """Eigenvalues, ascending, of symmetric matrices [..., n, n] -> [..., n], on the matrices' device (on the CPU
    `workers` matrices at a time; None: torch's intra-op thread count). On an accelerator `router` says where
    they are computed (None: on the device), given the caller's back-pressure (`EigenRouter.split`).

    Raises:
        torch.linalg.LinAlgError / ValueError: the decomposition failed (non-finite input).
    """
    n = mats.shape[-1]
    if n == 0:
        return torch.linalg.eigvalsh(mats)
    if not host_route(mats):
        if router is None:
            return torch.linalg.eigvalsh(mats)
        flat = mats.reshape(-1, n, n)
        sizes = torch.full((flat.shape[0],), n, dtype=torch.int64, device=mats.device)
        return _routed(flat, sizes, 0.0, router, pressure).reshape(mats.shape[:-1])
    flat = mats.detach().reshape(-1, n, n).numpy()
    values = _host_eigvalsh(list(flat), workers)
    out = np.stack(values) if values else np.empty((0, n))
    return torch.from_numpy(out).reshape(mats.shape[:-1])


def eigvalsh_blocks(mats: torch.Tensor, sizes: torch.Tensor, fill: float = -1.0,
                    workers: int | None = None, router: "EigenRouter | None" = None,
                    pressure: float = 1.0) -> torch.Tensor:
    """Eigenvalues of each matrix's leading block: mats [B, W, W] symmetric, zero outside the leading
    sizes[i] x sizes[i] block, sizes [B] int -> [B, W], row i ascending: `fill` in the first W - sizes[i]
    columns, the block's eigenvalues in the last sizes[i]. `fill` must lie below every block eigenvalue.

    Accelerators decompose the padded matrices in one call, with `fill` on the padding diagonal (a
    block-diagonal matrix: its spectrum is the block's plus `fill` W - sizes[i] times), so the number of
    launches does not grow with the batch; with a `router` (not in `device` mode) part or all of them go to
    host threads instead, each block alone. The CPU decomposes only each block (cost sizes[i]^3, not W^3), on
    `workers` threads (None: torch's intra-op thread count).

    Raises:
        torch.linalg.LinAlgError / ValueError: the decomposition failed (non-finite input).
    """
    b, w, _ = mats.shape
    if not host_route(mats):
        if router is None:
            return _device_padded(mats, sizes, fill)
        return _routed(mats, sizes, fill, router, pressure)
    host = mats.detach().numpy()
    counts = [int(n) for n in sizes.tolist()]
    out = np.full((b, w), fill, dtype=np.float64)
    values = _host_eigvalsh([host[i, :n, :n] for i, n in enumerate(counts) if n > 0], workers)
    for i, lam in zip([i for i, n in enumerate(counts) if n > 0], values):
        out[i, w - counts[i]:] = lam
    return torch.from_numpy(out)


def _device_padded(mats: torch.Tensor, sizes: torch.Tensor, fill: float) -> torch.Tensor:
    """One torch eigvalsh of the padded matrices [B, W, W], `fill` on the padding diagonal -> [B, W]."""
    w = mats.shape[-1]
    pad = torch.arange(w, device=mats.device)[None, :] >= sizes.to(mats.device)[:, None]
    mats = mats.clone()
    mats.diagonal(dim1=-2, dim2=-1).add_(torch.where(pad, fill, 0.0).to(mats.dtype))
    return torch.linalg.eigvalsh(mats)


# -- routing between the device and the host ---------------------------------------------------------------------
EIGEN_ROUTES = ("auto", "device", "host")


class EigenRouter:
    """Where the eigenvalue decompositions of matrices held on an accelerator run, call by call.

    Modes: `device` (torch, cuSOLVER), `host` (copied to the CPU; LAPACK through NumPy on `workers` threads, one
    BLAS thread each) or `auto`, which decides per call how many of the call's matrices (largest first) the
    host takes, from running estimates of each route's speed (exponential moving averages of seconds per n^3 of
    work: per host thread for the host, per padded matrix for the device) and the caller's back-pressure:
      * the fastest split for the call is the one whose host and device shares finish together;
      * while the caller keeps up (`pressure`, the recent fraction of submissions that found the metric queue
        full, stays low) the device is what limits the run (it also runs the forward passes), so the host's
        share grows call by call past the fastest split, moving work onto otherwise idle CPU cores;
      * once the caller falls behind, the call gets the fastest split, and the extra share is halved.
    The run thus settles where the host takes what it can absorb without holding up the forward passes (the
    balance `benchmarks/engine_cost.py` projects). Each route's first call is warm-up and not counted; a route
    left without work is probed with one matrix every `probe_every` calls. Several threads (e.g. the Base's
    and the SFT's metric threads) may share one router and its `workers` host threads. Both routes are
    backward-stable float64 solvers: a value differs between them by ~1e-14 relative (run with `device` or
    `host` for runs that repeat to the last bit).

    Raises (constructor):
        ValueError: an unknown mode or a workers count below 1.
    """

    def __init__(self, mode: str = "auto", workers: int | None = None, probe_every: int = 32, smoothing: float = 0.25,
                 pressure_limit: float = 0.1):
        if mode not in EIGEN_ROUTES:
            raise ValueError(f"eigen route must be one of {', '.join(EIGEN_ROUTES)}, not {mode!r}")
        if workers is not None and workers < 1:
            raise ValueError(f"host workers must be at least 1, not {workers}")
        self.mode = mode
        self.workers = workers or host_workers()
        self.probe_every, self.smoothing = int(probe_every), float(smoothing)
        self.pressure_limit = float(pressure_limit)
        self._share = 0.5  # the host's share of a call's matrices while the caller keeps up
        self._lock = threading.Lock()
        self._rate: dict[str, float | None] = {"device": None, "host": None}  # seconds per unit (n^3)
        self._warm = {"device": False, "host": False}
        self._idle = {"device": 0, "host": 0}  # calls since the route last got work
        self.matrices = {"device": 0, "host": 0}
        self.seconds = {"device": 0.0, "host": 0.0}  # wall seconds on the calling threads / summed host threads
        self._pool: ThreadPoolExecutor | None = None

    def pool(self) -> ThreadPoolExecutor:
        """The router's own `workers` host threads: every caller sharing this router shares them, so several
        metric threads together never run more than `workers` decompositions at once."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sftscope-eig")
            return self._pool

    def split(self, units: list[float], padded_unit: float, pressure: float = 1.0) -> int:
        """How many of a call's matrices the host takes: units [B] are the host costs (n_i^3, in the order the
        host would take them: largest first), padded_unit the device's cost per matrix (W^3), pressure in [0, 1]
        the caller's back-pressure (1: always the fastest split). -> k in 0..B."""
        b = len(units)
        if self.mode != "auto" or b == 0:
            return b if self.mode == "host" else 0
        with self._lock:
            host, device = self._rate["host"], self._rate["device"]
            if host is None or device is None:  # still measuring: give the unmeasured route(s) work
                k = max(1, b // 2) if host is None else (b - max(1, b // 2) if b > 1 else 0)
            else:
                best = None
                for j in range(b + 1):
                    h = host * sum(units[:j]) / min(j, self.workers) if j else 0.0
                    h = max(h, host * max(units[:j], default=0.0))  # one matrix is one thread's work
                    t = max(h, device * padded_unit * (b - j))
                    if best is None or t < best[0]:
                        best = (t, j)
                fastest = best[1]
                if pressure > self.pressure_limit:  # the metric work is behind: the fastest split, and half the
                    self._share = max(fastest / b, self._share / 2)  # extra share when it has caught up
                    k = fastest
                else:  # the device limits the run: move more onto the host, a little each call
                    self._share = min(1.0, self._share + 0.05)
                    k = max(fastest, min(b, round(self._share * b)))
                if b > 1 and k == 0 and self._idle["host"] + 1 >= self.probe_every:
                    k = 1
                elif b > 1 and k == b and self._idle["device"] + 1 >= self.probe_every:
                    k = b - 1
            self._idle["host"] = 0 if k else self._idle["host"] + 1
            self._idle["device"] = 0 if k < b else self._idle["device"] + 1
        return k

    def observe(self, route: str, matrices: int, units: float, seconds: float) -> None:
        """Record that `route` decomposed `matrices` matrices of `units` work (n^3 summed; padded on the device)
        in `seconds` (the host: summed over its threads; the device: wall time of the call)."""
        with self._lock:
            self.matrices[route] += matrices
            self.seconds[route] += seconds
            if not self._warm[route]:
                self._warm[route] = True
                return
            rate = seconds / max(units, 1.0)
            old = self._rate[route]
            self._rate[route] = rate if old is None else (1 - self.smoothing) * old + self.smoothing * rate

    def summary(self) -> dict:
        """Matrices and seconds per route, and the current speed estimates (seconds per 512^3 of work)."""
        with self._lock:
            per = {r: None if v is None else v * 512 ** 3 for r, v in self._rate.items()}
            return {"mode": self.mode, "host_workers": self.workers, "matrices": dict(self.matrices),
                    "seconds": dict(self.seconds), "seconds_per_512_cubed": per}

    def describe(self) -> str:
        """One line for the log: where the decompositions ran and how fast."""
        s = self.summary()
        parts = []
        for route in ("device", "host"):
            n = s["matrices"][route]
            rate = s["seconds_per_512_cubed"][route]
            speed = f", {rate * 1e3:.2f} ms per 512x512" if rate is not None else ""
            where = f" ({self.workers} threads{speed})" if route == "host" else (f" ({speed[2:]})" if speed else "")
            parts.append(f"{route} {n}{where}")
        return f"eigenvalue decompositions ({s['mode']}): " + ", ".join(parts)


@lru_cache(maxsize=None)
def router(mode: str = "auto") -> EigenRouter:
    """The process's router for `mode` (shared by every accumulator of the process, so estimates are shared).

    Raises:
        ValueError: an unknown mode.
    """
    return EigenRouter(mode)


def host_workers() -> int:
    """Host threads for decompositions routed off an accelerator: this process's share of the cores it may run on
    (the cores divided among the processes of a torchrun / accelerate node, $LOCAL_WORLD_SIZE), less two for
    the thread that drives the device and a metric thread; at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, cores // local - 2)


def _routed(mats: torch.Tensor, sizes: torch.Tensor, fill: float, router: EigenRouter,
            pressure: float = 1.0) -> torch.Tensor:
    """eigvalsh_blocks of accelerator-held matrices split by `router` between the device and host threads (run
    at the same time: the host's share is submitted first). Waits for the device (a metric thread's work)."""
    b, w, _ = mats.shape
    device = mats.device
    counts = [int(n) for n in sizes.tolist()]
    order = sorted(range(b), key=lambda i: -counts[i])
    k = router.split([float(counts[i]) ** 3 for i in order], float(w) ** 3, pressure)
    host_rows = [i for i in order[:k] if counts[i] > 0]
    device_rows = sorted(order[k:])
    pending: Future | None = None
    if host_rows:
        index = torch.tensor(host_rows, device=device)
        host = mats.index_select(0, index).to("cpu", torch.float64).numpy()
        blocks = [host[j, :counts[i], :counts[i]] for j, i in enumerate(host_rows)]
        spent: list[float] = []
        pending = _coordinator().submit(_host_eigvalsh, blocks, router.workers, router.pool(), spent)
    out = torch.full((b, w), fill, dtype=mats.dtype, device=device)
    if device_rows:
        # time the decompositions, not the forward work queued before them (the device's time estimate is per
        # matrix); the host share's copy above already waited for that queue, so this wait costs little
        _synchronize(device)
        start = time.perf_counter()
        if len(device_rows) == b:
            values = _device_padded(mats, sizes, fill)
        else:
            index = torch.tensor(device_rows, device=device)
            values = _device_padded(mats.index_select(0, index), sizes.to(device).index_select(0, index), fill)
        _synchronize(device)
        router.observe("device", len(device_rows), len(device_rows) * float(w) ** 3, time.perf_counter() - start)
        if len(device_rows) == b:  # k = 0: nothing went to the host
            return values
        out.index_copy_(0, index, values)
    if pending is not None:
        values = pending.result()  # re-raises the host's exception here
        rows = np.full((len(host_rows), w), fill, dtype=np.float64)
        for j, (i, lam) in enumerate(zip(host_rows, values)):
            rows[j, w - counts[i]:] = lam
        index = torch.tensor(host_rows, device=device)
        out.index_copy_(0, index, torch.from_numpy(rows).to(device=device, dtype=mats.dtype))
        router.observe("host", len(host_rows), sum(float(counts[i]) ** 3 for i in host_rows), spent[0])
    return out


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type != "cpu" and hasattr(torch, device.type) and hasattr(getattr(torch, device.type), "synchronize"):
        getattr(torch, device.type).synchronize()


@lru_cache(maxsize=1)
def _coordinator() -> ThreadPoolExecutor:
    """Threads that wait for a host share on behalf of a metric thread (kept apart from the workers' pool, so a
    waiting share never holds a worker)."""
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="sftscope-eig-host")


def host_route(mats: torch.Tensor) -> bool:
    """Whether these matrices take the CPU's NumPy route (float64 on the CPU) rather than torch's."""
    return mats.device.type == "cpu" and CPU_LIBRARIES and mats.dtype == torch.float64


_MAX_WORKERS = max(os.cpu_count() or 1, 1)


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_MAX_WORKERS, thread_name_prefix="sftscope-dense")


def _host_eigvalsh(mats: list[np.ndarray], workers: int | None = None, pool: ThreadPoolExecutor | None = None,
                   spent: list[float] | None = None) -> list[np.ndarray]:
    """Eigenvalues of float64 symmetric matrices on the CPU (LAPACK dsyevd through NumPy, no vectors), on `pool`
    (None: the module's pool); `spent`, if given, gets the seconds the threads spent in total appended.

    Raises:
        ValueError: a matrix has non-finite entries.
    """
    for m in mats:
        if not np.isfinite(m).all():
            raise ValueError("eigvalsh: the matrix has non-finite entries")
    values: list = [None] * len(mats)
    seconds = [0.0] * len(mats)

    def one(i: int) -> None:
        start = time.perf_counter()
        values[i] = np.linalg.eigvalsh(mats[i])
        seconds[i] = time.perf_counter() - start

    # the largest first, so that no thread is left alone with a big matrix at the end
    _host_map(one, sorted(range(len(mats)), key=lambda i: -mats[i].shape[0]), workers, pool)
    if spent is not None:
        spent.append(sum(seconds))
    return values


def _host_map(work, items: list, workers: int | None, pool: ThreadPoolExecutor | None = None) -> None:
    """Run work(item) for every item, `workers` at a time (None: torch's intra-op thread count), one BLAS thread
    each. A 512 x 512 tridiagonal reduction or a 512 x 2048 Gram gains little from a second BLAS thread, and
    NumPy releases the GIL inside BLAS and LAPACK: on the 2-core development machine, at the OLMo-2-1B shape,
    two at a time made the Grams and decompositions of a batch 1.8x faster than one at a time on one thread,
    and 512 x 512 decompositions 1.3x faster than one at a time on two BLAS threads, without a pool that
    spin-waits for a busy core. Each item's result does not depend on the others."""
    workers = min(workers or torch.get_num_threads(), len(items), _MAX_WORKERS if pool is None else workers or 1)
    if workers <= 1:
        for item in items:
            work(item)
        return
    with _one_blas_thread():
        for future in [(pool or _pool()).submit(work, item) for item in items]:
            future.result()  # re-raises a worker's exception here


_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0
_BLAS_LIMIT = None


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """One BLAS thread while any caller is inside (threadpoolctl's limit is process-wide: with several metric
    threads mapping at once, the first in sets it and the last out restores it)."""
    global _BLAS_USERS, _BLAS_LIMIT
    controller = _controller()
    if controller is None:
        yield
        return
    with _BLAS_LOCK:
        if _BLAS_USERS == 0:
            _BLAS_LIMIT = controller.limit(limits=1, user_api="blas")
        _BLAS_USERS += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0 and _BLAS_LIMIT is not None:
                _BLAS_LIMIT.restore_original_limits()
                _BLAS_LIMIT = None


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
