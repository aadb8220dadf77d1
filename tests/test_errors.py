"""`describe` turns every known failure kind into one line that says what to do; the unknown ones say --debug."""

from __future__ import annotations

import errno
import json

import pytest

from sftscope import cli
from sftscope.errors import SftscopeError, describe


@pytest.mark.parametrize("exc,needle", [
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/y"), "/x/y; check the path"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/z"), "check the permissions"),
    (OSError(errno.ENOSPC, "No space left on device", "/big"), "the disk is full"),
    (OSError(errno.EROFS, "Read-only file system", "/ro"), "read-only"),
    (UnicodeDecodeError("utf-8", b"ab\xff", 2, 3, "invalid start byte"), "not UTF-8"),
    (json.JSONDecodeError("Expecting value", "{", 1), "invalid JSON"),
    (MemoryError(), "out of memory"),
    (SftscopeError("said already"), "said already"),
])
def test_known_kinds(exc, needle):
    line = describe(exc)
    assert needle in line and "\n" not in line and "--debug" not in line


def test_library_kinds_by_module():
    SafetensorError = type("SafetensorError", (Exception,), {"__module__": "safetensors_rust"})
    EmptyDataError = type("EmptyDataError", (ValueError,), {"__module__": "pandas.errors"})
    HubError = type("LocalEntryNotFoundError", (Exception,), {"__module__": "huggingface_hub.errors"})
    assert "damaged or incomplete" in describe(SafetensorError("Error while deserializing header"))
    assert "non-empty CSV" in describe(EmptyDataError("No columns to parse from file"))
    assert "Offline?" in describe(HubError("cannot find the requested files"))


def test_unknown_kinds_say_debug_and_never_fail():
    class Odd(Exception):
        def __str__(self):
            raise RuntimeError("no message")
    assert describe(ZeroDivisionError("division by zero")).endswith("(run with --debug for the traceback)")
    assert "--debug" in describe(Odd())


def test_an_unexpected_failure_is_one_line_with_status_1(monkeypatch, capsys):
    def boom(args):
        raise ZeroDivisionError("division by zero")
    monkeypatch.setattr(cli, "_run", boom)
    assert cli.main(["ls", "metrics"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unexpected ZeroDivisionError" in err[0] and "--debug" in err[0]
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", "ls", "metrics"])
