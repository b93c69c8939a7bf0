"""Immutable status snapshots: the single source of truth about a run.

``seq`` increases by one on every change of a runner's state, across all its runs; two snapshots
with the same ``run_id`` and ``seq`` are identical (``taken_at`` included: a snapshot is built once
per change and handed out again until the next change).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, get_args

from .states import ACTIVE_STATES, FINISHED_STATES, RUN_STATES, RunState

__all__ = [
    "ACTIVE_STATES",
    "FINISHED_STATES",
    "NODE_STATES",
    "RUN_STATES",
    "STATES",
    "Ack",
    "ErrorInfo",
    "Failure",
    "NodeState",
    "NodeStatus",
    "RunState",
    "Status",
    "StatusDict",
]

STATES = RUN_STATES  # the older name, kept for existing imports

NodeState = Literal["pending", "running", "paused", "done", "failed", "stopped", "not_run"]
"""The state of one node in a run (``NodeStatus.state``); each says something true right now:

- ``pending``: has not run yet, and may still run (the run is idle, running or paused).
- ``running``: the run is running (or pausing, or stopping) and this node has executions in
  flight, or it is a per-item node that has run for some items and has more to come.
- ``paused``: as ``running``, while the run is paused: its executions in flight (``running``
  of them) are parked at a checkpoint, nothing of it executes.
- ``done``: it has run everything it will run in this run: a node that runs once ran; a
  per-item node ran for every item that reached it (all items are counted); or the run completed.
- ``failed``: it raised in this run (for some items, or its one execution), and is not in flight.
- ``stopped``: the run is stopping or ended (stopped, failed) after this node ran for some of
  its items but not all: the rest will not run.
- ``not_run``: the run is stopping or ended before this node ran at all (in a completed run:
  collectors, and the nodes after them, when every item was already complete on resume).
