"""User-facing errors: the CLI prints one line and exits with status 2.

`SftscopeError` is raised where sftscope knows what went wrong and what to do. `describe` is the single place
that turns the other known failure kinds (file system, text decoding, file parsing, safetensors, tokenizer,
Hugging Face hub, configuration, memory) into such a line, so no library exception reaches the user as a
traceback; anything unexpected still ends as one line that says to run with --debug.
"""

from __future__ import annotations

import errno
import json
import sys


class SftscopeError(Exception):
    """A problem with the user's input or environment; the message says what is wrong and what to do."""


class IncompatiblePairError(SftscopeError):
    """Base and fine-tuned model cannot be compared layer by layer."""


class UnknownNameError(SftscopeError):
    """A registry lookup (data set, metric, task, architecture) failed."""

    def __init__(self, kind: str, name: str, known: list[str], hint: str = ""):
        msg = f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}"
        super().__init__(msg + (f". {hint}" if hint else ""))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name if the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_OS_HINTS = {
    errno.ENOENT: "check the path", errno.EACCES: "check the permissions (or choose another folder)",
    errno.EPERM: "check the permissions (or choose another folder)", errno.EROFS: "the file system is read-only: "
    "choose another folder", errno.ENOSPC: "the disk is full: free space or choose another folder",
    errno.EISDIR: "give a file, not a folder", errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "choose another path", errno.EDQUOT: "the disk quota is exceeded: free space",
}


def _module_of(exc: BaseException) -> str:
    return type(exc).__module__ or ""


def describe(exc: BaseException) -> str:
    """One line for the user about `exc`: what failed and what to do. Never raises."""
    try:
        return _describe(exc)
    except Exception:  # noqa: BLE001  describing must never fail in its turn (not even on a broken __str__)
        return f"unexpected {type(exc).__name__} (run with --debug for the traceback)"


def _describe(exc: BaseException) -> str:
    name, module = type(exc).__name__, _module_of(exc)
    if isinstance(exc, SftscopeError):
        return str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return (f"a file is not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at position {exc.start}); "
                "convert it to UTF-8")
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); fix or re-create the file"
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        hint = _OS_HINTS.get(exc.errno, "check the path and the disk")
        return f"{exc.strerror or name}{where}; {hint}"
    if name == "SafetensorError" or module.startswith("safetensors"):
        return (f"a .safetensors file is damaged or incomplete ({first_line(exc)}); download or save the model "
                "again")
    if name in ("EmptyDataError", "ParserError") and module.startswith("pandas"):
        return f"cannot read a table file: {first_line(exc)}; check that it is a non-empty CSV/TSV with a header"
    if module.startswith("pyarrow"):
        return f"cannot read a parquet/arrow file: {first_line(exc)}; the file may be damaged"
    if module.startswith("yaml"):
        return f"invalid YAML: {first_line(exc)}"
    if module.startswith("huggingface_hub") or name in ("OfflineModeIsEnabled", "LocalEntryNotFoundError"):
        return (f"Hugging Face hub: {first_line(exc)}. Offline? Use local folders (models) and --data-dir "
                "(data), or check the id, the revision and HF_TOKEN")
    if module.startswith("tokenizers") or "tokeniz" in first_line(exc).lower():
        return f"cannot load the tokenizer: {first_line(exc)}; the model folder needs its tokenizer files"
    if name in ("UnpicklingError",) or (module.startswith("pickle") or module.startswith("_pickle")):
        return f"a checkpoint file is damaged or not a PyTorch file ({first_line(exc)}); save the model again"
    if isinstance(exc, MemoryError) or name == "OutOfMemoryError":
        return "out of memory: lower --batch-size or --max-length, or use --mode sequential / --device-map auto"
    return f"unexpected {name}: {first_line(exc)} (run with --debug for the traceback)"


def print_error(exc: BaseException, stream=None) -> None:
    """Print `describe(exc)` as the one-line `sftscope: error: ...` message."""
    print(f"sftscope: error: {describe(exc)}", file=stream or sys.stderr)


def note(message: str, stream=None) -> None:
    """Tell the user something the run decided on its own (fewer samples than asked, ...): one stderr line
    (from rank 0 only, when several processes run)."""
    from sftscope.distributed import is_main
    if is_main():
        print(f"sftscope: note: {message}", file=stream or sys.stderr)
