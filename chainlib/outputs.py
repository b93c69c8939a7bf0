"""Output ownership: which files chainlib wrote into an output folder, and how to write one safely.

The ownership record is ``<output folder>/.chainlib-owned.jsonl`` (a sibling of the manifest),
one JSON object per line:

- ``{"path": REL, "source": SRC, "size": N, "mtime_ns": T, "ino": I}``: chainlib wrote the file
  ``REL`` (relative to the folder) for the input ``SRC``. It is appended *before* the file is
  moved into place, with the identity of the finished temporary file, which the rename keeps. A
  file is **ours** while its current size, mtime and inode match its latest entry: a file the
  user replaced or edited since is no longer ours.
- ``{"temp": REL}``: a temporary file about to be created; appended before creating it, so every
  temporary file chainlib ever made is recorded. The next run holding the folder's lock deletes
  the recorded ones still present (a killed run's leftovers) and nothing else.

Rules of :meth:`OutputFolder.write` (the one way chainlib's nodes write outputs):

- an input of the run is never written over, not even with ``overwrite``;
- two items (or two nodes of one item) writing one path is an error naming both;
- an existing file is replaced only with ``overwrite``, or in a resumed run when it is ours;
- the file appears complete or not at all (temporary file, fsync, atomic rename).

Temporary names are ``.chainlib-tmp-<16 hex>.part`` (33 ASCII bytes) whatever the final name, so
they fit wherever a name fits (a 255-byte final name included).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .lock import FolderLock
from .records import JsonlLog, RecordError, read_jsonl

OWNED_NAME = ".chainlib-owned.jsonl"
TEMP_PREFIX = ".chainlib-tmp-"
TEMP_SUFFIX = ".part"
TEMP_PATTERN = re.compile(r"^\.chainlib-tmp-[0-9a-f]{16}\.part$")

__all__ = [
    "OWNED_NAME",
    "TEMP_PATTERN",
    "OutputFolder",
    "OutputRefused",
    "OutputSession",
    "RecordError",
    "output_folder",
    "write_output",
]


class OutputRefused(ValueError):
    """An output is not written: it would replace a file that is not ours, an input, or a file
    another item writes. The message names the file(s) and the way out."""


@dataclass(frozen=True, slots=True)
class FileId:
    """What identifies a file we wrote: size, modification time and inode."""

    size: int
    mtime_ns: int
    ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileId:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass(frozen=True, slots=True)
class Owned:
    source: str | None
    fid: FileId


def _key(path: str) -> str:
    return os.path.realpath(os.path.expanduser(path))


class OutputFolder:
    """The ownership record of one output folder, and the writes into it.

    ``locked=True`` (a run's session): :meth:`open` takes the folder's lock, removes leftover
    temporary files and compacts the record; writes also reserve their target for the run, which
    catches two items writing one path. ``locked=False`` (a node called directly, or on a cluster
    worker): no lock, no reservations; the record is re-read when it changed.
    """

    def __init__(self, folder: str | os.PathLike[str], *, locked: bool = True,
                 session: OutputSession | None = None, record: bool = True) -> None:
        self.folder = Path(_key(os.fspath(folder)))
        self.path = self.folder / OWNED_NAME
        self.locked = locked
        self.record = record  # False: a node called directly; nothing is ours, nothing recorded
        self._session = session
        self._lock = threading.Lock()
        # Every identity recorded per path: a claim whose rename then failed must not hide the
        # entry of the file actually there, so a file is ours if any entry matches it.
        self._owned: dict[str, list[Owned]] = {}
        self._temps: set[str] = set()
        self._claims: dict[str, str] = {}  # target key -> who writes it in this run
        self._loaded_size: int | None = None
        self._folder_lock = FolderLock(self.folder) if locked else None
        self._log = JsonlLog(self.path, keep_open=locked)

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> OutputFolder:
        """Take the lock (``FolderBusy`` if another run holds it), load the record, remove
        leftover temporary files. ``OSError``/``RecordError`` if the folder is not writable."""
        if self._folder_lock is not None:
            self._folder_lock.acquire()
        try:
            self._load()
            if self.locked:
                self._clean_temps()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        self._log.close()
        if self._folder_lock is not None:
            self._folder_lock.release()

    def _load(self) -> None:
        records, needs_newline = read_jsonl(self.path) if self.record else ([], False)
        owned: dict[str, list[Owned]] = {}
        temps: set[str] = set()
        for rec in records:
            rel = rec.get("path")
            if isinstance(rel, str):
                try:
                    fid = FileId(int(rec["size"]), int(rec["mtime_ns"]), int(rec["ino"]))
                except (KeyError, TypeError, ValueError):
                    continue
                source = rec.get("source")
                owned.setdefault(rel, []).append(
                    Owned(source if isinstance(source, str) else None, fid))
            elif isinstance(rec.get("temp"), str):
                temps.add(rec["temp"])
        with self._lock:
            self._owned, self._temps = owned, temps
            self._loaded_size = self._size()
        self._log.close()
        self._log = JsonlLog(self.path, needs_newline=needs_newline, keep_open=self.locked)

    def _size(self) -> int | None:
        try:
            return self.path.stat().st_size
        except OSError:
            return None

    def _refresh(self) -> None:
        """Unlocked mode: other processes may append; re-read when the file changed."""
        if not self.locked and self.record and self._size() != self._loaded_size:
            self._load()

    def _clean_temps(self) -> None:
        """Delete recorded temporary files still present, then rewrite the record compactly."""
        removed = False
        for rel in sorted(self._temps):
            p = self.folder / rel
            if TEMP_PATTERN.match(p.name) and ".." not in Path(rel).parts:
                with contextlib.suppress(FileNotFoundError):
                    if p.is_file() and not p.is_symlink():
                        p.unlink()
                        removed = True
        live: dict[str, list[Owned]] = {}
        for rel, owns in self._owned.items():
            match = next((o for o in reversed(owns) if self._matches(rel, o)), None)
            if match is not None:
                live[rel] = [match]
        if removed or self._temps or sum(map(len, self._owned.values())) > len(live):
            self._rewrite(live)

    def _rewrite(self, live: dict[str, list[Owned]]) -> None:
        new = self.path.with_name(OWNED_NAME + ".new")
        lines = [self._entry(rel, own) for rel, owns in sorted(live.items()) for own in owns]
        try:
            with open(new, "w", encoding="ascii") as f:
                f.writelines(json.dumps(rec) + "\n" for rec in lines)
                f.flush()
                os.fsync(f.fileno())
            os.replace(new, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                new.unlink()
            raise RecordError(self.path, exc) from None
        self._log.close()
        self._log = JsonlLog(self.path, keep_open=self.locked)
        with self._lock:
            self._owned, self._temps = live, set()
            self._loaded_size = self._size()

    @staticmethod
    def _entry(rel: str, own: Owned) -> dict[str, Any]:
        return {"path": rel, "source": own.source, "size": own.fid.size,
                "mtime_ns": own.fid.mtime_ns, "ino": own.fid.ino}

    def _matches(self, rel: str, own: Owned) -> bool:
        try:
            return FileId.of(os.lstat(self.folder / rel)) == own.fid
        except OSError:
            return False

    # -- queries -----------------------------------------------------------------------------

    def _rel(self, target: str) -> str:
        rel = os.path.relpath(target, self.folder)
        if rel == os.curdir or rel.startswith(os.pardir + os.sep) or rel == os.pardir:
            raise OutputRefused(f"{target!r} is not inside the output folder {str(self.folder)!r}")
        return Path(rel).as_posix()

    def owner(self, path: str) -> Owned | None:
        """The record's entry for ``path`` if the file there is still the one chainlib wrote."""
        self._refresh()
        rel = self._rel(_key(path))
        with self._lock:
            owns = list(self._owned.get(rel, ()))
        return next((o for o in reversed(owns) if self._matches(rel, o)), None)

    def is_ours(self, path: str) -> bool:
        """Whether ``path`` is a file chainlib wrote here and nobody changed since."""
        return self.owner(path) is not None

    def owned_files(self) -> list[str]:
        """Absolute paths of the files recorded as ours (whether or not they still match)."""
        with self._lock:
            return [str(self.folder / rel) for rel in self._owned]

    # -- writing -----------------------------------------------------------------------------

    def check(self, target: str, *, source: str | None = None, overwrite: bool = False,
              resuming: bool = False, item: str = "") -> None:
        """Raise :class:`OutputRefused` now if :meth:`write` would refuse ``target`` (an input,
        a folder, or an existing file it may not replace), so that a writer with a long job
        (``video.save``'s encode) refuses before doing it. Reserves nothing: :meth:`write`
        checks again."""
        key = _key(target)
        self._rel(key)
        self._refuse_input(target, key)
        self._refuse_existing(target, key, item or target, source, overwrite, resuming)

    def _refuse_input(self, target: str, key: str) -> None:
        session = self._session
        if session is not None and session.is_input(key):
            raise OutputRefused(
                f"{target!r} is an input of this run and is never written over; save into "
                "another folder, or change name/template"
            )

    def _refuse_existing(self, target: str, key: str, item: str, source: str | None,
                         overwrite: bool, resuming: bool) -> bool:
        """Refuse replacing what is at ``key`` against the rules; whether something is there."""
        try:
            st = os.lstat(key)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            raise OutputRefused(f"{target!r} is a folder")
        self._check_replace(target, key, item, source, overwrite, resuming)
        return True

    def write(self, target: str, write: Callable[[IO[bytes]], None], *, item: str,
              source: str | None = None, node: str = "", overwrite: bool = False,
              resuming: bool = False) -> str:
        """Write ``target`` through ``write(file)`` under the ownership rules; return its path.

        ``item`` names the item for messages (its input file, or label), ``source`` is its input
        file (recorded as the owner), ``node`` the writing node. Raises :class:`OutputRefused`
        (nothing written), :class:`RecordError` (the record cannot be written: nothing written),
        or the ``OSError`` of the write itself (nothing written).
        """
        key = _key(target)
        rel = self._rel(key)
        directory = os.path.dirname(key)
        self._refuse_input(target, key)
        writer = f"{item} (node {node})" if node else item
        if self.locked:
            with self._lock:
                prev = self._claims.setdefault(key, writer)
            if prev != writer:
                raise OutputRefused(
                    f"two writers for one output {target!r}: {prev} and {writer}; make the names "
                    "unique (for example template='{name}_{index}', or a subfolder)"
                )
        exists = self._refuse_existing(target, key, item, source, overwrite, resuming)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}")
        if self.record:
            self._log.append({"temp": self._rel(tmp)})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
                fid = FileId.of(os.fstat(fh.fileno()))
            own = Owned(source, fid)
            if self.record:
                self._log.append(self._entry(rel, own))
            self._commit(tmp, key, target, replace=exists)
            with self._lock:
                self._owned.setdefault(rel, []).append(own)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return target

    def _check_replace(self, target: str, key: str, item: str, source: str | None,
                       overwrite: bool, resuming: bool) -> None:
        own = self.owner(key)
        if (own is not None and own.source and source and _key(own.source) != _key(source)
                and os.path.exists(own.source)):
            raise OutputRefused(
                f"two inputs for one output {target!r}: {own.source!r} (written by an earlier "
                f"run) and {item}; make the names unique (for example template='{{name}}_"
                "{index}', or a subfolder)"
            )
        if overwrite:
            return
        if own is None:
            raise OutputRefused(
                f"{target!r} already exists and was not written by chainlib into this folder; "
                "set overwrite=True (--overwrite) to replace it, or change name/template/folder"
            )
        if not resuming:
            raise OutputRefused(
                f"{target!r} already exists (written by an earlier run); use --resume "
                "(resume=True) to finish the remaining items, or overwrite=True (--overwrite)"
            )

    @staticmethod
    def _commit(tmp: str, key: str, target: str, *, replace: bool) -> None:
        if replace:
            os.replace(tmp, key)
            return
        try:
            os.link(tmp, key)  # atomic, and fails if a file appeared at the target meanwhile
        except FileExistsError:
            raise OutputRefused(f"{target!r} appeared while it was being written; "
                                "it was left alone") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP,
                                 errno.EMLINK, errno.ENOSYS):
                raise
            if os.path.lexists(key):  # no hard links here: check, then rename
                raise OutputRefused(f"{target!r} appeared while it was being written; "
                                    "it was left alone") from None
            os.replace(tmp, key)


