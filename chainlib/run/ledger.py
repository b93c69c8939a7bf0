"""The statistics of one run, and the :class:`~.status.Status` snapshots built from them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import MappingProxyType

from .control import Control
from .status import ErrorInfo, Failure, NodeStatus, Status


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
        elapsed, active = control.times()
        finished = self.done + self.failed
        rate = finished / active if active > 0 and finished else None
        eta: float | None = None
        if rate and self.total is not None:
            eta = max(0, self.total - finished) / rate
        nodes = {
            nid: NodeStatus(
                "running" if self.running[nid] else
                "failed" if self.node_failures[nid] else
                "done" if self.count[nid] else "pending",
                self.count[nid],
                self.running[nid],
                self.seconds[nid],
                self.progress[nid],
            )
            for nid in self.nodes
        }
        snap = Status(
            run_id=control.run_id,
            state=control.state,
            seq=control.seq,
            done=self.done,
            failed=self.failed,
            skipped=self.skipped,
            total=self.total,
            current=tuple(nid for nid, n in self.running.items() if n),
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
            dashboard=self.dashboard,
        )
        self._snapshot = snap
        return snap
