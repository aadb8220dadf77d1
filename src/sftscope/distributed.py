"""Several processes (torchrun / accelerate launch), one result: who works on what, who writes and prints.

The process group comes from accelerate's `PartialState` (NCCL on GPUs, gloo on CPUs), initialised once by
`state()`; everything else uses the public torch.distributed collectives. In one process (no launcher) every
function here is the trivial case and nothing is initialised.

Conventions every pipeline follows:
- all ranks run the same checks (they read the same files, so a bad input fails on every rank alike);
- work is split by `shard(items)` (a contiguous block per rank, in item order) and brought back in item order by
  `gather_in_order`; accumulated state is gathered to rank 0 and merged there;
- only rank 0 writes files and prints results (`is_main()`); what rank 0 does alone runs through
  `on_main(fn)`, which hands its result, or its error, to every rank, so no rank waits forever for a rank that
  failed.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence, TypeVar

from sftscope.errors import SftscopeError

T = TypeVar("T")
_STATE = None
_BROKEN: str | None = None  # why joining the process group failed (every later call says so again)
_SOLO = 0  # > 0 while rank 0 runs a section alone (`on_main`): collectives inside it are no-ops


class RankZeroError(SftscopeError):
    """An error rank 0 met in a section it ran alone, handed to the other ranks (rank 0 reports it)."""


def launched_world_size() -> int:
    """The process count a launcher announced in the environment (1 without a launcher)."""
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 1


def state():
    """accelerate's PartialState, initialised once with the device choice of sftscope.runtime; None in one
    process. A launch whose processes do not form one group (WORLD_SIZE > 1 but no group could be joined, or a
    non-distributed state) is an error, not N independent copies of the run.

    Raises:
        SftscopeError: the launch announced several processes but they did not join one process group (raised
            again on every later call).
    """
    global _STATE, _BROKEN
    if _BROKEN is not None:
        raise SftscopeError(_BROKEN)
    if _STATE is None and launched_world_size() > 1:
        from accelerate import PartialState

        from sftscope.runtime import use_cpu_for_collectives
        try:
            candidate = PartialState(cpu=use_cpu_for_collectives())
            joined = int(candidate.num_processes)
        except (ValueError, RuntimeError, KeyError, AttributeError) as exc:  # no MASTER_ADDR / RANK, no peers
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _BROKEN = (f"WORLD_SIZE={launched_world_size()} is set but this process cannot join a process group "
                       f"({detail}); start the processes with torchrun or accelerate launch, or unset WORLD_SIZE")
            raise SftscopeError(_BROKEN) from exc
        if joined != launched_world_size():
            _BROKEN = (f"the launcher started {launched_world_size()} processes (WORLD_SIZE) but they run as {joined} "
                       f"independent one(s) ({candidate.distributed_type}); each would repeat the whole run. Launch "
                       "with torchrun or accelerate launch (on CPUs set ACCELERATE_USE_CPU=true), or start one "
                       "process")
            raise SftscopeError(_BROKEN)
        _STATE = candidate
        if _STATE.process_index != 0:
            os.environ["TQDM_DISABLE"] = "1"  # one set of progress bars: rank 0's
    return _STATE


def world_size() -> int:
    """Processes working together now (1 in one process, and inside a section rank 0 runs alone)."""
    if _SOLO or _BROKEN is not None:
        return 1
    s = state()
    return 1 if s is None else int(s.num_processes)


def rank() -> int:
    """This process's global rank (0 in one process; the launcher's RANK when no group could be joined)."""
    if _BROKEN is not None:
        return int(os.environ.get("RANK", "0") or 0)
    s = state()
    return 0 if s is None else int(s.process_index)


def is_main() -> bool:
    """True on the one process that writes files and prints results (global rank 0)."""
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        import torch.distributed as dist
        dist.barrier()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank ([obj] in one process)."""
    if world_size() == 1:
        return [obj]
    import torch.distributed as dist
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's `obj` in rank order on rank 0 (None elsewhere): for large states only rank 0 needs."""
    if world_size() == 1:
        return [obj]
    import torch.distributed as dist
    out: list[Any] | None = [None] * world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank."""
    if world_size() == 1:
        return obj
    import torch.distributed as dist
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shard_bounds(count: int, ranks: int | None = None, index: int | None = None) -> tuple[int, int]:
    """[start, stop) of this rank's contiguous block of `count` items (sizes differ by at most one)."""
    ranks = world_size() if ranks is None else ranks
    index = rank() if index is None else index
    base, extra = divmod(count, ranks)
    start = index * base + min(index, extra)
    return start, start + base + (1 if index < extra else 0)


def shard(items: Sequence[T]) -> list[T]:
    """This rank's contiguous block of `items` (all of them in one process)."""
    start, stop = shard_bounds(len(items))
    return list(items[start:stop])


def gather_dict(local: dict) -> dict:
    """The union of every rank's dict (disjoint keys: each rank's share of indexed results), on every rank."""
    merged: dict = {}
    for part in gather_objects(local):
        merged.update(part)
    return merged


def gather_in_order(local: list[T]) -> list[T]:
    """The per-rank results of `shard(items)` joined back into item order, on every rank."""
    return [x for part in gather_objects(list(local)) for x in part]


def on_main(fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 only; every rank returns its result, or raises its error (rank 0 the original one,
    the others a SftscopeError with the same message), so no rank waits for a rank that failed."""
    global _SOLO
    if world_size() == 1:
        return fn()
    outcome, failure = None, None
    if is_main():
        _SOLO += 1
        try:
            outcome = (True, fn())
        except Exception as exc:  # noqa: BLE001  handed to every rank, then raised everywhere
            from sftscope.errors import describe
            failure = exc
            outcome = (False, describe(exc))
        finally:
            _SOLO -= 1
    ok, payload = broadcast_object(outcome)
    if failure is not None:
        raise failure
    if not ok:
        raise RankZeroError(payload)
    return payload


def check_same_config(stage: str, identity: dict) -> None:
    """Every rank must run the same config (a rank given other options would compute other numbers).

    Raises:
        SftscopeError: the ranks disagree (the message names the differing options).
    """
    if world_size() == 1:
        return
    import json
    mine = json.dumps(identity, sort_keys=True, default=str)
    every = gather_objects(mine)
    if len(set(every)) > 1:
        first, other = json.loads(every[0]), json.loads(next(e for e in every if e != every[0]))
        differ = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
        raise SftscopeError(f"the {len(every)} processes of this {stage} run were given different options "
                            f"({', '.join(differ)}); every rank must run the same command")


def shutdown() -> None:
    """Leave the process group cleanly (a gloo group left open aborts the process at exit)."""
    global _STATE
    if _STATE is not None:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        _STATE = None
