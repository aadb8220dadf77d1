"""Device, dtype and seed decisions: the only module that asks torch about CUDA."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from sftscope.errors import SftscopeError

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}


def cuda_available() -> bool:
    return torch.cuda.is_available()


def use_cpu_for_collectives() -> bool:
    """Whether several processes form a CPU (gloo) group: no CUDA here, or ACCELERATE_USE_CPU set (accelerate's
    own switch, which `accelerate launch --cpu` / `use_cpu: true` sets)."""
    flag = os.environ.get("ACCELERATE_USE_CPU", "").strip().lower() in ("1", "true", "yes", "y")
    return flag or not cuda_available()


def default_device() -> str:
    return "cuda" if cuda_available() else "cpu"


def resolve_device(device: str | None) -> str:
    """'auto'/None -> cuda if present else cpu (under torchrun / accelerate launch: this rank's own GPU); an
    explicit cuda request without CUDA is an error."""
    if device in (None, "auto"):
        from sftscope import distributed
        state = distributed.state()
        if state is not None and cuda_available():
            return str(state.device)
        return default_device()
    if device.startswith("cuda") and not cuda_available():
        raise SftscopeError(f"--device {device} asked for CUDA but torch sees no GPU; use --device cpu")
    return device


def resolve_dtype(dtype: str | None, device: str, checkpoint_dtype: torch.dtype | None = None) -> torch.dtype:
    """'auto': float32 on CPU (no native bf16 there), the checkpoint's own dtype on GPU (bf16 if unknown)."""
    if dtype in (None, "auto"):
        if not device.startswith("cuda"):
            return torch.float32
        return checkpoint_dtype if checkpoint_dtype in (torch.bfloat16, torch.float16, torch.float32) else torch.bfloat16
    if dtype not in _DTYPES:
        raise SftscopeError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(sorted(_DTYPES))}")
    return _DTYPES[dtype]


def synchronize(device: str | torch.device) -> None:
    """Wait until the work queued on `device` is done (a no-op on the CPU); for timing and tests."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: str | torch.device) -> None:
    """Start a new peak-memory window on `device` (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: str | torch.device) -> int | None:
    """Bytes of accelerator memory allocated at the peak since the last reset; None on the CPU."""
    if torch.device(device).type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def cpu_threads() -> int:
    """Torch CPU threads: $SFTSCOPE_THREADS, else up to 2 (the core count), else 1 on a busy machine.

    On a loaded machine a second intra-op thread spin-waits for a core: measured up to 10x slower than one.
    The thread count does not change results (same organism weights hash with 1 and 2 threads).
    """
    if os.environ.get("SFTSCOPE_THREADS"):
        return max(1, int(os.environ["SFTSCOPE_THREADS"]))
    cores = os.cpu_count() or 1
    busy = hasattr(os, "getloadavg") and os.getloadavg()[0] > cores - 1
    return 1 if busy else max(1, min(2, cores, torch.get_num_threads()))


def configure_cpu_threads() -> None:
    """Apply cpu_threads() when the work runs on the CPU (GPU runs keep torch's default)."""
    if not cuda_available():
        torch.set_num_threads(cpu_threads())


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seeded_generator(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def device_description() -> str:
    if cuda_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"cuda x{len(names)}: {', '.join(names)}"
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
