"""The statistics of one run, and the :class:`~.status.Status` snapshots built from them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import MappingProxyType

from .control import Control
from .states import ACTIVE_STATES, RunState
from .status import ErrorInfo, Failure, NodeState, NodeStatus, Status


class Ledger:
    """Counters of one run: items, per-node executions and timings, failures.

    No lock of its own: guarded by the runner's lock (``Control.lock``). The engine of the run
    changes it and then calls ``Control.emit`` in the same critical section, so every change has
    its own ``seq`` and :meth:`snapshot` can hand out one snapshot per ``seq``.
    """

    def __init__(self, nodes: Iterable[str], *, dashboard: str | None = None) -> None:
        self.nodes = tuple(nodes)
        self.dashboard = dashboard
        self.done = 0
        self.failed = 0
        self.skipped = 0
        self.total: int | None = None
        self.running: dict[str, int] = dict.fromkeys(self.nodes, 0)
        self.count: dict[str, int] = dict.fromkeys(self.nodes, 0)
        self.seconds: dict[str, float] = dict.fromkeys(self.nodes, 0.0)
        self.node_failures: dict[str, int] = dict.fromkeys(self.nodes, 0)
        self.progress: dict[str, float | None] = dict.fromkeys(self.nodes)
        self.per_item: frozenset[str] = frozenset()
        """The iterator and the nodes after it, which run once per item (set by the engine);
        every other node runs once per run."""
        self.iterator: str | None = None
        """The iterator's node id (set by the engine); None in a chain without one."""
        self.failures: list[Failure] = []
        self.error: ErrorInfo | None = None
        self._snapshot: Status | None = None

    def fail(self, failure: Failure, error: ErrorInfo) -> None:
        """Record a failure and make it the run's last error."""
        self.failures.append(failure)
        self.error = error

    def error_summary(self) -> str:
        """One line saying why the run failed (the run's ``reason`` once ``failed``)."""
        error = self.error
        if error is None:
            return "failed"
        where = f"node {error.node!r}" if error.node else "chainlib"
        if error.label is not None:
            where += f" on {error.label}"
        elif error.item is not None:
            where += f" on item #{error.item}"
        return f"{where}: {error.message}"

    def snapshot(self, control: Control) -> Status:
        """The status now (lock held). Built once per ``seq``: equal seqs give one snapshot."""
        snap = self._snapshot
        if snap is not None and snap.seq == control.seq and snap.run_id == control.run_id:
            return snap
        state = control.state
        elapsed, active = control.times()
        finished = self.done + self.failed
        rate: float | None = None
        eta: float | None = None
        if state == "running" and active > 0 and finished:  # only then does anything count down
            rate = finished / active
            if self.total is not None:
                eta = max(0, self.total - finished) / rate
        items_over = self._items_over()
        nodes = {
            nid: NodeStatus(
                self._node_state(nid, state, items_over),
                self.count[nid],
                self.running[nid],
                self.seconds[nid],
                self.progress[nid],
            )
            for nid in self.nodes
        }
        executing = state in ("running", "pausing", "stopping")  # paused: all parked
        snap = Status(
            run_id=control.run_id,
            state=state,
            seq=control.seq,
            done=self.done,
            failed=self.failed,
            skipped=self.skipped,
            total=self.total,
            current=tuple(nid for nid, n in self.running.items() if n) if executing else (),
            nodes=MappingProxyType(nodes),
            elapsed=elapsed,
            eta=eta,
            rate=rate,
            error=self.error,
            failures=tuple(self.failures),
            started_at=control.started_wall,
            taken_at=time.time(),
            reason=control.reason,
            epoch=control.epoch,
            active_s=active,
            dashboard=self.dashboard,
        )
        self._snapshot = snap
        return snap

    def _items_over(self) -> bool:
        """Every item of the run is counted (done or failed), so no per-item node will run again.

        Not while the iterator has given more items than its ``length`` said: the length was
        wrong, more items may come, and the engine corrects ``total`` once the iterator is
        exhausted (until then the iterator and the nodes after it are still running).
        """
        total = self.total
        if total is None or self.done + self.failed < total:
            return False
        return self.iterator is None or self.count[self.iterator] <= total

    def _node_state(self, nid: str, state: RunState, items_over: bool) -> NodeState:
        """The state of node ``nid`` while the run is ``state`` (the rules: ``status.NodeState``).

        ``items_over``: every item of the run is counted (done or failed), so no per-item node
        will run again.
        """
        if state == "idle":
            return "pending"
        count = self.count[nid]
        if self.running[nid] and state in ACTIVE_STATES:
            return "paused" if state == "paused" else "running"
        if self.node_failures[nid]:
            return "failed"
        if state == "completed" and count == 0 and nid not in self.per_item:
            return "not_run"  # collectors when every item was already complete (resume)
        if state == "completed" or (items_over if nid in self.per_item else count > 0):
            return "done"
        if state in ("running", "pausing"):
            return "running" if count else "pending"
        if state == "paused":
            return "paused" if count else "pending"
        return "stopped" if count else "not_run"  # stopping, stopped, failed: nothing new starts
