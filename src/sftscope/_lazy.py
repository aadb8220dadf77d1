"""Lazy re-exports for package __init__ files (PEP 562), so importing a package loads none of its submodules.

`import sftscope.tuning.blocks` must not pull in the training loop (torch, peft, accelerate) only because
sftscope/tuning/__init__.py re-exports train_cell: the name is imported on first attribute access instead.
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]) -> tuple[Callable, Callable, list[str]]:
    """Module `__getattr__`, `__dir__` and `__all__` for `package` re-exporting `exports` lazily.

    Args:
        package: the package's __name__.
        exports: submodule name (relative to `package`) -> the names it provides.

    Returns (__getattr__, __dir__, __all__). A resolved name is cached in the package's namespace, so the
    submodule is imported once and later look-ups are plain attribute reads. A re-exported name must not be a
    submodule's name too: importing that submodule would rebind the package attribute to the module.

    Raises (from __getattr__): AttributeError for a name that is not exported (the import system relies on it
    to fall back to importing a submodule of that name).
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__, sorted(where)
