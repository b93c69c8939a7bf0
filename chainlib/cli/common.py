"""What every part of the command line shares: exit codes, the user-error exception."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TextIO

from .._safe import safe

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A user error (bad argument, missing module, ...): one line on stderr, exit code 2."""


__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "UsageError", "err",
           "safe", "write_out"]


def err(message: str) -> None:
    """One line on stderr: ``chainlib: error: MESSAGE`` (control characters escaped)."""
    print(f"chainlib: error: {safe(message)}", file=sys.stderr, flush=True)


def write_out(text: str, stream: TextIO) -> bool:
    """Write ``text`` to ``stream`` and flush; False, and later writes silently dropped, when it
    cannot take it: its reader went away (``| head``) or the disk is full. A run goes on and
    exits with its own code: a closed pipe is not a reason to abandon, or misreport, the work."""
    try:
        stream.write(text)
        stream.flush()
        return True
    except OSError:
        # what is still buffered would fail again at exit: send it to nowhere
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        return False
