"""What to do next, after a run: hints that only suggest what will work.

One source for the command line's summary and the Python API (``Runner.hints()``, the error of
``Runner.result()`` on a failed run, the status card), each phrased for its audience: ``--resume``
and ``--set NODE.overwrite=true`` on the command line, ``resume=True`` and ``overwrite=True`` in
Python. A hint to resume is given only for chains that write files (only those keep the manifest
that resuming reads).
"""

from __future__ import annotations

from typing import Literal

from .status import Status

__all__ = ["Audience", "hints", "outputs_exist"]

Audience = Literal["python", "cli"]

EXISTS_MARKER = "already exists"  # how image.save (and any writer) reports a file in the way


def outputs_exist(status: Status) -> list[str]:
    """The writer nodes whose items failed because an output file was already there."""
    nodes: list[str] = []
    for f in status.failures:
        if EXISTS_MARKER in f.message and f.node not in nodes:
            nodes.append(f.node)
    return nodes


def hints(status: Status, *, writes_files: bool, audience: Audience = "python") -> list[str]:
    """Hints for a finished (or stopped) run; empty when there is nothing useful to suggest."""
    out: list[str] = []
    blocked = outputs_exist(status)
    if blocked:
        if audience == "cli":
            sets = " ".join(f"--set {n}.overwrite=true" for n in blocked)
            out.append("outputs exist from an earlier run; use --resume to skip finished items, "
                       f"or {sets} to replace them")
        else:
            nodes = ", ".join(repr(n) for n in blocked)
            out.append("outputs exist from an earlier run: Runner(chain, resume=True) skips the "
                       f"items already finished, or overwrite=True on node {nodes} replaces them")
    remaining = status.remaining
    if status.state == "stopped" and writes_files and remaining:
        if audience == "cli":
            out.append("run the same command with --resume to finish the remaining items")
        else:
            out.append(f"Runner(chain, resume=True) finishes the {remaining} remaining item(s)")
    return out
