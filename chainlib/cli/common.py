"""What every part of the command line shares: exit codes, the user-error exception."""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A user error (bad argument, missing module, ...): one line on stderr, exit code 2."""


def err(message: str) -> None:
    print(f"chainlib: error: {message}", file=sys.stderr, flush=True)