class OutputSession:
    """A run's view of its output folders: their locks, ownership records and the run's inputs.

    Created by the runner, opened before the first item (:meth:`open` takes every known output
    folder's lock, so a second run into one of them fails before doing anything) and closed when
    the run ends. Nodes reach it as ``ctx.outputs``.
    """

    def __init__(self, folders: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._folders: dict[str, OutputFolder] = {}
        self._pending = [_key(f) for f in folders]
        self._inputs: set[str] = set()

    def open(self) -> OutputSession:
        """Open the folders given up front (``FolderBusy``/``OSError``/``RecordError``)."""
        try:
            for f in sorted(set(self._pending)):
                self.folder(f)
        except BaseException:
            self.close()
            raise
        return self

    def folder(self, path: str) -> OutputFolder:
        """The open :class:`OutputFolder` for ``path`` (opened and locked on first use)."""
        key = _key(path)
        with self._lock:
            found = self._folders.get(key)
            if found is None:
                found = OutputFolder(key, locked=True, session=self).open()
                self._folders[key] = found
            return found

    @property
    def folders(self) -> list[str]:
        with self._lock:
            return list(self._folders)

    def add_inputs(self, paths: Iterable[str]) -> None:
        """Declare input files of this run: never written over, whatever ``overwrite`` says."""
        keys = {_key(p) for p in paths}
        with self._lock:
            self._inputs |= keys

    def is_input(self, path: str) -> bool:
        with self._lock:
            return _key(path) in self._inputs

    def is_output(self, path: str) -> bool:
        """Whether ``path`` is a file this run's output folders record as ours (so an in-place
        run never takes its own outputs as inputs)."""
        key = _key(path)
        with self._lock:
            folders = list(self._folders.values())
        return any(key.startswith(str(f.folder) + os.sep) and f.is_ours(key) for f in folders)

    def close(self) -> None:
        with self._lock:
            folders, self._folders = list(self._folders.values()), {}
        for f in folders:
            f.close()


_direct_lock = threading.Lock()
_direct: dict[str, OutputFolder] = {}


def write_output(target: str, write: Callable[[IO[bytes]], None], *, folder: str,
                 session: OutputSession | None, item: str, source: str | None = None,
                 node: str = "", overwrite: bool = False, resuming: bool = False,
                 record: bool = True) -> str:
    """Write ``target`` (inside output folder ``folder``) under the ownership rules.

    The entry point for nodes that write files (``image.save``; video/ONNX writers): pass
    ``ctx.outputs`` as ``session``. Without a session (a node on a cluster worker) the folder's
    record is still kept, without lock or reservations; ``record=False`` (a node called directly,
    outside any run) keeps no record: nothing there is ours, so nothing is replaced without
    ``overwrite``. See :meth:`OutputFolder.write` for the rest.
    """
    return output_folder(folder, session, record).write(
        target, write, item=item, source=source, node=node, overwrite=overwrite,
        resuming=resuming)


def output_folder(folder: str, session: OutputSession | None,
                  record: bool = True) -> OutputFolder:
    """The :class:`OutputFolder` :func:`write_output` writes through for these arguments (the
    session's, locked; else an unlocked one kept per folder; else, without ``record``, one
    with no record)."""
    if session is not None:
        return session.folder(folder)
    if not record:
        return OutputFolder(folder, locked=False, record=False)
    key = _key(folder)
    with _direct_lock:
        found = _direct.get(key)
        if found is None:
            os.makedirs(key, exist_ok=True)
            found = _direct[key] = OutputFolder(key, locked=False).open()
        return found
