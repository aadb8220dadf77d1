"""Run by test_launch.py under torchrun: rank 1 brings another config to the same run folder."""

from __future__ import annotations

import sys

from sftscope import distributed
from sftscope.errors import SftscopeError
from sftscope.results.rundir import RunDir


def main(out: str) -> int:
    try:
        RunDir(out).bind_config("analyze", {"seed": distributed.rank(), "data": ["gsm8k"]})
    except SftscopeError as exc:
        print(f"rank {distributed.rank()}: {exc}", flush=True)
        return 2
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
