"""Running a chain's items on a Dask distributed cluster, with the same controls.

The iterator runs locally; each batch of items runs the per-item part of the chain as one Dask
task (:func:`run_batch`). Controls reach tasks in flight through cluster-visible flags: a
``distributed.Event`` ``go`` (set while running) and ``stop``; in each worker process a thread
refreshes them every ``POLL_S`` seconds, so a checkpoint reads a local value while the run is
running and only talks to the scheduler when it must park or stop. A task that parks on a pause
says so on a ``distributed.Queue``, so the run reports ``paused`` only when no item executes
anywhere. Batches grow until a task takes about ``TARGET_TASK_S`` seconds, amortizing the
per-task overhead over tiny items (and shrink near the end so that every worker stays busy).

The per-item part of the chain (the payload) is pickled once and sent with every task (unpickled
once per worker process): a shared payload key would make the scheduler queue every task on the
worker holding it, and scattered data dies with its worker.

Each worker process applies a memory budget to the items it runs (decoded images wait for room,
as in a local run): the run's ``max_memory``, capped at half the worker's Dask ``memory_limit``
(:func:`chainlib.memory.worker_limit`), one per process shared by its threads' tasks.

A killed worker's task is run again by Dask elsewhere; outputs are written atomically and the
task may replace leftovers (``ctx.resuming``), and items are recorded in the manifest only when
their task's result arrives, so every output exists exactly once.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

from ..errors import RunStopped
from ..memory import MemoryBudget, item_scope, worker_limit
from .hosts import HostThreads, local_threads, threads_per_host
from .preview import pick
from .seam import (
    ItemHost,
    ItemWork,
    Key,
    NodeFailed,
    Outcome,
    Taken,
    error_message,
    error_traceback,
    execute_item,
    resolve_lazy,
    store_outputs,
)

log = logging.getLogger("chainlib")

POLL_S = 0.05
TARGET_TASK_S = 0.5
MAX_BATCH = 64


@dataclass(frozen=True)
class ItemPayload:
    """What a worker needs to run the per-item part of a chain (sent once per run)."""

    prefix: str
    run_id: str
    work: ItemWork
    host_threads: HostThreads = ()  # item threads per machine: ctx.workers (see .hosts)


class _Flags:
    """The run's ``go`` / ``stop`` flags as one worker process sees them.

    A thread refreshes them every ``POLL_S`` seconds, so a checkpoint reads a local attribute and
    never waits on the scheduler while the run is running (a blocking ``Event.is_set()`` per
    poll cost every item a round trip to a possibly busy scheduler). One per run and process,
    shared by its tasks; the thread ends a few seconds after the last task of the run leaves.
    """

    LINGER_S = 5.0

    def __init__(self, prefix: str) -> None:
        from distributed import Event

        self.prefix = prefix
        self.go = Event(prefix + "-go")
        self.stop = Event(prefix + "-stop")
        self.going = self.go.is_set()
        self.users = 0
        self.idle_since = time.monotonic()
        threading.Thread(target=self._refresh, name=f"{prefix}-flags", daemon=True).start()

    def _refresh(self) -> None:
        while True:
            time.sleep(POLL_S)
            with _flags_lock:
                if self.users == 0 and time.monotonic() - self.idle_since > self.LINGER_S:
                    if _flags.get(self.prefix) is self:
                        del _flags[self.prefix]
                    return
            try:
                self.going = self.go.is_set()
            except Exception:  # the scheduler is gone: the task will learn it when it returns
                log.debug("could not refresh %s's flags", self.prefix, exc_info=True)

    @classmethod
    def acquire(cls, prefix: str) -> _Flags:
        with _flags_lock:
            flags = _flags.get(prefix)
            if flags is None:
                flags = _flags[prefix] = cls(prefix)
            flags.users += 1
            return flags

    def release(self) -> None:
        with _flags_lock:
            self.users -= 1
            if self.users == 0:
                self.idle_since = time.monotonic()


_flags: dict[str, _Flags] = {}
_flags_lock = threading.Lock()


class _RemoteControl:
    """The run's controls as a task sees them (``ctx`` hooks on a worker)."""

    def __init__(self, payload: ItemPayload, batch_id: int) -> None:
        self.run_id = payload.run_id
        self.workers = local_threads(payload.host_threads)
        self._flags = _Flags.acquire(payload.prefix)
        self._notices_name = payload.prefix + "-notices"
        self._notices: Any = None  # created on the first park: each creation is an RPC
        self._batch = batch_id
        self.outcome: Outcome | None = None
        """The outcome of the item being executed (its nodes' times go there)."""
        self._parked_s = 0.0  # parked at checkpoints inside the node executing: not its time

    def close(self) -> None:
        self._flags.release()

    def checkpoint(self) -> None:
        flags = self._flags
        if flags.going:  # refreshed every POLL_S by the flags' thread: no round trip here
            return
        if flags.stop.is_set():
            raise RunStopped()
        if flags.go.is_set():  # resumed since the last refresh
            flags.going = True
            return
        if self._notices is None:
            from distributed import Queue

            self._notices = Queue(self._notices_name)
        parked = time.perf_counter()
        self._notices.put(("parked", self._batch))
        try:
            while not flags.go.wait(timeout=0.2):
                if flags.stop.is_set():
                    raise RunStopped()
        finally:
            self._notices.put(("unparked", self._batch))
            self._parked_s += time.perf_counter() - parked
        if flags.stop.is_set():
            raise RunStopped()
        flags.going = True

    def progress(self, node: str, fraction: float) -> None:
        return None  # per-node progress stays on the worker; items report when they finish

    # NodeHooks for execute_item: a checkpoint before each node; its time goes to the outcome
    def begin_node(self, node: str, item: int | None, label: str | None) -> None:
        self.checkpoint()
        self._parked_s = 0.0  # parked before the node started: outside its timing anyway

    def end_node(self, node: str, item: int | None, label: str | None, seconds: float,
                 error: BaseException | None) -> None:
        parked, self._parked_s = self._parked_s, 0.0
        if error is None and self.outcome is not None:
            self.outcome.seconds[node] = max(0.0, seconds - parked)


