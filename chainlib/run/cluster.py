"""Running a chain's items on a Dask distributed cluster, with the same controls.

The iterator runs locally; each batch of items runs the per-item part of the chain as one Dask
task (:func:`run_batch`). Controls reach tasks in flight through cluster-visible flags: a
``distributed.Event`` ``go`` (set while running) and ``stop``; a task's checkpoints poll them at
most every ``POLL_S`` seconds. A task that parks on a pause says so on a ``distributed.Queue``, so
the run reports ``paused`` only when no item executes anywhere. Batches grow until a task takes
about ``TARGET_TASK_S`` seconds, amortizing the per-task overhead over tiny items.

A killed worker's task is run again by Dask elsewhere; outputs are written atomically and the
task may replace leftovers (``ctx.resuming``), and items are recorded in the manifest only when
their task's result arrives, so every output exists exactly once.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..api.context import Context
from ..chain.validate import Step
from ..errors import RunStopped

if TYPE_CHECKING:
    from .runner import Runner, _ItemFeed

log = logging.getLogger("chainlib")

POLL_S = 0.05
TARGET_TASK_S = 0.25
MAX_BATCH = 64
PREVIEW_PX = 160

Key = tuple[str, str]


@dataclass(frozen=True)
class ItemPayload:
    """What a worker needs to run the per-item part of a chain (sent once per run)."""

    prefix: str
    run_id: str
    iterator: Step
    steps: tuple[Step, ...]
    pre_values: Mapping[Key, Any]
    collect_keys: tuple[tuple[str, Key], ...]
    writer_keys: tuple[Key, ...]
    preview_keys: tuple[Key, ...]
    stop_on_error: bool


@dataclass
class Outcome:
    """How one item went on the cluster."""

    index: int
    status: Literal["done", "failed", "stopped"]
    seconds: dict[str, float] = field(default_factory=dict)
    collected: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    preview: dict[Key, Any] = field(default_factory=dict)
    node: str = ""
    message: str = ""
    traceback: str = ""


class _RemoteControl:
    """The run's controls as a task sees them (``ctx`` hooks on a worker)."""

    def __init__(self, payload: ItemPayload, batch_id: int) -> None:
        from distributed import Event, Queue

        self.run_id = payload.run_id
        self._go = Event(payload.prefix + "-go")
        self._stop = Event(payload.prefix + "-stop")
        self._notices = Queue(payload.prefix + "-notices")
        self._batch = batch_id
        self._next_poll = 0.0

    def checkpoint(self) -> None:
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + POLL_S
        if self._go.is_set():
            return
        if self._stop.is_set():
            raise RunStopped()
        self._notices.put(("parked", self._batch))
        try:
            while not self._go.wait(timeout=0.2):
                if self._stop.is_set():
                    raise RunStopped()
        finally:
            self._notices.put(("unparked", self._batch))
        if self._stop.is_set():
            raise RunStopped()

    def progress(self, node: str, fraction: float) -> None:
        return None  # per-node progress stays on the worker; items report when they finish


def run_batch(payload: ItemPayload, batch_id: int,
              items: list[tuple[int, str | None, Any]]) -> list[Outcome]:
    """Run the per-item part of the chain for each item (on a Dask worker)."""
    from .runner import error_message, error_traceback, resolve_lazy, store_outputs

    control = _RemoteControl(payload, batch_id)
    outcomes: list[Outcome] = []
    stopped = False
    for index, _label, value in items:
        if stopped:
            outcomes.append(Outcome(index, "stopped"))
            continue
        out = Outcome(index, "done")
        values: dict[Key, Any] = dict(payload.pre_values)
        node = payload.iterator.id
        try:
            control.checkpoint()
            t0 = time.perf_counter()
            store_outputs(payload.iterator, resolve_lazy(value), values)
            out.seconds[node] = time.perf_counter() - t0
            for step in payload.steps:
                node = step.id
                control.checkpoint()
                kwargs = dict(step.constants)
                for name, key in step.link_keys:
                    kwargs[name] = values[key]
                if step.spec.wants_ctx:
                    kwargs["ctx"] = Context(control, step.id, index, True)
                t0 = time.perf_counter()
                store_outputs(step, step.spec.fn(**kwargs), values)
                out.seconds[node] = time.perf_counter() - t0
        except RunStopped:
            outcomes.append(Outcome(index, "stopped", out.seconds))
            stopped = True
            continue
        except Exception as exc:
            out.status, out.node = "failed", node
            out.message, out.traceback = error_message(exc), error_traceback(exc)
            outcomes.append(out)
            stopped = payload.stop_on_error
            continue
        out.collected = {cid: values[key] for cid, key in payload.collect_keys}
        out.outputs = [str(values[key]) for key in payload.writer_keys]
        out.preview = _preview(values, payload.preview_keys)
        outcomes.append(out)
    return outcomes


