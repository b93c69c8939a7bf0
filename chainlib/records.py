"""Append-only JSON-lines files (the manifest and the ownership record of an output folder).

One JSON object per line. An append is one ``write`` of a whole line to a file opened with
``O_APPEND``, flushed to the operating system but not fsynced (a record lost to a power failure
only makes a later run redo work). A crash or a full disk mid-append leaves a truncated last
line: readers skip unparseable lines, and the next append starts on a fresh line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("chainlib")


class RecordError(Exception):
    """A record of an output folder cannot be written (disk full, read-only, permissions).

    Its message is one line: ``cannot write the record <file> in <folder>: <reason>``. A run
    meeting it fails (the item being recorded is counted failed, the rest not run).
    """

    def __init__(self, path: Path, exc: OSError) -> None:
        reason = exc.strerror or str(exc) or type(exc).__name__
        super().__init__(f"cannot write the record {path.name} in {str(path.parent)!r}: {reason}")
        self.path = path
        self.errno = exc.errno


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The parseable object lines of ``path`` (none if it is missing) and whether the file ends
    without a newline. Unparseable lines are logged and skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], False
    records: list[dict[str, Any]] = []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            log.warning("%s:%d: ignoring an unreadable line", path, n)
            continue
        if isinstance(rec, dict):
            records.append(rec)
        else:
            log.warning("%s:%d: ignoring a line that is not an object", path, n)
    return records, bool(data) and not data.endswith(b"\n")


class JsonlLog:
    """Appends to one JSON-lines file; thread-safe; raises :class:`RecordError` on failure."""

    def __init__(self, path: Path, *, needs_newline: bool = False, keep_open: bool = True) -> None:
        self.path = path
        self.keep_open = keep_open  # False: open per append (the file may be replaced meanwhile)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._needs_newline = needs_newline

    def append(self, rec: dict[str, Any]) -> None:
        data = (json.dumps(rec, ensure_ascii=True) + "\n").encode()
        with self._lock:
            try:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT |
                                       getattr(os, "O_BINARY", 0), 0o644)
                if self._needs_newline:
                    data = b"\n" + data
                self._needs_newline = True  # until the whole line is out
                view = memoryview(data)
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
                self._needs_newline = False
            except OSError as exc:
                raise RecordError(self.path, exc) from None
            finally:
                if not self.keep_open and self._fd is not None:
                    fd, self._fd = self._fd, None
                    os.close(fd)

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
