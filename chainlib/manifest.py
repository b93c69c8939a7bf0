"""The manifest of a resumable batch: which inputs are done, for which chain, with which outputs.

One JSON object per line in ``<output folder>/.chainlib-manifest.jsonl``, appended when an item
finishes, after its outputs were renamed into place. Appends are flushed to the operating system
but not fsynced: a record lost to a power failure only makes a resumed run redo that item (its
outputs are replaced, still exactly once), while an fsync per item costs throughput.

A record counts only if the input file still has the recorded size and modification time, the
chain fingerprint matches, and every recorded output exists. A crash mid-append leaves a
truncated last line, which is ignored.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("chainlib")

MANIFEST_NAME = ".chainlib-manifest.jsonl"


def _stat(source: str) -> tuple[int, int] | None:
    # A source may name a part of a file as FILE#PART (a video frame: "clip.mp4#frame=12"):
    # the part's record is valid while FILE is unchanged.
    for path in (source, source.rpartition("#")[0]):
        try:
            st = os.stat(path) if path else None
        except OSError:
            continue
        if st is not None:
            return st.st_size, st.st_mtime_ns
    return None


class Manifest:
    """Finished items of one output folder, shared by the workers of a run (one lock)."""

    def __init__(self, folder: str | os.PathLike[str], fingerprint: str) -> None:
        self.folder = Path(folder).expanduser()
        self.path = self.folder / MANIFEST_NAME
        self.fingerprint = fingerprint
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}
        self._needs_newline = False
        self._load()

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        self._needs_newline = bool(data) and not data.endswith(b"\n")
        for n, line in enumerate(data.splitlines(), 1):
            try:
                rec = json.loads(line)
                source = rec["source"]
            except (ValueError, KeyError, TypeError):
                log.warning("%s:%d: ignoring an unreadable manifest line", self.path, n)
                continue
            self._records[os.path.abspath(source)] = rec

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
        line = json.dumps(rec) + "\n"
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                if self._needs_newline:
                    f.write("\n")
                    self._needs_newline = False
                f.write(line)
                f.flush()
            self._records[rec["source"]] = rec

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
