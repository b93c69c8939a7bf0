"""One run per output folder: an advisory lock naming its holder.

The lock is ``flock(LOCK_EX | LOCK_NB)`` on ``<folder>/.chainlib-lock`` (``msvcrt.locking`` on
Windows). The operating system releases it when the holding process dies, however it dies, so a
lock left by a killed run never blocks the next one: taking over a stale lock is simply acquiring
it. While held, the file names its holder (PID, host, start time) for the message a second run
shows. ``flock`` locks belong to an open file, so two runs in one process exclude each other too.

Why not the ``filelock`` package: on POSIX it makes the same ``flock`` call, and it keeps no
holder information, which the refusal message needs.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

LOCK_NAME = ".chainlib-lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class FolderBusy(Exception):
    """Another run holds the output folder's lock. The message names the holder."""

    def __init__(self, folder: str, holder: dict[str, Any]) -> None:
        self.folder = folder
        self.holder = holder
        super().__init__(
            f"output folder {folder!r} is in use by another run ({describe_holder(holder)}); "
            "wait for it to finish or choose another output folder"
        )


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 123 on host h since 2024-05-01 10:00:00`` from the lock file's JSON."""
    pid = holder.get("pid", "?")
    host = holder.get("host", "?")
    since = holder.get("since")
    when = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
            if isinstance(since, (int, float)) else "an unknown time")
    return f"pid {pid} on host {host} since {when}"


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _read_holder(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes()[:4096] or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class FolderLock:
    """The lock of one output folder, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(os.path.expanduser(folder))
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`FolderBusy` at once (never waits).

        Creates the folder if needed. Raises ``OSError`` when the folder or the lock file cannot
        be created (read-only file system, permissions).
        """
        if self._fd is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise FolderBusy(str(self.folder), _read_holder(self.path))
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(holder).encode() + b"\n")
        except OSError:
            # The holder note is informative only (a full disk must not stop the lock).
            pass
        self._fd = fd

    def release(self) -> None:
        """Release the lock (the file stays: deleting it would race with a new holder)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the file releases the flock

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
