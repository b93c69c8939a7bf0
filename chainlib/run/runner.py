"""The Runner: one chain, executed off the caller's thread, with Play / Pause / Stop.

Invariants (all guarded by ``self._cond``, the runner's one lock):

- ``_seq`` increases by one on every change and never resets (not even for a new run); each change
  emits exactly one event to subscribers and wakes the watchers.
- A node starts only through :meth:`_begin`, which checks the gate and marks the node running in
  one critical section: no node starts while a pause or stop is requested.
- ``_busy`` counts threads executing a node and not parked at a checkpoint (and, with a cluster,
  batches of items in flight whose task has not reported parking). ``pausing`` becomes
  ``paused`` exactly when it reaches zero, so ``paused`` means no node is executing anywhere.
- An item is counted once: done, failed, or (stopped mid-way) not run; ``done + failed <= total``.
- The final state is set last by the driver thread, after every worker thread has ended.
"""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..api.context import Context
from ..api.item import Item, Lazy
from ..api.types import type_name
from ..chain.model import Chain, NodeHandle
from ..chain.validate import Plan, Step, compile_chain
from ..errors import RunStopped
from ..manifest import Manifest
from .events import Event, EventKind, Subscription
from .status import (
    ACTIVE_STATES,
    ErrorInfo,
    Failure,
    NodeStatus,
    RunState,
    Status,
)

if TYPE_CHECKING:
    from .observable import RunStateMirror

OnError = Literal["stop", "skip"]
Command = Literal["start", "pause", "resume", "stop"]


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


class _NodeFailed(Exception):
    """A node raised; carries the node id (and the item, when it failed while being fetched)."""

    def __init__(self, node: str, exc: BaseException, index: int | None = None,
                 label: str | None = None) -> None:
        super().__init__(node)
        self.node = node
        self.exc = exc
        self.index = index
        self.label = label


