"""The control core of a run: one Condition guarding a small, explicit state machine.

Modelled on CPython's ``concurrent/futures/_base.py``: the states are constants (declared once in
:mod:`.states`), every transition is an edge of :data:`TRANSITIONS` applied by one method, the
gate that lets executions begin is computed from the state, and the part of the API that only
executors (the engine, local worker threads, the Dask bridge) may call is marked below.

Invariants. They hold whenever ``cond`` is not held; everything here is read and written only
with it held, except the fast-path read of ``gate_open`` noted in (3).

1. ``state`` is one of :data:`~.states.RUN_STATES` and changes only in :meth:`Control._enter`,
   along an edge of :data:`TRANSITIONS`; anything else is a bug and raises.
2. ``seq`` increases by exactly one on every change (a transition, or a statistic the caller
   changed), across all runs of the runner; each change emits exactly one event to the
   subscribers and sets every watcher flag (:meth:`Control.emit`; inlined, to the same effect,
   in :meth:`Control.enter` and :meth:`Control.leave`, which run twice per node).
3. The gate is open exactly when ``state == "running"`` and the run is not aborting.
   ``gate_open`` is that value, recomputed in :meth:`Control._derive` only, which runs after
   every transition and on abort; an unlocked read of it is a fast path that is always
   confirmed under the lock before it is acted on.
4. No execution begins while the gate is closed: :meth:`Control.enter` (and
   :meth:`Control.checkpoint`) park while a pause is requested and raise ``RunStopped`` when the
   run is stopping, aborting or over. So no node starts after a pause or stop was accepted.
5. ``busy`` counts executions (node calls, or batches in flight on a cluster) that are not
   parked; it is never negative. ``pausing`` becomes ``paused`` exactly when ``busy`` reaches
   zero (checked at the pause request and at every decrement), so ``paused`` means that nothing
   was executing anywhere when it was entered.
6. Paused time: ``paused_since`` is set exactly while ``state == "paused"``; each paused interval
   is added to ``paused_total`` once, when the state leaves ``paused`` (:meth:`Control._enter`).
   Elapsed and active (unpaused) times come from :meth:`Control.times` only.
7. ``reason`` is None while ``running``, ``pausing``, ``paused``, ``completed`` or ``idle``; it
   says why while ``stopping`` and once ``stopped`` or ``failed``.
8. Aborting (:meth:`Control.abort`, the one abort path) lasts until the next ``start``; a run
   that aborted ends ``failed``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Final, Literal

from ..errors import RunStopped
from .events import Event, EventKind, Fanout
from .states import ACTIVE_STATES, FINISHED_STATES, Command, RunState

Edge = Literal["start", "pause", "settle", "resume", "stop", "complete", "halt", "fail"]

_ANY_FINISHED: Final = ("idle", "stopped", "completed", "failed")
TRANSITIONS: Final[dict[Edge, tuple[tuple[RunState, ...], RunState]]] = {
    # edge:      (from states,                                  to state)
    "start":    (_ANY_FINISHED,                                 "running"),
    "pause":    (("running",),                                  "pausing"),
    "settle":   (("pausing",),                                  "paused"),   # busy reached 0
    "resume":   (("pausing", "paused"),                         "running"),
    "stop":     (("running", "pausing", "paused"),              "stopping"),
    "complete": (("running",),                                  "completed"),
    "halt":     (("stopping",),                                 "stopped"),
    "fail":     (("running", "pausing", "paused", "stopping"),  "failed"),
}  # fmt: skip
"""Every edge of the state machine. User commands are the edges of the same name."""

_ALREADY: Final[dict[Command, tuple[RunState, ...]]] = {
    "start": (), "pause": ("pausing", "paused"), "resume": ("running",),
    "stop": ("stopping", "stopped"),
}
"""States where a command has nothing left to do: it is accepted, and changes nothing."""

_ACCEPTED: Final[dict[Command, str]] = {
    "start": "started", "pause": "pause requested", "resume": "resumed", "stop": "stop requested",
}
DEFAULT_STOP_REASON: Final = "stopped by user"


class Control:
    """The state machine of one :class:`~chainlib.Runner`, across all its runs.

    ``lock`` is the runner's one lock and ``cond`` the same lock with wait/notify. Hot paths take
    ``lock`` directly (a C-level context manager); both are public so that the runner's parts can
    guard their own data with it (the statistics, the event fan-out), never to bypass the methods.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.epoch = uuid.uuid4().hex
        """Unique per runner: tells one runner's snapshots from another's."""
        self.fanout = Fanout()
        self.seq = 0
        self.state: RunState = "idle"
        self.run_id = ""
        self.reason: str | None = None
        self.gate_open = False
        self.busy = 0
        self.started_wall: float | None = None
        self._aborted = False
        self._started = 0.0
        self._ended: float | None = None
        self._paused_since: float | None = None
        self._paused_total = 0.0

    # ------------------------------------------------------------------ queries (lock held)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def halting(self) -> bool:
        """Stopping, or aborting: executions must end at their next checkpoint."""
        return self._aborted or self.state == "stopping"

    @property
    def aborted(self) -> bool:
        return self._aborted

    def times(self) -> tuple[float, float]:
        """``(elapsed, active)`` seconds of the current run; ``active`` excludes paused time."""
        if self.started_wall is None:
            return 0.0, 0.0
        end = self._ended if self._ended is not None else time.monotonic()
        paused = self._paused_total
        if self._paused_since is not None:
            paused += end - self._paused_since
        elapsed = end - self._started
        return elapsed, max(0.0, elapsed - paused)

    def watch(self, flag: threading.Event) -> Callable[[], None]:
        """Set ``flag`` on every change; returns the function that removes the watch. Takes the
        lock itself (call it without holding the lock)."""
        with self.lock:
            self.fanout.add_watcher(flag)

        def unwatch() -> None:
            with self.lock:
                self.fanout.remove_watcher(flag)

        return unwatch

    # ------------------------------------------------------------------ commands (lock held)

    def command(self, command: Command, reason: str | None = None) -> tuple[bool, str]:
        """Apply a user command; returns ``(accepted, why)``. Never blocks, never raises."""
        state = self.state
        if state in _ALREADY[command]:
            return True, f"already {state}"
        edge: Edge = command
        if state not in TRANSITIONS[edge][0]:
            if command == "start":
                return False, f"a run is already {state}"
            return False, f"cannot {command}: run is {state}"
        if command == "start":
            self._new_run()
        elif command == "stop":
            self.reason = reason or DEFAULT_STOP_REASON
        self._enter(edge)
        if command == "pause":
            self._settle()
        return True, _ACCEPTED[command]

    def emit(
        self,
        kind: EventKind,
        node: str | None = None,
        item: int | None = None,
        label: str | None = None,
        message: str | None = None,
        progress: float | None = None,
    ) -> None:
        """Record one change: bump ``seq``, queue its event, set the watcher flags (invariant 2).

        Callers change their statistics first, then emit, in one critical section.
        """
        self.seq += 1
        if self.fanout.subscribers or self.fanout.watchers:
            self._publish(kind, node, item, label, message, progress)

    def _publish(self, kind: EventKind, node: str | None, item: int | None, label: str | None,
                 message: str | None, progress: float | None) -> None:
        fanout = self.fanout
        if fanout.subscribers:
            event = Event(kind, self.seq, self.run_id, self.state, node, item, label, message,
                          progress)
            for sub in fanout.subscribers:
                sub.push(event)
        for flag in fanout.watchers:
            flag.set()

    # ------------------------------------------------------------------ internals

    def _new_run(self) -> None:
        self.run_id = uuid.uuid4().hex[:12]
        self.reason = None
        self.busy = 0
        self._aborted = False
        self.started_wall = time.time()
        self._started = time.monotonic()
        self._ended = None
        self._paused_since = None
        self._paused_total = 0.0

    def _enter(self, edge: Edge) -> None:
        """The one place where ``state`` changes (invariants 1, 3, 6)."""
        sources, target = TRANSITIONS[edge]
        if self.state not in sources:
            raise RuntimeError(f"chainlib bug: no edge {edge!r} from state {self.state!r}")
        now = time.monotonic()
        if self._paused_since is not None:
            self._paused_total += now - self._paused_since
            self._paused_since = None
        if target == "paused":
            self._paused_since = now
        if target in FINISHED_STATES:
            self._ended = now
        self.state = target
        self._derive()
        self.emit("state")
        self.cond.notify_all()

    def _derive(self) -> None:
        self.gate_open = self.state == "running" and not self._aborted

    def _settle(self) -> None:
        if self.state == "pausing" and self.busy == 0:
            self._enter("settle")

    def _wait_gate(self) -> None:
        """Park while a pause is requested; raise ``RunStopped`` unless the gate opens."""
        while not self.gate_open:
            if self._aborted or self.state not in ("pausing", "paused"):
                raise RunStopped()
            self.cond.wait()

    # ================================================================== for executors only
    # Called by the run's engine and its executors (local threads, the Dask bridge), never by
    # users. All but checkpoint() expect the lock to be held.

    def enter(self, node: str | None = None, item: int | None = None, label: str | None = None,
              message: str | None = None) -> None:
        """An execution begins: pass the gate (invariant 4), count it busy, emit
        ``node_started`` (one call on the hot path: the caller's statistics follow it)."""
        if not self.gate_open:
            self._wait_gate()
        self.busy += 1
        self.seq += 1  # emit("node_started", ...) inlined: this is the per-node hot path
        if self.fanout.subscribers or self.fanout.watchers:
            self._publish("node_started", node, item, label, message, None)

    def leave(self, kind: EventKind | None = None, node: str | None = None,
              item: int | None = None, label: str | None = None,
              message: str | None = None) -> None:
        """An execution ended (or parked elsewhere): uncount it, emit ``kind`` if given (after
        the caller changed its statistics); a pending pause may settle."""
        self.busy -= 1
        if kind is not None:  # emit(kind, ...) inlined: the per-node hot path
            self.seq += 1
            if self.fanout.subscribers or self.fanout.watchers:
                self._publish(kind, node, item, label, message, None)
        if self.state == "pausing" and self.busy == 0:
            self._enter("settle")

    def rejoin(self) -> None:
        """An execution parked elsewhere (a cluster task) runs again."""
        self.busy += 1

    def checkpoint(self) -> None:
        """Inside an execution (``ctx.checkpoint()``): park while paused, raise on stop. Takes the
        lock itself, only when the gate is closed."""
        if self.gate_open:  # unlocked fast path (invariant 3)
            return
        with self.cond:
            if self.gate_open:
                return
            if self._aborted or self.state not in ("pausing", "paused"):
                raise RunStopped()
            self.leave()
            try:
                self._wait_gate()
            finally:
                self.busy += 1

    def abort(self) -> None:
        """The one abort path: the run will fail; every execution stops at its next checkpoint
        and parked ones wake up to raise ``RunStopped``."""
        self._aborted = True
        self._derive()
        self.cond.notify_all()

    def finish(self, failure: str | None) -> None:
        """The driver's last act: the final state. ``failure`` (an error summary) fails the run.

        Without a failure, a pause still pending resolves first (resume or stop), so that a run
        never completes from ``pausing`` or ``paused``. While the process shuts down the engine
        passes no failure (and has not aborted): what raises then is the teardown's doing, and
        the run, stopped with the shutdown's reason, ends ``stopped`` (see :mod:`.lifecycle`).
        """
        if failure is None:
            while not self._aborted and self.state in ("pausing", "paused"):
                self.cond.wait()
        if failure is not None or self._aborted:
            self.reason = failure or "aborted"
            self._enter("fail")
        elif self.state == "stopping":
            self._enter("halt")
        else:
            self._enter("complete")
