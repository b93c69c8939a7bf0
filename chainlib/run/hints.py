"""What to do next, after a run: hints that only suggest what will work.

For the Python API: ``Runner.hints()``, the error of ``Runner.result()`` on a failed run, the
status card (the command line's summary words its own, with ``--resume`` and ``--overwrite``).
A hint to resume is given only for chains that write files (only those keep the manifest that
resuming reads), and not for outputs in the way of a chain with collectors: resuming would skip
those items, so the collectors would get none of them (and fail when they get nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..chain.validate import Plan
from .status import Status

__all__ = ["hint_facts", "hints", "no_result", "outputs_exist"]

EXISTS_MARKER = "already exists"  # how image.save (and any writer) reports a file in the way


def hint_facts(plan: Plan, output_folder: str | None) -> dict[str, Any]:
    """What :func:`hints` needs to know of a chain: ``writes_files`` and ``collectors``."""
    return {"writes_files": output_folder is not None,
            "collectors": [step.id for step in plan.collectors]}


def outputs_exist(status: Status) -> list[str]:
    """The writer nodes whose items failed because an output file was already there."""
    nodes: list[str] = []
    for f in status.failures:
        if EXISTS_MARKER in f.message and f.node not in nodes:
            nodes.append(f.node)
    return nodes


def hints(status: Status, *, writes_files: bool, collectors: Sequence[str] = ()) -> list[str]:
    """Hints for a finished (or stopped) run; empty when there is nothing useful to suggest.

    ``writes_files``: the chain keeps a manifest (so it can be resumed); ``collectors``: the ids
    of its collector nodes."""
    out: list[str] = []
    blocked = outputs_exist(status)
    if blocked:
        nodes = ", ".join(repr(n) for n in blocked)
        resume = "" if collectors or not writes_files else \
            "Runner(chain, resume=True) skips the items already finished, or "
        out.append(f"outputs exist from an earlier run: {resume}overwrite=True on node "
                   f"{nodes} replaces them")
    remaining = status.remaining
    if status.state == "stopped" and writes_files and remaining:
        out.append(f"Runner(chain, resume=True) finishes the {remaining} remaining item(s)")
    return out


def no_result(what: str, *, per_item: bool, status: Status, writes_files: bool,
              collectors: Sequence[str] = ()) -> str:
    """Why ``Runner.result(what)`` has no value: the node runs per item, or the run has not
    ended, or it ended without reaching the node (and then why, with the hints)."""
    if per_item:
        return (f"no result for {what}: per-item nodes keep none (gather their values with a "
                "collector such as core.collect, or read the files they wrote)")
    if status.state == "idle":
        return f"no result for {what}: nothing has run yet (start() the run, then wait())"
    if status.active:
        return f"no result for {what} yet: the run is {status.state} (wait() for its end)"
    if status.state == "failed":
        why = f"the run failed ({status.reason or 'no reason recorded'})"
    elif status.state == "stopped":
        why = f"the run was stopped ({status.reason or 'stopped by user'}) before it got there"
    elif status.skipped and status.skipped == status.done and not status.failed:
        why = ("every item was already complete (resume), so nothing new was collected and the "
               "collectors did not run; run without resume to rebuild it")
    else:
        why = f"the run ended {status.state} without it"
    text = f"no result for {what}: {why}"
    for hint in hints(status, writes_files=writes_files, collectors=collectors):
        text += f"; hint: {hint}"
    return text