@dataclass(frozen=True)
class PackedPayload:
    """The payload pickled once on the client; each worker unpickles it once per run.

    It travels with every batch task instead of being a Dask key that tasks depend on: the
    scheduler sends a task to a worker holding its dependencies, so a shared payload key made
    every batch queue up on one worker (leaving the other idle, and a task queued behind a
    parked one would keep a pause from ever completing); and scattered data whose worker dies
    is lost for good (Dask's memory manager keeps one replica), cancelling the run's tasks.
    """

    prefix: str
    blob: bytes

    @classmethod
    def pack(cls, payload: ItemPayload) -> PackedPayload:
        from distributed.protocol.pickle import dumps  # cloudpickle for notebook-defined nodes

        return cls(payload.prefix, dumps(payload))

    def unpack(self) -> ItemPayload:
        with _unpacked_lock:
            payload = _unpacked.get(self.prefix)
            if payload is None:
                from distributed.protocol.pickle import loads

                payload = _unpacked[self.prefix] = loads(self.blob)
                while len(_unpacked) > 8:  # keep the few newest runs
                    del _unpacked[next(iter(_unpacked))]
        return payload


_unpacked: dict[str, ItemPayload] = {}
_unpacked_lock = threading.Lock()

_budgets: dict[int, MemoryBudget] = {}  # one per limit: runs with one limit share it
_budgets_lock = threading.Lock()


def _worker_budget(max_memory: int | None) -> MemoryBudget | None:
    """This worker process's memory budget for a run with ``max_memory`` (None: no budget),
    shared by the tasks of every thread of the process."""
    try:
        from distributed import get_worker

        memory_limit = get_worker().memory_manager.memory_limit
    except (ValueError, AttributeError):  # not in a worker (a task run by the client itself)
        memory_limit = None
    limit = worker_limit(max_memory, memory_limit)
    if limit is None:
        return None
    with _budgets_lock:
        budget = _budgets.get(limit)
        if budget is None:
            budget = _budgets[limit] = MemoryBudget(limit)
        return budget


