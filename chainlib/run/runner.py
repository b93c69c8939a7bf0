"""The Runner: one chain, executed off the caller's thread, with Play / Pause / Stop.

A thin façade. The parts, each in its own module:

- :mod:`.control`: the state machine, the gate, the busy count, paused time, ``seq`` and the
  runner's one lock (its invariants are written there);
- :mod:`.ledger`: a run's statistics and the :class:`~.status.Status` snapshots built from them;
- :mod:`.engine`: one run, on its driver thread; it hands items to an executor through the seam
  (:mod:`.seam`): local worker threads (:mod:`.local`) or a Dask cluster (:mod:`.cluster`);
- :mod:`.events`: events to subscribers; :mod:`.preview`: the newest image for the panel;
  :mod:`.waiting`: hooks run while a thread blocks in :meth:`Runner.wait`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from ..api.types import type_name
from ..chain.model import Chain, NodeHandle
from ..chain.validate import Step, compile_chain
from ..manifest import Manifest
from .advice import RunnerAdvice, attach_cluster, dashboard_link  # hints, card, close(), cluster=
from .args import check_arguments
from .control import Control
from .engine import Engine
from .events import Event, Subscription
from .guard import RunGuard, StartRefused, manifest_folder, resume_fingerprint
from .ledger import Ledger
from .local import LocalThreads
from .preview import Key, Preview, PreviewBuffer
from .seam import Executor
from .states import ACTIVE_STATES, Command
from .status import Ack, Status
from .waiting import HOOK_SLICE_S, await_waking, has_wait_hooks, run_wait_hooks

if TYPE_CHECKING:
    from ..serve import ControlServer
    from .observable import RunStateMirror

OnError = Literal["stop", "skip"]

WAIT_SLICE_S = 0.2
"""Longest lock wait in :meth:`Runner.wait`: a pending interrupt is seen within this time even
where a lock wait is not interruptible (Windows, or ``_thread.interrupt_main``)."""


class Runner(RunnerAdvice):
    """Runs a chain on threads it owns; control it from any thread.

    ``workers`` threads process the iterator's items in parallel (collector order is kept).
    ``on_error="stop"`` ends the run as ``failed`` at the first failing item; ``"skip"`` records the
    failure and goes on. ``resume=True`` skips items a previous run completed
    (:mod:`chainlib.manifest`). ``cluster``: a ``distributed.Client`` or an address. ``overwrite``
    replaces files chainlib did not write (never inputs). ``max_memory``: bytes or ``"2G"`` of
    decoded images held at once (default half the RAM; per worker process on a cluster)."""

    def __init__(
        self,
        chain: Chain,
        *,
        workers: int = 1,
        on_error: OnError = "stop",
        resume: bool = False,
        cluster: Any = None,
        max_memory: int | str | None = None,
        overwrite: bool = False,
    ) -> None:
        self.chain = chain
        self.workers = check_arguments(chain, workers, on_error)
        self.on_error: OnError = on_error
        self.resumable = resume
        self.cluster, self._closer = attach_cluster(self, cluster)  # TypeError here, not later
        self._plan = compile_chain(chain)
        self._output_folder = manifest_folder(self._plan, resume)
        self._guard = RunGuard(self._plan, max_memory=max_memory, overwrite=overwrite)
        self._start_lock = threading.Lock()
        iterator = tuple(filter(None, [self._plan.iterator]))
        self._preview = PreviewBuffer(
            keys=_image_keys((*iterator, *self._plan.item)), before=_image_keys(iterator))
        self._control = Control()
        self._ledger = Ledger(self._plan.steps, dashboard=dashboard_link(self.cluster))
        self._engine: Engine | None = None
        self._mirror: RunStateMirror | None = None
        self._mirror_lock = threading.Lock()

    # ------------------------------------------------------------------ control

    @property
    def run_id(self) -> str:
        return self._control.run_id

    def start(self) -> Ack:
        """Start a run (a new run with a new run id if a previous one has finished). Refused
        while a run is active, or when an output folder is in use (naming the holder)."""
        control = self._control
        with self._start_lock:  # one start at a time: a second one waits, then sees the first
            with control.cond:
                if control.state in ACTIVE_STATES:
                    return self._ack("start", *control.command("start"))
            try:  # outside the runner's lock: this touches the disk
                outputs = self._guard.open()
            except StartRefused as exc:
                with control.cond:
                    return self._ack("start", False, str(exc))
            with control.cond:
                accepted, why = control.command("start")
                if accepted:
                    self._ledger = Ledger(self._plan.steps, dashboard=self._ledger.dashboard)
                    self._engine = engine = Engine(
                        control, self._plan, self._ledger, self._preview,
                        executor=self._executor(), stop_on_error=self.on_error == "stop",
                        resuming=self.resumable, manifest=self._manifest_opener(),
                        **self._guard.engine_options(outputs))
                    threading.Thread(target=engine.drive,
                                     name=f"chainlib-run-{control.run_id}", daemon=True).start()
                elif outputs is not None:
                    outputs.close()
                return self._ack("start", accepted, why)

    def pause(self) -> Ack:
        """Ask the run to pause at its next checkpoints (``pausing``, then ``paused``)."""
        return self._command("pause")

    def resume(self) -> Ack:
        """Continue a pausing or paused run."""
        return self._command("resume")

    def stop(self, reason: str | None = None) -> Ack:
        """Ask the run to stop at its next checkpoints (``stopping``, then ``stopped``).

        ``reason`` shows in ``Status.reason`` (default: "stopped by user").
        """
        return self._command("stop", reason)

    def command(self, name: str) -> Ack:
        """Dispatch a command by name (``start``, ``pause``, ``resume``, ``stop``)."""
        handler = {"start": self.start, "pause": self.pause, "resume": self.resume,
                   "stop": self.stop}.get(name)
        if handler is not None:
            return handler()
        with self._control.cond:
            return self._ack(name, False, f"unknown command {name!r}")

    def _command(self, name: Command, reason: str | None = None) -> Ack:
        with self._control.cond:
            accepted, why = self._control.command(name, reason)
            return self._ack(name, accepted, why)

    def _ack(self, command: str, accepted: bool, why: str) -> Ack:
        return Ack(command, accepted, why, self._ledger.snapshot(self._control))

    def _executor(self) -> Executor:
        if self.cluster is not None:
            from .cluster import ClusterExecutor  # imports numpy and Dask helpers: only when used

            return ClusterExecutor(self.cluster)
        return LocalThreads(self.workers, resuming=self.resumable)

    def _manifest_opener(self) -> Callable[[], Manifest] | None:
        folder = self._output_folder
        if folder is None:
            return None
        return lambda: Manifest(folder, resume_fingerprint(self.chain.fingerprint(), self._plan))

    # ------------------------------------------------------------------ observing

    def status(self) -> Status:
        """The latest snapshot; callable any time from any thread."""
        with self._control.lock:
            return self._ledger.snapshot(self._control)

    def wait(self, timeout: float | None = None) -> Status:
        """Block until the run ends and return its final status.

        Raises ``TimeoutError`` after ``timeout`` seconds. A ``KeyboardInterrupt`` (Ctrl-C, or a
        notebook's interrupt button) while waiting asks the run to stop, waits for ``stopped``
        (a second interrupt gives up waiting) and re-raises. While it blocks, the hooks of
        :mod:`chainlib.run.waiting` run every few hundredths of a second.
        """
        try:
            return self._wait_finished(timeout)
        except KeyboardInterrupt:
            self.stop("interrupted by the user")
            self._wait_finished(None)
            raise

    def _wait_finished(self, timeout: float | None) -> Status:
        deadline = None if timeout is None else time.monotonic() + timeout
        control = self._control
        while True:
            hooks = has_wait_hooks()
            with control.cond:
                if control.state not in ACTIVE_STATES:
                    return self._ledger.snapshot(control)
                left = HOOK_SLICE_S if hooks else WAIT_SLICE_S
                if deadline is not None:
                    left = min(left, deadline - time.monotonic())
                if left <= 0:
                    raise TimeoutError(f"run {control.run_id} still {control.state} after "
                                       f"{timeout} s")
                control.cond.wait(left)
            if hooks:
                run_wait_hooks()

    async def wait_async(self, timeout: float | None = None) -> Status:
        """Await the end of the run without blocking the event loop (use in notebooks).

        ``asyncio.TimeoutError`` after ``timeout`` s; an Interrupt cancels the wait, not the run."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Status] = loop.create_future()

        def settle(status: Status) -> None:
            if not future.done():
                future.set_result(status)

        def done(status: Status) -> None:
            loop.call_soon_threadsafe(settle, status)

        with self._control.lock:
            engine = self._engine
            if engine is None or self._control.state not in ACTIVE_STATES:
                return self._ledger.snapshot(self._control)
            engine.on_finish(done)
        try:
            return await await_waking(future, timeout, f"run {self.run_id}")
        finally:
            with self._control.lock:
                engine.on_finish(done, add=False)

    def __await__(self) -> Any:
        return self.wait_async().__await__()

    def subscribe(
        self, callback: Callable[[Event], object], *, maxlen: int = 10_000
    ) -> Subscription:
        """Deliver every event to ``callback`` on a dedicated thread (see :mod:`.events`)."""
        fanout = self._control.fanout
        sub = Subscription(callback, maxlen=maxlen, on_close=self._unsubscribe)
        with self._control.lock:
            fanout.add_subscriber(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._control.lock:
            self._control.fanout.remove_subscriber(sub)

    def watch(self, flag: threading.Event) -> Callable[[], None]:
        """Set ``flag`` on every change (cheap, lossless wake-up for coalescing publishers).

        Returns a function that removes the watch.
        """
        return self._control.watch(flag)

    @property
    def _watchers(self) -> list[threading.Event]:
        """The watcher flags (a live view, for tests)."""
        return self._control.fanout.watchers

    @property
    def state(self) -> RunStateMirror:
        """A traitlets ``HasTraits`` mirror of the latest status (observe it from any thread)."""
        with self._mirror_lock:  # not the runner's lock: the mirror subscribes through it
            if self._mirror is None:
                from .observable import RunStateMirror

                self._mirror = RunStateMirror(self)
            return self._mirror

    # ------------------------------------------------------------------ results and preview

    def result(self, node: str | NodeHandle, output: str | None = None) -> Any:
        """The value of a node that runs once (before the items, a collector, or after it) in the
        last finished run. ``output`` defaults to the node's only output."""
        node_id = node.id if isinstance(node, NodeHandle) else node
        step = self._plan.steps.get(node_id)
        if step is None:
            raise KeyError(f"no node {node_id!r} in this chain")
        name = output or step.spec.default_output
        with self._control.lock:
            results = self._engine.results if self._engine is not None else {}
            if (node_id, name or "") not in results:
                raise self._no_result(step, name, self._ledger.snapshot(self._control))
            return results[(node_id, name or "")]

    def enable_preview(self) -> None:
        """Keep the newest finished items' images, shrunk (see :meth:`preview`, :meth:`gallery`)."""
        self._preview.enable()

    def preview(self) -> tuple[int, str | None, Any] | None:
        """``(counter, label, image)`` of the newest finished item's last image output, or None.

        The counter grows with every new preview, so a consumer can tell whether it changed.
        """
        return self._preview.latest()

    def gallery(self) -> tuple[Preview, ...]:
        """The newest finished items' before / after images (shrunk), oldest first; empty
        unless :meth:`enable_preview` was called."""
        return self._preview.recent()

    def serve(self, host: str = "127.0.0.1", port: int = 0, **options: Any) -> ControlServer:
        """Start an HTTP control server for this run (page, /status, SSE /events, /commands)
        and return it; see :func:`chainlib.serve.serve` (needs ``pip install chainlib[serve]``)."""
        try:
            from ..serve import serve
        except ImportError as exc:
            raise ImportError(f"Runner.serve needs the serve extra: pip install "
                              f"'chainlib[serve]' ({exc})") from exc
        return serve(self, host, port, **options)


def _image_keys(steps: tuple[Step, ...]) -> tuple[Key, ...]:
    """The image outputs of ``steps``, the last step first."""
    return tuple((step.id, name) for step in reversed(steps)
                 for name, tp in step.spec.outputs.items() if type_name(tp) == "Image")
