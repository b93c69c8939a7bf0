"""What every part of the command line shares: exit codes, the user-error exception."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from typing import TextIO

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A user error (bad argument, missing module, ...): one line on stderr, exit code 2."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def safe(text: object) -> str:
    """``text`` for the terminal: control characters (ANSI escapes, newlines, carriage returns)
    escaped as ``\\n``, ``\\x1b``..., so an untrusted name can neither forge lines nor drive the
    terminal."""
    def escape(m: re.Match[str]) -> str:
        c = m.group()
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c) or (
            f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")

    return _CONTROL.sub(escape, str(text))


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
