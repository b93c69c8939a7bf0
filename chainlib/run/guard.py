"""What each run of a :class:`~chainlib.Runner` sets up to keep its outputs and memory safe.

- the run's :class:`~chainlib.outputs.OutputSession`, opened before the run starts: it locks
  every constant output folder (a second run into one of them is refused, naming the holder),
  and its ownership records decide which existing files may be replaced;
- the memory budget shared by the items of every run (:mod:`chainlib.memory`);
- the preflight (:mod:`.preflight`) the engine runs before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

from ..chain.validate import Plan, output_folders, resumable
from ..lock import FolderBusy
from ..memory import MemoryBudget, default_budget, parse_size
from ..outputs import OutputSession
from ..records import RecordError
from .preflight import preflight


def manifest_folder(plan: Plan, resume: bool) -> str | None:
    """The folder keeping the manifest of finished items (``ValueError`` if ``resume`` cannot
    work for ``plan``)."""
    folders = output_folders(s for s in plan.item if s.spec.writes_files)
    if resume and not resumable(plan):
        raise ValueError("resume=True needs per-item nodes that write files (such as image.save) "
                         "into one constant output folder, where the manifest of finished items "
                         "is kept")
    return min(folders) if folders else None


def resume_fingerprint(base: str, plan: Plan) -> str:
    """The fingerprint a resumable run records its items under: the chain's (``base``), plus
    the size and modification time of the files its nodes read (:attr:`NodeSpec.reads`, for
    example a model replaced in place, which would otherwise leave a resumed video with frames
    from two models). ``base`` alone for chains without such files."""
    files = []
    for step in plan.steps.values():
        for name in step.spec.reads:
            value = step.constants.get(name)
            if isinstance(value, (str, os.PathLike)):
                try:
                    st = os.stat(os.path.expanduser(os.fspath(value)))
                except OSError:  # validation said why already, or the node will
                    continue
                files.append([step.id, name, st.st_size, st.st_mtime_ns])
    if not files:
        return base
    blob = json.dumps([base, files], separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class StartRefused(Exception):
    """A run cannot start: an output folder is in use by another run, or not writable. The
    message is one line naming the folder (and the holder)."""


class RunGuard:
    """One runner's output and memory settings, and the session of each of its runs."""

    def __init__(self, plan: Plan, *, max_memory: int | str | None, overwrite: bool) -> None:
        limit = parse_size(max_memory) if isinstance(max_memory, str) else max_memory
        if limit is None:
            limit = default_budget()
        self.max_memory = limit
        """The memory budget in bytes (None where the physical memory is unknown: none)."""
        self.budget = MemoryBudget(limit) if limit is not None else None
        self.overwrite = bool(overwrite)
        self._plan = plan
        self._folders = output_folders(s for s in plan.steps.values() if s.spec.writes_files)

    def open(self) -> OutputSession | None:
        """A new run's output session, its folders locked (None if the chain writes no files
        into a constant folder). Raises :class:`StartRefused`."""
        if not self._folders:
            return None
        try:
            return OutputSession(self._folders).open()
        except FolderBusy as exc:
            raise StartRefused(str(exc)) from None
        except (RecordError, OSError) as exc:
            if isinstance(exc, OSError):
                where = f" {exc.filename!r}" if exc.filename else ""
                message = f"cannot write into the output folder{where}: {exc.strerror or exc}"
            else:
                message = str(exc)
            raise StartRefused(message) from None

    def engine_options(self, outputs: OutputSession | None) -> dict[str, Any]:
        """The engine's keyword arguments for a run with ``outputs``."""
        plan = self._plan

        def prepare() -> None:
            preflight(plan, outputs.is_output if outputs is not None else None)

        prepared: Callable[[], None] = prepare
        return {"outputs": outputs, "budget": self.budget, "overwrite": self.overwrite,
                "prepare": prepared}