def run_batch(packed: ItemPayload | PackedPayload, batch_id: int,
              items: list[tuple[int, str | None, str | None, Any]]) -> list[Outcome]:
    """Run the per-item part of the chain for each ``(index, label, source, value)`` item (on a
    Dask worker)."""
    payload = packed.unpack() if isinstance(packed, PackedPayload) else packed
    control = _RemoteControl(payload, batch_id)
    try:
        return _run_items(payload, control, items)
    finally:
        control.close()


def _run_items(payload: ItemPayload, control: _RemoteControl,
               items: list[tuple[int, str | None, str | None, Any]]) -> list[Outcome]:
    work = payload.work
    budget = _worker_budget(work.max_memory)
    outcomes: list[Outcome] = []
    stopped = False
    for index, label, source, value in items:
        if stopped:
            outcomes.append(Outcome(index, "stopped"))
            continue
        out = control.outcome = Outcome(index, "done")
        values: dict[Key, Any] = dict(work.pre_values)
        try:
            # the item's decoded images hold their share of the budget until the item ends
            with item_scope(budget, control.checkpoint):
                control.begin_node(work.iterator.id, index, label)
                started = time.perf_counter()
                try:
                    store_outputs(work.iterator, resolve_lazy(value), values)
                except Exception as exc:
                    raise NodeFailed(work.iterator.id, exc, index, label) from exc
                control.end_node(work.iterator.id, index, label,
                                 time.perf_counter() - started, None)
                # No output session on a worker (its lock is the client's): the folder's
                # ownership record is still kept, unlocked (see chainlib.outputs.write_output).
                result = execute_item(work, index, label, values, control, True, source=source)
        except RunStopped:
            outcomes.append(Outcome(index, "stopped", out.seconds))
            stopped = True
            continue
        except NodeFailed as failed:
            if not isinstance(failed.exc, Exception):  # KeyboardInterrupt, SystemExit: not ours
                raise failed.exc from None
            out.status, out.node = "failed", failed.node
            out.message, out.traceback = error_message(failed.exc), error_traceback(failed.exc)
            outcomes.append(out)
            stopped = work.stop_on_error
            continue
        out.collected = result.collected
        out.outputs = result.outputs
        out.preview = pick(values, work.preview_keys)
        outcomes.append(out)
    control.outcome = None
    return outcomes