class Runner:
    """Runs a chain on threads it owns; control it from any thread.

    ``workers`` threads process the iterator's items in parallel (collector order is kept).
    ``on_error="stop"`` ends the run as ``failed`` at the first failing item; ``"skip"`` records the
    failure and goes on. ``resume=True`` skips items that a previous run already completed (see
    :mod:`chainlib.manifest`).
    """

    def __init__(
        self,
        chain: Chain,
        *,
        workers: int = 1,
        on_error: OnError = "stop",
        resume: bool = False,
        cluster: Any = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if on_error not in ("stop", "skip"):
            raise ValueError(f"on_error must be 'stop' or 'skip', got {on_error!r}")
        self.chain = chain
        self.workers = workers
        self.on_error: OnError = on_error
        self.resumable = resume
        self.cluster = cluster
        self._plan: Plan = compile_chain(chain)
        self._writers = tuple(s for s in self._plan.item if s.spec.writes_files)
        self._writer_keys = [(w.id, o) for w in self._writers for o in w.spec.outputs]
        self._collect_keys = [
            (c, (c.links[c.spec.collect or ""].node, c.links[c.spec.collect or ""].output))
            for c in self._plan.collectors
        ]
        self._output_folder = self._find_output_folder(resume)
        self._preview_keys = [
            (step.id, name)
            for step in reversed((*filter(None, [self._plan.iterator]), *self._plan.item))
            for name, tp in step.spec.outputs.items()
            if type_name(tp) == "Image"
        ]
        self._keep_preview = False
        self._preview: tuple[int, str | None, Any] | None = None
        # The runner's one lock. Hot paths take ``_lock`` directly (a C-level context manager);
        # ``_cond`` is the same lock with wait/notify for parking and waiting.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._seq = 0
        self._state: RunState = "idle"
        self._run_id = ""
        self._subscribers: list[Subscription] = []
        self._watchers: list[threading.Event] = []
        self._finish_callbacks: list[Callable[[Status], None]] = []
        self._mirror: RunStateMirror | None = None
        self._mirror_lock = threading.Lock()
        self._snapshot: Status | None = None
        self._driver: threading.Thread | None = None
        self._reset_run()

    def _find_output_folder(self, resume: bool) -> str | None:
        folders = {str(w.constants.get("folder")) for w in self._writers
                   if isinstance(w.constants.get("folder"), str)}
        if resume and (not self._writers or len(folders) != 1 or
                       any("folder" in w.links for w in self._writers)):
            raise ValueError(
                "resume=True needs per-item nodes that write files (such as image.save) into one "
                "constant output folder, where the manifest of finished items is kept"
            )
        return next(iter(sorted(folders))) if folders else None

    # ------------------------------------------------------------------ per-run data (locked)

    def _reset_run(self) -> None:
        self._done = 0
        self._failed = 0
        self._skipped = 0
        self._manifest: Manifest | None = None
        self._total: int | None = None
        self._busy = 0
        self._pause_requested = False
        self._stop_requested = False
        self._abort = False
        self._gate_closed = False  # pause, stop or abort requested: the slow path of _begin
        self._started_wall: float | None = None
        self._started_mono = 0.0
        self._ended_mono: float | None = None
        self._paused_since: float | None = None
        self._paused_total = 0.0
        self._running: dict[str, int] = dict.fromkeys(self._plan.steps, 0)
        self._count: dict[str, int] = dict.fromkeys(self._plan.steps, 0)
        self._seconds: dict[str, float] = dict.fromkeys(self._plan.steps, 0.0)
        self._node_failures: dict[str, int] = dict.fromkeys(self._plan.steps, 0)
        self._progress: dict[str, float | None] = dict.fromkeys(self._plan.steps)
        self._failures: list[Failure] = []
        self._error: ErrorInfo | None = None
        self._collected: dict[str, dict[int, Any]] = {c.id: {} for c in self._plan.collectors}
        self._remote: set[int] = set()
        self._remote_parked_set: set[int] = set()
        self._results: dict[tuple[str, str], Any] = {}

    # ------------------------------------------------------------------ public control surface

    @property
    def run_id(self) -> str:
        return self._run_id

    def start(self) -> Ack:
        """Start a run (a new run with a new run id if a previous one has finished)."""
        with self._cond:
            if self._state in ACTIVE_STATES:
                return self._ack("start", False, f"a run is already {self._state}")
            self._reset_run()
            self._run_id = uuid.uuid4().hex[:12]
            self._started_wall = time.time()
            self._started_mono = time.monotonic()
            self._set_state("running")
            self._driver = threading.Thread(
                target=self._drive, name=f"chainlib-run-{self._run_id}", daemon=True
            )
            self._driver.start()
            return self._ack("start", True, "started")

    def pause(self) -> Ack:
        """Ask the run to pause at its next checkpoints (``pausing``, then ``paused``)."""
        with self._cond:
            if self._state in ("pausing", "paused"):
                return self._ack("pause", True, f"already {self._state}")
            if self._state != "running":
                return self._ack("pause", False, f"cannot pause: run is {self._state}")
            self._pause_requested = True
            self._gate_closed = True
            self._set_state("pausing")
            self._maybe_paused()
            return self._ack("pause", True, "pause requested")

    def resume(self) -> Ack:
        """Continue a pausing or paused run."""
        with self._cond:
            if self._state == "running":
                return self._ack("resume", True, "already running")
            if self._state not in ("pausing", "paused"):
                return self._ack("resume", False, f"cannot resume: run is {self._state}")
            if self._paused_since is not None:
                self._paused_total += time.monotonic() - self._paused_since
                self._paused_since = None
            self._pause_requested = False
            self._gate_closed = self._stop_requested or self._abort
            self._set_state("running")
            self._cond.notify_all()
            return self._ack("resume", True, "resumed")

    def stop(self) -> Ack:
        """Ask the run to stop at its next checkpoints (``stopping``, then ``stopped``)."""
        with self._cond:
            if self._state in ("stopping", "stopped"):
                return self._ack("stop", True, f"already {self._state}")
            if self._state not in ACTIVE_STATES:
                return self._ack("stop", False, f"cannot stop: run is {self._state}")
            if self._paused_since is not None:
                self._paused_total += time.monotonic() - self._paused_since
                self._paused_since = None
            self._stop_requested = True
            self._pause_requested = False
            self._gate_closed = True
            self._set_state("stopping")
            self._cond.notify_all()
            return self._ack("stop", True, "stop requested")

    def command(self, name: str) -> Ack:
        """Dispatch a command by name (``start``, ``pause``, ``resume``, ``stop``)."""
        handler = {"start": self.start, "pause": self.pause, "resume": self.resume,
                   "stop": self.stop}.get(name)
        if handler is None:
            with self._cond:
                return self._ack(name, False, f"unknown command {name!r}")
        return handler()

    def status(self) -> Status:
        """The latest snapshot; callable any time from any thread."""
        with self._cond:
            return self._snapshot_locked()

    def wait(self, timeout: float | None = None) -> Status:
        """Block until the run ends and return its final status.

        Raises ``TimeoutError`` after ``timeout`` seconds. A ``KeyboardInterrupt`` (Ctrl-C, or a
        notebook's interrupt button) while waiting asks the run to stop, waits for ``stopped``
        (a second interrupt gives up waiting) and re-raises.
        """
        try:
            return self._wait_finished(timeout)
        except KeyboardInterrupt:
            self.stop()
            self._wait_finished(None)
            raise

    def _wait_finished(self, timeout: float | None) -> Status:
        # Short slices: a pending interrupt is seen within 0.2 s even where a lock wait is not
        # interruptible (Windows, or an interrupt raised by _thread.interrupt_main).
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                if self._state not in ACTIVE_STATES:
                    return self._snapshot_locked()
                left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
                if left <= 0:
                    raise TimeoutError(f"run {self._run_id} still {self._state} after {timeout} s")
                self._cond.wait(left)

    async def wait_async(self, timeout: float | None = None) -> Status:
        """Await the end of the run without blocking the event loop (use in notebooks)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Status] = loop.create_future()

        def settle(status: Status) -> None:
            if not future.done():
                future.set_result(status)

        def done(status: Status) -> None:
            loop.call_soon_threadsafe(settle, status)

        with self._cond:
            if self._state not in ACTIVE_STATES:
                return self._snapshot_locked()
            self._finish_callbacks.append(done)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            with self._cond:
                if done in self._finish_callbacks:
                    self._finish_callbacks.remove(done)

    def __await__(self) -> Any:
        return self.wait_async().__await__()

    def subscribe(
        self, callback: Callable[[Event], object], *, maxlen: int = 10_000
    ) -> Subscription:
        """Deliver every event to ``callback`` on a dedicated thread (see :mod:`.events`)."""
        sub = Subscription(callback, maxlen=maxlen, on_close=self._unsubscribe)
        with self._cond:
            self._subscribers.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._cond:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def watch(self, flag: threading.Event) -> Callable[[], None]:
        """Set ``flag`` on every change (cheap, lossless wake-up for coalescing publishers).

        Returns a function that removes the watch.
        """
        with self._cond:
            self._watchers.append(flag)

        def unwatch() -> None:
            with self._cond:
                if flag in self._watchers:
                    self._watchers.remove(flag)

        return unwatch

    @property
    def state(self) -> RunStateMirror:
        """A traitlets ``HasTraits`` mirror of the latest status (observe it from any thread)."""
        with self._mirror_lock:  # not the runner's lock: the mirror subscribes through it
            if self._mirror is None:
                from .observable import RunStateMirror

                self._mirror = RunStateMirror(self)
            return self._mirror

    # ------------------------------------------------------------------ changes (under the lock)

    def _ack(self, command: str, accepted: bool, reason: str) -> Ack:
        return Ack(command, accepted, reason, self._snapshot_locked())

    def _change(
        self,
        kind: EventKind,
        node: str | None = None,
        item: int | None = None,
        label: str | None = None,
        message: str | None = None,
        progress: float | None = None,
    ) -> None:
        self._seq += 1
        if self._subscribers:
            event = Event(kind, self._seq, self._run_id, self._state, node, item, label,
                          message, progress)
            for sub in self._subscribers:
                sub.push(event)
        for flag in self._watchers:
            flag.set()

    def _set_state(self, state: RunState) -> None:
        self._state = state
        if state == "paused":
            self._paused_since = time.monotonic()
        self._change("state")
        self._cond.notify_all()

    def _maybe_paused(self) -> None:
        if self._state == "pausing" and self._busy == 0:
            self._set_state("paused")

    def _snapshot_locked(self) -> Status:
        snap = self._snapshot
        if snap is not None and snap.seq == self._seq:
            return snap
        now = time.monotonic()
        if self._started_wall is None:
            elapsed = active = 0.0
        else:
            end = self._ended_mono if self._ended_mono is not None else now
            elapsed = end - self._started_mono
            paused = self._paused_total
            if self._paused_since is not None:
                paused += end - self._paused_since
            active = max(0.0, elapsed - paused)
        finished = self._done + self._failed
        rate = finished / active if active > 0 and finished else None
        eta: float | None = None
        if rate and self._total is not None:
            eta = max(0, self._total - finished) / rate
        nodes = {
            nid: NodeStatus(
                "running" if self._running[nid] else
                "failed" if self._node_failures[nid] else
                "done" if self._count[nid] else "pending",
                self._count[nid],
                self._running[nid],
                self._seconds[nid],
                self._progress[nid],
            )
            for nid in self._plan.steps
        }
        snap = Status(
            run_id=self._run_id,
            state=self._state,
            seq=self._seq,
            done=self._done,
            failed=self._failed,
            skipped=self._skipped,
            total=self._total,
            current=tuple(nid for nid, n in self._running.items() if n),
            nodes=MappingProxyType(nodes),
            elapsed=elapsed,
            eta=eta,
            rate=rate,
            error=self._error,
            failures=tuple(self._failures),
            started_at=self._started_wall,
            taken_at=time.time(),
        )
        self._snapshot = snap
        return snap

    # ------------------------------------------------------------------ checkpoints

    def _gate(self) -> None:
        """Under the lock: park while a pause is requested; raise RunStopped on stop or abort."""
        while True:
            if self._stop_requested or self._abort:
                raise RunStopped()
            if not self._pause_requested:
                return
            self._cond.wait()

    def _begin(self, node: str, item: int | None, label: str | None) -> float:
        with self._lock:
            if self._gate_closed:
                self._gate()
            self._busy += 1
            self._running[node] += 1
            self._change("node_started", node, item, label)
        return time.perf_counter()

    def _end(self, node: str, item: int | None, label: str | None, started: float,
             error: BaseException | None = None, *, counted: bool = True) -> None:
        seconds = time.perf_counter() - started
        with self._lock:
            self._busy -= 1
            self._running[node] -= 1
            if not counted:
                self._change("node_finished", node, item, label, "no more items")
            elif error is None:
                self._count[node] += 1
                self._seconds[node] += seconds
                self._change("node_finished", node, item, label)
            elif isinstance(error, RunStopped):
                self._change("node_finished", node, item, label, "stopped")
            else:
                self._node_failures[node] += 1
                self._change("node_failed", node, item, label, error_message(error))
            if self._pause_requested:
                self._maybe_paused()

    def checkpoint(self) -> None:
        """Inside a node (through ``ctx.checkpoint()``): honour pause and stop."""
        if not self._gate_closed:  # unlocked read: a fast path only, decided below under the lock
            return
        with self._cond:
            if self._stop_requested or self._abort:
                raise RunStopped()
            if not self._pause_requested:
                return
            self._busy -= 1
            try:
                self._maybe_paused()
                self._gate()
            finally:
                self._busy += 1

    def progress(self, node: str, fraction: float) -> None:
        with self._cond:
            self._progress[node] = fraction
            self._change("progress", node, progress=fraction)

    # ------------------------------------------------------------------ execution

    def _call(
        self,
        step: Step,
        values: dict[tuple[str, str], Any],
        item: int | None,
        label: str | None,
    ) -> None:
        """Execute one node: gate, call, store its outputs into ``values``."""
        kwargs = dict(step.constants)
        for name, key in step.link_keys:
            kwargs[name] = values[key]
        if step.spec.wants_ctx:
            kwargs["ctx"] = Context(self, step.id, item, self.resumable)
        started = self._begin(step.id, item, label)
        try:
            store_outputs(step, step.spec.fn(**kwargs), values)
        except RunStopped as exc:
            self._end(step.id, item, label, started, exc)
            raise
        except BaseException as exc:
            self._end(step.id, item, label, started, exc)
            raise _NodeFailed(step.id, exc) from exc
        self._end(step.id, item, label, started)

    def _drive(self) -> None:
        plan = self._plan
        values: dict[tuple[str, str], Any] = {}
        error: ErrorInfo | None = None
        try:
            if self._output_folder is not None and plan.iterator is not None:
                self._manifest = Manifest(self._output_folder, self.chain.fingerprint())
            for step in plan.pre:
                self._call(step, values, None, None)
            if plan.iterator is not None:
                self._run_items(plan.iterator, values)
                for c in plan.collectors:
                    with self._cond:
                        collected = [v for _, v in sorted(self._collected[c.id].items())]
                    # per-item values are never in ``values`` after the items (validation forbids
                    # mixing them with collected ones), so the collected list takes their key
                    link = c.links[c.spec.collect or ""]
                    values[(link.node, link.output)] = collected
                    self._call(c, values, None, None)
                for step in plan.post:
                    self._call(step, values, None, None)
            with self._cond:
                self._gate()  # a pause accepted at the very end resolves before completing
        except RunStopped:
            pass  # stop requested, or aborted after an item failure (already recorded)
        except _NodeFailed as failed:
            error = ErrorInfo(failed.node, error_message(failed.exc), error_traceback(failed.exc))
        except BaseException as exc:  # a bug in chainlib itself: still end the run truthfully
            error = ErrorInfo("", error_message(exc), error_traceback(exc))
        self._finish(error, values)

    def _finish(self, error: ErrorInfo | None, values: Mapping[tuple[str, str], Any]) -> None:
        with self._cond:
            if error is not None:
                self._error = error
                self._failures.append(Failure(None, None, error.node, error.message))
            if self._paused_since is not None:
                self._paused_total += time.monotonic() - self._paused_since
                self._paused_since = None
            self._ended_mono = time.monotonic()
            self._results = dict(values)
            if error is not None or self._abort:
                final: RunState = "failed"
            elif self._stop_requested:
                final = "stopped"
            else:
                final = "completed"
            self._set_state(final)
            snap = self._snapshot_locked()
            callbacks, self._finish_callbacks = self._finish_callbacks, []
        for cb in callbacks:
            cb(snap)

    def result(self, node: str | NodeHandle, output: str | None = None) -> Any:
        """The value of a node that runs once (before the items, a collector, or after it) in the
        last finished run. ``output`` defaults to the node's only output."""
        node_id = node.id if isinstance(node, NodeHandle) else node
        step = self._plan.steps.get(node_id)
        if step is None:
            raise KeyError(f"no node {node_id!r} in this chain")
        name = output or step.spec.default_output
        with self._cond:
            if (node_id, name or "") not in self._results:
                raise KeyError(f"no result for {node_id}.{name} (per-item nodes keep none; "
                               f"has the run finished?)")
            return self._results[(node_id, name or "")]

    def _run_items(self, it: Step, pre_values: dict[tuple[str, str], Any]) -> None:
        kwargs = dict(it.constants)
        for name, link in it.links.items():
            kwargs[name] = pre_values[(link.node, link.output)]
        try:
            total = None if it.spec.length is None else int(it.spec.length(**kwargs))
            if it.spec.wants_ctx:
                kwargs["ctx"] = Context(self, it.id, None)
            gen = iter(it.spec.fn(**kwargs))
        except Exception as exc:
            raise _NodeFailed(it.id, exc) from exc
        with self._cond:
            self._total = total
            self._change("total", it.id)
        feed = _ItemFeed(gen)
        if self.cluster is not None:
            from .cluster import ClusterItems

            ClusterItems(self, self.cluster, {
                "iterator": it,
                "steps": self._plan.item,
                "pre_values": dict(pre_values),
                "collect_keys": tuple((c.id, key) for c, key in self._collect_keys),
                "writer_keys": tuple(self._writer_keys),
                "preview_keys": tuple(self._preview_keys) if self._keep_preview else (),
                "stop_on_error": self.on_error == "stop",
            }).run(it, feed)
        elif self.workers == 1:
            self._worker(it, feed, pre_values)
        else:
            threads = [
                threading.Thread(target=self._worker, args=(it, feed, pre_values),
                                 name=f"chainlib-worker-{i}", daemon=True)
                for i in range(self.workers)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if feed.error is not None:
            raise feed.error
        with self._cond:
            if feed.exhausted and self._total != feed.count:
                self._total = feed.count
                self._change("total", it.id)
            if self._abort or self._stop_requested:
                raise RunStopped()

    def _worker(self, it: Step, feed: _ItemFeed, pre_values: dict[tuple[str, str], Any]) -> None:
        while True:
            index: int | None = None
            label: str | None = None
            try:
                got = self._next_item(it, feed)
                if got is None:
                    return
                index, label, source, values = got
                values.update(pre_values)
                for step in self._plan.item:
                    self._call(step, values, index, label)
                outputs = [str(values[key]) for key in self._writer_keys]
                collected = {c.id: values[key] for c, key in self._collect_keys}
            except RunStopped:
                return
            except _NodeFailed as failed:
                if not self._record_failure(index, label, failed):
                    return
            else:
                self._item_done(index, label, source, outputs, collected, values)

    def _item_done(self, index: int, label: str | None, source: str | None, outputs: list[str],
                   collected: Mapping[str, Any], values: Mapping[tuple[str, str], Any]) -> None:
        """Count a finished item: record it in the manifest (its outputs are in place), keep its
        collected values, and remember the preview."""
        if self._manifest is not None and source is not None:
            self._manifest.record(source, label, outputs)
        with self._lock:
            self._done += 1
            if self._keep_preview:
                self._remember_preview(label, values)
            for cid, value in collected.items():
                self._collected[cid][index] = value
            self._change("item_done", None, index, label)

    def _next_item(
        self, it: Step, feed: _ItemFeed, *, resolve: bool = True
    ) -> tuple[int, str | None, str | None, Any] | None:
        """Take the next item: the iterator node's per-item execution (fetch, then lazy values,
        which resolve outside the feed's lock so that decoding runs in parallel).

        Returns ``(index, label, source, values)``, or with ``resolve=False`` the raw yielded
        value in place of ``values`` (a cluster resolves it on its workers), or None when there
        are no more items. Raises RunStopped, or _NodeFailed for an item whose lazy values fail.
        """
        with feed.lock:
            if feed.exhausted or feed.error is not None:
                return None
            started = self._begin(it.id, None, None)
            try:
                raw = next(feed.gen)
                while self._already_complete(raw):
                    self._skip(feed.count, raw.label)
                    feed.count += 1
                    raw = next(feed.gen)
            except StopIteration:
                feed.exhausted = True
                self._end(it.id, None, None, started, counted=False)
                return None
            except RunStopped as exc:
                self._end(it.id, None, None, started, exc)
                raise
            except BaseException as exc:
                feed.error = _NodeFailed(it.id, exc)
                self._end(it.id, None, None, started, exc)
                with self._cond:
                    self._abort = True  # a broken generator cannot go on: the run fails
                    self._gate_closed = True
                    self._cond.notify_all()
                return None
            index = feed.count
            feed.count += 1
        label = raw.label if isinstance(raw, Item) else None
        source = raw.source if isinstance(raw, Item) else None
        value = raw.value if isinstance(raw, Item) else raw
        if not resolve:
            self._end(it.id, index, label, started)
            return index, label, source, value
        values: dict[tuple[str, str], Any] = {}
        try:
            store_outputs(it, resolve_lazy(value), values)
        except RunStopped as exc:
            self._end(it.id, index, label, started, exc)
            raise
        except BaseException as exc:
            self._end(it.id, index, label, started, exc)
            # the item is taken: it must be counted, as failed, by the caller
            raise _NodeFailed(it.id, exc, index, label) from exc
        self._end(it.id, index, label, started)
        return index, label, source, values

    def _already_complete(self, raw: Any) -> bool:
        return (self.resumable and self._manifest is not None and isinstance(raw, Item)
                and raw.source is not None and self._manifest.is_complete(raw.source))

    def _skip(self, index: int, label: str | None) -> None:
        with self._cond:
            self._done += 1
            self._skipped += 1
            self._change("item_done", None, index, label, "skipped: already complete")

    # ------------------------------------------------------------------ items on a cluster

    def _halting(self) -> bool:
        return self._stop_requested or self._abort

    def _begin_remote(self, batch: int, size: int) -> None:
        """A batch of items leaves for the cluster: like a node start, gated and counted busy."""
        with self._lock:
            if self._gate_closed:
                self._gate()
            self._busy += 1
            self._remote.add(batch)
            for step in self._plan.item:
                self._running[step.id] += 1
            first = self._plan.item[0].id if self._plan.item else None
            self._change("node_started", first, message=f"{size} item(s) sent to the cluster")

    def _remote_parked(self, batch: int, parked: bool) -> None:
        """A task on the cluster parked at (or left) a checkpoint because of a pause."""
        with self._lock:
            if parked and batch in self._remote and batch not in self._remote_parked_set:
                self._remote_parked_set.add(batch)
                self._busy -= 1
                self._maybe_paused()
            elif not parked and batch in self._remote_parked_set:
                self._remote_parked_set.discard(batch)
                self._busy += 1

    def _end_remote(self, batch: int, outcomes: list[Any],
                    items: Mapping[int, tuple[str | None, str | None]]) -> bool:
        """A batch came back: merge its timings and count its items. Returns whether the
        dispatcher should go on."""
        with self._lock:
            self._remote.discard(batch)
            if batch in self._remote_parked_set:
                self._remote_parked_set.discard(batch)
            else:
                self._busy -= 1
            for step in self._plan.item:
                self._running[step.id] -= 1
            it = self._plan.iterator.id if self._plan.iterator else None
            for out in outcomes:
                for node, seconds in out.seconds.items():
                    self._count[node] += node != it  # the fetch already counted the iterator
                    self._seconds[node] += seconds
                if out.status == "failed":
                    self._node_failures[out.node] += 1
                    self._count[out.node] -= out.node == it  # as locally: a failed fetch counts 0
            self._change("node_finished", self._plan.item[0].id if self._plan.item else None,
                         message=f"{len(outcomes)} item(s) back from the cluster")
            if self._pause_requested:
                self._maybe_paused()
        go_on = True
        for out in outcomes:
            label, source = items.get(out.index, (None, None))
            if out.status == "done":
                self._item_done(out.index, label, source, out.outputs, out.collected,
                                out.preview)
            elif out.status == "failed":
                failed = _NodeFailed(out.node, _RemoteError(out.message, out.traceback))
                go_on = self._record_failure(out.index, label, failed) and go_on
        return go_on and not self._halting()

    def _cluster_lost(self, exc: BaseException) -> None:
        """The cluster failed us (scheduler gone, task lost): the run fails, clearly."""
        address = getattr(getattr(self.cluster, "scheduler", None), "address", None) or "?"
        message = f"lost the Dask cluster (scheduler {address}): {error_message(exc)}"
        with self._cond:
            if self._error is None or self._error.item is not None:
                self._error = ErrorInfo("", message, error_traceback(exc))
                self._failures.append(Failure(None, None, "", message))
            self._abort = True
            self._gate_closed = True
            self._change("node_failed", message=message)
            self._cond.notify_all()

    # ------------------------------------------------------------------ preview (for the panel)

    def enable_preview(self) -> None:
        """Keep a reference to the newest finished item's image output (see :meth:`preview`)."""
        self._keep_preview = True

    def preview(self) -> tuple[int, str | None, Any] | None:
        """``(counter, label, image)`` of the newest finished item's last image output, or None.

        The counter grows with every new preview, so a consumer can tell whether it changed.
        """
        with self._cond:
            return self._preview

    def _remember_preview(self, label: str | None, values: Mapping[tuple[str, str], Any]) -> None:
        for key in self._preview_keys:
            value = values.get(key)
            if isinstance(value, np.ndarray):
                count = self._preview[0] + 1 if self._preview else 1
                self._preview = (count, label, value)
                return

    def _record_failure(self, index: int | None, label: str | None, failed: _NodeFailed) -> bool:
        """Count a failed item; return whether this worker should go on."""
        if failed.index is not None:
            index, label = failed.index, failed.label
        message = error_message(failed.exc)
        with self._cond:
            self._failed += 1
            self._failures.append(Failure(index, label, failed.node, message))
            self._error = ErrorInfo(failed.node, message, error_traceback(failed.exc), index, label)
            self._change("item_failed", failed.node, index, label, message)
            if self.on_error == "stop":
                self._abort = True
                self._gate_closed = True
                self._cond.notify_all()
                return False
            return True


class _RemoteError(Exception):
    """An exception raised on a cluster worker, carried back as text."""

    def __init__(self, message: str, traceback_text: str) -> None:
        super().__init__(message)
        self.message = message
        self.traceback_text = traceback_text

    def __str__(self) -> str:
        return self.message


class _ItemFeed:
    """The iterator's generator, shared by the workers under ``lock``."""

    __slots__ = ("count", "error", "exhausted", "gen", "lock")

    def __init__(self, gen: Iterator[Any]) -> None:
        self.gen = gen
        self.lock = threading.Lock()
        self.count = 0
        self.exhausted = False
        self.error: BaseException | None = None


def resolve_lazy(value: Any) -> Any:
    if isinstance(value, Lazy):
        return value.resolve()
    if isinstance(value, dict) and any(isinstance(v, Lazy) for v in value.values()):
        return {k: v.resolve() if isinstance(v, Lazy) else v for k, v in value.items()}
    return value


def store_outputs(step: Step, result: Any, values: dict[tuple[str, str], Any]) -> None:
    """Put a node's result into ``values`` under ``(node id, output name)`` keys."""
    outputs = step.spec.outputs
    if step.spec.multi_output:
        if not isinstance(result, Mapping):
            raise TypeError(f"{step.spec.id} must return a dict with keys {', '.join(outputs)}, "
                            f"got {type(result).__name__}")
        for name in outputs:
            if name not in result:
                raise TypeError(f"{step.spec.id} returned no value for output {name!r}")
            values[(step.id, name)] = result[name]
    elif outputs:
        values[(step.id, next(iter(outputs)))] = result


def error_message(exc: BaseException) -> str:
    if isinstance(exc, _RemoteError):
        return exc.message
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_traceback(exc: BaseException) -> str:
    if isinstance(exc, _RemoteError):
        return exc.traceback_text
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))