"""

NODE_STATES: tuple[NodeState, ...] = get_args(NodeState)


class NodeStatusDict(TypedDict):
    state: NodeState
    count: int
    running: int
    total_s: float
    mean_s: float
    progress: float | None


class FailureDict(TypedDict):
    item: int | None
    label: str | None
    node: str
    message: str


class ErrorDict(FailureDict):
    traceback: str


class StatusDict(TypedDict):
    run_id: str
    state: RunState
    seq: int
    done: int
    failed: int
    skipped: int
    total: int | None
    current: list[str]
    nodes: dict[str, NodeStatusDict]
    elapsed: float
    active_s: float
    eta: float | None
    rate: float | None
    not_run: int | None
    error: ErrorDict | None
    failures: list[FailureDict]
    started_at: float | None
    taken_at: float
    reason: str | None
    epoch: str
    dashboard: str | None


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """Per-node state and timing (``state``: see :data:`NodeState`).

    ``count`` executions finished, ``running`` in flight now (parked at a checkpoint while the
    run is paused). ``total_s`` is the time they spent executing, time parked at a checkpoint
    excluded, so ``mean_s`` does not grow while the run is paused.
    """

    state: NodeState
    count: int
    running: int
    total_s: float
    progress: float | None = None

    @property
    def mean_s(self) -> float:
        return self.total_s / self.count if self.count else 0.0

    def to_dict(self) -> NodeStatusDict:
        return {
            "state": self.state,
            "count": self.count,
            "running": self.running,
            "total_s": self.total_s,
            "mean_s": self.mean_s,
            "progress": self.progress,
        }


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed item (or a failed node outside the per-item part, where ``item`` is None)."""

    item: int | None
    label: str | None
    node: str
    message: str

    def to_dict(self) -> FailureDict:
        return {"item": self.item, "label": self.label, "node": self.node, "message": self.message}


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The last error of a run: which node, on which item, what and where."""

    node: str
    message: str
    traceback: str
    item: int | None = None
    label: str | None = None

    def to_dict(self) -> ErrorDict:
        return {
            "item": self.item,
            "label": self.label,
            "node": self.node,
            "message": self.message,
            "traceback": self.traceback,
        }


@dataclass(frozen=True, slots=True)
class Status:
    """An immutable snapshot of a run. Obtain one with ``Runner.status()``.

    ``done`` counts finished items, including ``skipped`` ones (already complete in a resumed
    batch); ``failed`` counts failed items; ``total - done - failed`` have not run (yet):
    :attr:`remaining`, and :attr:`not_run` once the run has ended. ``current`` names the nodes
    executing now (while ``stopping``/``pausing``: the ones waited for; empty while ``paused``,
    where nothing executes).

    Times are as of ``taken_at`` (a snapshot is built once per change, so they do not tick on
    their own): ``elapsed`` is wall-clock seconds since the start, pauses included; ``active_s``
    is ``elapsed`` minus the time spent ``paused``. ``rate`` (items finished per active second)
    and ``eta`` (seconds left at that rate, when the total is known) are given only while the
    run is ``running``: None while pausing, paused, stopping or finished, where nothing counts
    down.

    ``reason`` says why the run ended or is ending: the reason given to ``stop()`` ("stopped by
    user" by default) while ``stopping`` and once ``stopped``, an error summary once ``failed``,
    None otherwise. ``epoch`` identifies the :class:`~chainlib.Runner` (unique per instance): a
    consumer that sees it change is following a different runner, whose ``seq`` starts afresh.
    ``dashboard`` is the link to the Dask dashboard of the cluster the run uses, if it has one.
    """

    run_id: str
    state: RunState
    seq: int
    done: int
    failed: int
    skipped: int
    total: int | None
    current: tuple[str, ...]
    nodes: Mapping[str, NodeStatus]
    elapsed: float
    eta: float | None
    rate: float | None
    error: ErrorInfo | None
    failures: tuple[Failure, ...]
    started_at: float | None
    taken_at: float
    reason: str | None = None
    epoch: str = ""
    active_s: float = 0.0
    dashboard: str | None = None

    @property
    def remaining(self) -> int | None:
        """Items not yet run (``total - done - failed``), when the total is known."""
        return None if self.total is None else self.total - self.done - self.failed

    @property
    def not_run(self) -> int | None:
        """Items this run did not run and never will (``total - done - failed``) once it has
        ended (0 when completed); None while it is idle or active, or when the total is unknown
        (a run stopped before its iterator was exhausted, whose length is not known ahead)."""
        if self.state not in FINISHED_STATES:
            return None
        return self.remaining

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def to_dict(self, *, max_failures: int | None = None) -> StatusDict:
        """A JSON-safe dict. ``max_failures`` keeps only the newest failures (for the panel)."""
        failures = self.failures if max_failures is None else self.failures[-max_failures:]
        return {
            "run_id": self.run_id,
            "state": self.state,
            "seq": self.seq,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "total": self.total,
            "current": list(self.current),
            "nodes": {k: v.to_dict() for k, v in self.nodes.items()},
            "elapsed": self.elapsed,
            "active_s": self.active_s,
            "eta": self.eta,
            "rate": self.rate,
            "not_run": self.not_run,
            "error": None if self.error is None else self.error.to_dict(),
            "failures": [f.to_dict() for f in failures],
            "started_at": self.started_at,
            "taken_at": self.taken_at,
            "reason": self.reason,
            "epoch": self.epoch,
            "dashboard": self.dashboard,
        }

    def _repr_html_(self) -> str:
        """A card in notebooks: state, counts, rate, ETA, dashboard link, last error, nodes."""
        from .html import status_html  # html renders the dict form: no import circle

        return status_html(self.to_dict(max_failures=20))

    def __str__(self) -> str:
        total = "?" if self.total is None else str(self.total)
        return (f"<Status {self.run_id} #{self.seq} {self.state} {self.done}/{total} "
                f"failed={self.failed}>")


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to a control command: accepted or not, why, and the status right after it."""

    command: str
    accepted: bool
    reason: str
    status: Status

    def __bool__(self) -> bool:
        return self.accepted

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "accepted": self.accepted,
            "reason": self.reason,
            "status": self.status.to_dict(),
        }