class ClusterExecutor:
    """The Dask executor (see :mod:`.seam`): runs each batch of items as a task on ``client``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def run(self, host: ItemHost, work: ItemWork) -> None:
        _ClusterRun(host, self.client, work).run()


class _ClusterRun:
    """The local side of one run: dispatches batches of items to the cluster and keeps the
    controls in sync.

    One dispatcher thread per worker thread of the cluster, each with at most one task in flight
    (so a pause never leaves a queued task behind a parked one).
    """

    def __init__(self, host: ItemHost, client: Any, work: ItemWork) -> None:
        from distributed import Event, Queue

        self.host = host
        self.client = client
        prefix = f"chainlib-{host.run_id}"
        self.payload = ItemPayload(prefix, host.run_id, work, threads_per_host(client))
        self.go = Event(prefix + "-go", client=client)
        self.stop = Event(prefix + "-stop", client=client)
        self.notices = Queue(prefix + "-notices", client=client)
        self.batch_size = 1
        self._dispatchers = 1
        self._ids = itertools.count()
        self._done = threading.Event()
        self._size_lock = threading.Lock()

    def run(self) -> None:
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
            packed = PackedPayload.pack(self.payload)
            nthreads = self._dispatchers = max(1, sum(self.client.nthreads().values()))
            dispatchers = [
                threading.Thread(target=self._dispatch, args=(packed,),
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

    def _dispatch(self, packed: PackedPayload) -> None:
        host = self.host
        while True:
            batch: list[Taken] = []
            try:
                with self._size_lock:
                    size = self.batch_size
                left = host.items_left()
                if left is not None:  # near the end, smaller batches keep every worker busy
                    size = max(1, min(size, -(-left // (2 * self._dispatchers))))
                while len(batch) < size:
                    got = host.next_item(resolve=False)
                    if got is None:
                        break
                    batch.append(got)
                    if host.gate_closed():
                        break
                if not batch:
                    return
                bid = next(self._ids)
                host.begin_batch(bid, len(batch))
            except RunStopped:
                return
            started = time.monotonic()
            try:
                outcomes = self._await(self.client.submit(
                    run_batch, packed, bid,
                    [(t.index, t.label, t.source, t.values) for t in batch],
                    key=f"{self.payload.prefix}-batch-{bid}", pure=False,
                ))
            except Exception as exc:
                host.end_batch(bid, [], {})
                address = getattr(getattr(self.client, "scheduler", None), "address", None)
                host.fail_run(f"{_batch_failure(exc)} (scheduler {address or '?'}): "
                              f"{error_message(exc)}", exc)
                return
            per_item = (time.monotonic() - started) / len(batch)
            with self._size_lock:
                self.batch_size = max(1, min(MAX_BATCH, int(TARGET_TASK_S / max(per_item, 1e-6))))
            if not host.end_batch(bid, outcomes, {t.index: t for t in batch}):
                return

    def _await(self, future: Any) -> list[Outcome]:
        """The task's outcomes; a task that has not started when a stop comes is cancelled."""
        # Wait on a local flag set by the future's done callback, not with
        # ``future.result(timeout=...)``: that polls through the client's event loop and, when a
        # timeout races the future's completion (or a lost worker's retry), distributed's
        # ``sync`` can end with ``UnboundLocalError: ... 'result'`` instead of either outcome.
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        while not done.wait(0.1):
            if self.host.halting() and future.status == "pending" and not self._started(
                    future):
                future.cancel()
                return []
        result: list[Outcome] = future.result()
        return result

    def _started(self, future: Any) -> bool:
        try:
            processing: dict[str, Any] = self.client.processing()
        except Exception:
            return True
        return any(future.key in keys for keys in processing.values())

    def _sync_controls(self) -> None:
        """Mirror the run's state onto the cluster-visible flags (off the commands' path)."""
        changed = threading.Event()
        unwatch = self.host.watch(changed)
        go = stop = None
        try:
            while not self._done.is_set():
                want_stop = self.host.halting()
                want_go = self.host.running()
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
            self.host.batch_parked(int(bid), kind == "parked")


_LOST: Final = frozenset({"CommClosedError", "KilledWorker", "CancelledError",
                           "FutureCancelledError", "TimeoutError", "OSError"})
"""Exceptions (by class name, bases included: distributed's move between modules) that mean the
cluster or a worker went away, rather than a task that failed where it ran."""


def _batch_failure(exc: BaseException) -> str:
    """What a batch task's exception means (node errors never get here: they are outcomes)."""
    if any(cls.__name__ in _LOST for cls in type(exc).__mro__):
        return "lost the Dask cluster"
    # e.g. a worker that cannot import a module the chain's nodes come from
    return "a batch of this run failed on the Dask cluster, outside any node"


def connect(address: str) -> Any:
    """A ``distributed.Client`` for ``tcp://HOST:PORT``, or for ``local:N`` (``local``: one per
    core) a new LocalCluster of N single-threaded worker processes, closed by :func:`disconnect`.
    Fails fast (about 5 s) with a ``ValueError`` naming the address."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - the dask extra is not installed
        raise RuntimeError("the Dask backend needs `pip install chainlib[dask]`") from exc
    address = address.strip()
    if address == "local" or address.startswith("local:"):
        count = address.partition(":")[2] or str(os.cpu_count() or 1)
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"local:N needs at least one worker, got {address!r}")
        cluster = LocalCluster(n_workers=int(count), threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        try:
            client = Client(cluster)
        except BaseException:
            cluster.close()
            raise
        setattr(client, "_chainlib_owns_cluster", True)  # noqa: B010 (a foreign object)
        return client
    try:
        return Client(address, timeout="5s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {address!r}: {exc}") from None


def disconnect(client: Any) -> None:
    """Close a client from :func:`connect`, and the LocalCluster it started, if any."""
    cluster = client.cluster if getattr(client, "_chainlib_owns_cluster", False) else None
    client.close()
    if cluster is not None:
        cluster.close()
