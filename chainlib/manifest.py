"""The manifest of a resumable batch: which inputs are done, for which chain, with which outputs.

One JSON object per line in ``<output folder>/.chainlib-manifest.jsonl``, appended when an item
finishes, after its outputs were renamed into place. Appends are flushed to the operating system
but not fsynced: a record lost to a power failure only makes a resumed run redo that item (its
outputs are replaced, still exactly once), while an fsync per item costs throughput.

A record counts only if the input file still has the recorded size and modification time, the
chain fingerprint matches, and every recorded output exists. A crash mid-append leaves a
truncated last line, which is ignored. Which files chainlib wrote (and may replace) is kept in a
sibling record, :mod:`chainlib.outputs`.

Public API (stable; other writer nodes and the runner use it): ``Manifest(folder, fingerprint)``,
``is_complete(source)``, ``record(source, label, outputs)`` (raises
:class:`chainlib.records.RecordError`, one line, when the file cannot be written), ``close()``,
``len()``, and ``MANIFEST_NAME``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from .api.item import source_paths
from .records import JsonlLog, RecordError, read_jsonl

__all__ = ["MANIFEST_NAME", "Manifest", "RecordError"]

MANIFEST_NAME = ".chainlib-manifest.jsonl"


def _stat(source: str) -> tuple[int, int] | None:
    # A source may name a part of a file as FILE#PART (a video frame: "clip.mp4#frame=12"):
    # the part's record is valid while FILE is unchanged.
    for path in source_paths(source):
        try:
            st = os.stat(path)
        except OSError:
            continue
        return st.st_size, st.st_mtime_ns
    return None


class Manifest:
    """Finished items of one output folder, shared by the workers of a run (one lock)."""

    def __init__(self, folder: str | os.PathLike[str], fingerprint: str) -> None:
        self.folder = Path(os.path.expanduser(folder))
        self.path = self.folder / MANIFEST_NAME
        self.fingerprint = fingerprint
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}
        records, needs_newline = read_jsonl(self.path)
        for rec in records:
            if isinstance(rec.get("source"), str):
                self._records[os.path.abspath(rec["source"])] = rec
        self._log = JsonlLog(self.path, needs_newline=needs_newline)

    def is_complete(self, source: str) -> bool:
        """Whether ``source`` was fully processed by this chain and its outputs still exist."""
        with self._lock:
            rec = self._records.get(os.path.abspath(source))
        if rec is None or rec.get("chain") != self.fingerprint:
            return False
        if _stat(source) != (rec.get("size"), rec.get("mtime_ns")):
            return False
        outputs = rec.get("outputs", [])
        return isinstance(outputs, list) and all(os.path.exists(p) for p in outputs)

    def record(self, source: str, label: str | None, outputs: list[str]) -> None:
        """Append one finished item (call after its outputs are in place)."""
        stat = _stat(source)
        rec: dict[str, Any] = {
            "source": os.path.abspath(source),
            "label": label,
            "size": stat[0] if stat else None,
            "mtime_ns": stat[1] if stat else None,
            "chain": self.fingerprint,
            "outputs": [os.path.abspath(p) for p in outputs],
            "finished_at": time.time(),
        }
        with self._lock:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RecordError(self.path, exc) from None
        self._log.append(rec)
        with self._lock:
            self._records[rec["source"]] = rec

    def close(self) -> None:
        """Close the file (appends reopen it)."""
        self._log.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