def _preview(values: Mapping[Key, Any], keys: tuple[Key, ...]) -> dict[Key, Any]:
    for key in keys:
        image = values.get(key)
        if isinstance(image, np.ndarray) and image.ndim in (2, 3):
            step = max(1, max(image.shape[:2]) // PREVIEW_PX)
            return {key: np.ascontiguousarray(image[::step, ::step])}
    return {}


class ClusterItems:
    """The local side: dispatches batches of items to the cluster and keeps the controls in sync.

    One dispatcher thread per worker thread of the cluster, each with at most one task in flight
    (so a pause never leaves a queued task behind a parked one).
    """

    def __init__(self, runner: Runner, client: Any, payload_args: dict[str, Any]) -> None:
        from distributed import Event, Queue

        self.runner = runner
        self.client = client
        prefix = f"chainlib-{runner.run_id}"
        self.payload = ItemPayload(prefix=prefix, run_id=runner.run_id, **payload_args)
        self.go = Event(prefix + "-go", client=client)
        self.stop = Event(prefix + "-stop", client=client)
        self.notices = Queue(prefix + "-notices", client=client)
        self.batch_size = 1
        self._ids = itertools.count()
        self._done = threading.Event()
        self._size_lock = threading.Lock()

    def run(self, it: Step, feed: _ItemFeed) -> None:
        """Dispatch every item; return when none is in flight anywhere."""
        self.go.set()
        threads = [
            threading.Thread(target=self._sync_controls, name="chainlib-cluster-controls",
                             daemon=True),
            threading.Thread(target=self._read_notices, name="chainlib-cluster-notices",
                             daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            payload_future = self.client.scatter(self.payload, broadcast=True, hash=False)
            nthreads = max(1, sum(self.client.nthreads().values()))
            dispatchers = [
                threading.Thread(target=self._dispatch, args=(it, feed, payload_future),
                                 name=f"chainlib-dispatch-{i}", daemon=True)
                for i in range(nthreads)
            ]
            for t in dispatchers:
                t.start()
            for t in dispatchers:
                t.join()
        finally:
            self._done.set()
            try:
                self.notices.put(("done", -1))  # wakes the reader blocked in get()
            except Exception:
                log.debug("could not post the end notice", exc_info=True)
            for t in threads:
                t.join(5)
            for event in (self.go, self.stop):
                try:
                    event.clear()
                except Exception:  # the cluster may be gone; nothing left to tell it
                    log.debug("could not clear %s", event.name, exc_info=True)

    def _dispatch(self, it: Step, feed: _ItemFeed, payload_future: Any) -> None:
        runner = self.runner
        while True:
            batch: list[tuple[int, str | None, str | None, Any]] = []
            try:
                with self._size_lock:
                    size = self.batch_size
                while len(batch) < size:
                    got = runner._next_item(it, feed, resolve=False)
                    if got is None:
                        break
                    batch.append(got)
                    if runner._gate_closed:
                        break
                if not batch:
                    return
                bid = next(self._ids)
                runner._begin_remote(bid, len(batch))
            except RunStopped:
                return
            started = time.monotonic()
            try:
                outcomes = self._await(self.client.submit(
                    run_batch, payload_future, bid, [(i, lb, v) for i, lb, _, v in batch],
                    key=f"{self.payload.prefix}-batch-{bid}", pure=False,
                ))
            except Exception as exc:
                runner._end_remote(bid, [], {})
                runner._cluster_lost(exc)
                return
            per_item = (time.monotonic() - started) / len(batch)
            with self._size_lock:
                self.batch_size = max(1, min(MAX_BATCH, int(TARGET_TASK_S / max(per_item, 1e-6))))
            sources = {i: (lb, src) for i, lb, src, _ in batch}
            if not runner._end_remote(bid, outcomes, sources):
                return

    def _await(self, future: Any) -> list[Outcome]:
        """The task's outcomes; a task that has not started when a stop comes is cancelled."""
        from distributed import TimeoutError as DaskTimeout

        while True:
            try:
                result: list[Outcome] = future.result(timeout=0.1)
                return result
            except (TimeoutError, DaskTimeout):
                if self.runner._halting() and future.status == "pending" and not self._started(
                        future):
                    future.cancel()
                    return []

    def _started(self, future: Any) -> bool:
        try:
            processing: dict[str, Any] = self.client.processing()
        except Exception:
            return True
        return any(future.key in keys for keys in processing.values())

    def _sync_controls(self) -> None:
        """Mirror the run's state onto the cluster-visible flags (off the commands' path)."""
        changed = threading.Event()
        unwatch = self.runner.watch(changed)
        go = stop = None
        try:
            while not self._done.is_set():
                want_stop = self.runner._halting()
                want_go = self.runner.status().state == "running" and not want_stop
                try:
                    if want_stop != stop:
                        (self.stop.set if want_stop else self.stop.clear)()
                        stop = want_stop
                    if want_go != go:
                        (self.go.set if want_go else self.go.clear)()
                        go = want_go
                except Exception:
                    log.debug("could not update the cluster's control flags", exc_info=True)
                changed.wait(0.1)
                changed.clear()
        finally:
            unwatch()

    def _read_notices(self) -> None:
        # A blocking get (a get with a timeout makes the scheduler log an error per timeout);
        # ``run`` posts a "done" notice at the end to wake it.
        while True:
            try:
                kind, bid = self.notices.get()
            except Exception:
                if self._done.wait(0.2):
                    return
                continue
            if kind == "done":
                return
            self.runner._remote_parked(int(bid), kind == "parked")


def connect(address: str) -> Any:
    """A ``distributed.Client`` for ``tcp://HOST:PORT`` or, with ``local:N``, a new LocalCluster
    of N worker processes. Fails fast with a clear error for a bad address."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - the dask extra is not installed
        raise RuntimeError("the Dask backend needs `pip install chainlib[dask]`") from exc
    if address.startswith("local:"):
        try:
            n = int(address.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"--cluster local:N needs a number of workers, got {address!r}") \
                from None
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        return Client(cluster)
    try:
        return Client(address, timeout="5s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {address!r}: {exc}") from None
