"""What the control panel needs from the Jupyter kernel it runs in (ipykernel / IPython).

Everything here is a no-op outside a kernel (a script, the tests without a kernel), and each
ipykernel detail is guarded so a kernel that lacks it only loses that feature:

- **Subshell routing** (:func:`honour_frontend_subshell`). ipykernel 7.4 routes every incoming
  ``comm_msg`` of a comm to the subshell the comm last *published* from
  (``BaseComm._reply_subshell_for``), overriding the subshell the front end chose. A widget's
  ``comm_open`` is published from the main shell, so without this override every click goes to the
  main shell, blocked by a running cell. See ``docs/upstream-subshell-routing.md``.
- **Busy** (:class:`KernelWatch`): IPython's ``pre_run_cell`` / ``post_run_cell`` events, registered
  once per process, tell whether the main shell is executing a cell.
- **Pumping** (:func:`pump_main_shell`): called by ``Runner.wait`` through its wait hooks, it
  handles pending main-shell messages addressed to a chainlib panel's comm while the cell blocks;
  every other message is put back in order for the kernel (never run inside the cell).
- **Shutdown** (:meth:`KernelWatch.shutdown`): one hook, run by whichever comes first of the
  kernel's ``shutdown_request`` handler and ``atexit`` (before IPython clears the user namespace,
  whose teardown used to surface as a fake node failure). It starts the process-wide shutdown of
  :mod:`chainlib.run.lifecycle` first (every run stops; a failure from now on is a stop).

Threads: busy transitions arrive on the main thread, routing decisions on ipykernel's shell-channel
thread, pumping on the main thread, shutdown on the control thread or at exit. Shared state lives
in :class:`KernelWatch` under its one lock; listeners are woken by setting their ``Event``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Final

from .run import lifecycle
from .run.waiting import add_wait_hook

__all__ = [
    "BUSY_AFTER",
    "PUMP_GRACE",
    "SHUTDOWN_REASON",
    "KernelWatch",
    "PanelLink",
    "current_kernel",
    "honour_frontend_subshell",
    "initial_facts",
    "pump_main_shell",
]

SHUTDOWN_REASON: Final = lifecycle.KERNEL_REASON
"""The reason a run stopped by the kernel's shutdown (or restart) carries."""

PUMP_GRACE: Final = 0.25
"""Seconds after the last pump slice during which a panel still counts as heard by the pump
(``Runner.wait`` calls its hooks at least every 0.05 s while it blocks)."""

BUSY_AFTER: Final = 0.2
"""A cell counts as making the kernel busy once it has run this long: a notebook running many
short cells does not flood the browser with busy/idle flips (a click's busy notice is due within
1 s; the end of a cell is published at once)."""

SHUTDOWN_WAIT: Final = lifecycle.SHUTDOWN_WAIT
"""Seconds the shutdown hook waits, in all, for the runs it stopped to reach ``stopped``."""


def current_kernel() -> Any | None:
    """The running ipykernel ``Kernel``, or None outside a kernel."""
    if "ipykernel" not in sys.modules:
        return None
    try:
        from ipykernel.kernelbase import Kernel
    except ImportError:  # pragma: no cover - ipykernel half-installed
        return None
    return Kernel.instance() if Kernel.initialized() else None


def initial_facts() -> dict[str, Any]:
    """A panel's first ``kernel`` trait value (the publisher sends the truth if it differs)."""
    return {"busy": False, "busy_since": None, "hears_clicks": False, "pid": os.getpid()}


def _subshells(kernel: Any) -> bool:
    """Whether the kernel has subshells (ipykernel >= 7: a shell-channel thread routes messages)."""
    return getattr(kernel, "shell_channel_thread", None) is not None


def _frontend_choice(data: Any, default: str | None) -> str | None:
    """A comm routing decision: the subshell the front end sent the message on."""
    return default


def honour_frontend_subshell(comm: Any) -> bool:
    """Make ``comm``'s incoming messages go to the subshell the front end chose.

    ipykernel 7.4 calls ``comm._reply_subshell_for(data, default)`` on its shell-channel thread for
    each incoming ``comm_msg`` / ``comm_close`` and routes the message to the returned subshell
    (``default`` is the front end's choice). Its own implementation returns the subshell the comm
    last published from, so a widget created in a main-shell cell has every click queued behind
    the cell that is running. chainlib's panels never wait for a reply in a subshell (the case the
    upstream routing serves), so following the front end is always right for them. The override is
    an instance attribute of this one comm; where ipykernel has no such hook (< 7.4, or a future
    version that routes differently) nothing is changed. Returns whether the kernel has subshells.
    """
    kernel = current_kernel()
    if kernel is None or not _subshells(kernel):
        return False
    if callable(getattr(comm, "_reply_subshell_for", None)):
        comm._reply_subshell_for = _frontend_choice
    return True


class KernelWatch:
    """Kernel-wide facts shared by every panel of this process (one instance: :meth:`get`).

    Invariants (under ``_lock``): ``busy_since`` is None exactly when no main-shell cell runs;
    ``_listeners`` holds the panels' wake-up events weakly, so a forgotten panel needs no
    unregistering; ``_pump_until`` is the monotonic time until which pumping counts as active.
    """

    _instance: KernelWatch | None = None
    _instance_lock = threading.Lock()

    def __init__(self, kernel: Any | None) -> None:
        self._lock = threading.Lock()
        self._kernel = kernel
        self._listeners: weakref.WeakSet[threading.Event] = weakref.WeakSet()
        self._pumped: dict[str, weakref.ReferenceType[Any]] = {}  # comm_id -> comm
        self._shutdown_hooks: list[weakref.WeakMethod[Callable[[str, float], None]]] = []
        self.busy_since: float | None = None  # time.time() when the running cell started
        self._busy_mono = 0.0  # the same, monotonic
        self.cells = 0  # main-shell cells started so far
        self._pump_until = -1.0
        self._pumping = False  # re-entrancy guard (main thread only)
        self._shut_down = False
        self.pid = os.getpid()
        self.can_pump = kernel is not None and _subshells(kernel)
        if kernel is not None:
            self._install(kernel)

    @classmethod
    def get(cls) -> KernelWatch:
        """The process's watch (created on first use, hooks installed once)."""
        with cls._instance_lock:
            kernel = current_kernel()
            inst = cls._instance
            if inst is None or (inst._kernel is None and kernel is not None):
                inst = cls._instance = cls(kernel)
            return inst

    # ---------------------------------------------------------------- installation

    def _install(self, kernel: Any) -> None:
        shell = getattr(kernel, "shell", None)
        if shell is not None:
            shell.events.register("pre_run_cell", self.pre_run_cell)
            shell.events.register("post_run_cell", self.post_run_cell)
        handlers = getattr(kernel, "control_handlers", None)
        original = handlers.get("shutdown_request") if isinstance(handlers, dict) else None
        if original is not None and handlers is not None:
            async def shutdown_request(stream: Any, ident: Any, parent: Any) -> None:
                self.shutdown(SHUTDOWN_REASON)
                await original(stream, ident, parent)

            handlers["shutdown_request"] = shutdown_request
        # registered after IPython's own atexit (which clears the user namespace): runs first
        atexit.register(self.shutdown, SHUTDOWN_REASON)
        if self.can_pump:
            add_wait_hook(self.pump)

    # ---------------------------------------------------------------- panels

    def add_listener(self, flag: threading.Event) -> None:
        with self._lock:
            self._listeners.add(flag)

    def remove_listener(self, flag: threading.Event) -> None:
        with self._lock:
            self._listeners.discard(flag)

    def _wake(self) -> None:
        with self._lock:
            flags = list(self._listeners)
        for flag in flags:
            flag.set()

    def serve(self, comm: Any) -> None:
        """Let the pump handle ``comm``'s messages (held weakly)."""
        comm_id = getattr(comm, "comm_id", None)
        if comm_id is not None:
            with self._lock:
                self._pumped[comm_id] = weakref.ref(comm)

    def unserve(self, comm_id: str) -> None:
        with self._lock:
            self._pumped.pop(comm_id, None)

    def on_shutdown(self, hook: Callable[[str, float], None]) -> None:
        """Call the bound method ``hook(reason, deadline)`` at kernel shutdown (held weakly)."""
        with self._lock:
            self._shutdown_hooks.append(weakref.WeakMethod(hook))

    @property
    def busy(self) -> bool:
        """A main-shell cell has been running for at least ``BUSY_AFTER`` s."""
        return self.busy_since is not None and time.monotonic() - self._busy_mono >= BUSY_AFTER

    @property
    def busy_at(self) -> float | None:
        """Monotonic time at which :attr:`busy` turns true by itself (None if it will not)."""
        if self.busy_since is None:
            return None
        at = self._busy_mono + BUSY_AFTER
        return at if at > time.monotonic() else None

    @property
    def pumping_now(self) -> bool:
        """The current (main) thread is inside :meth:`pump`."""
        return self._pumping

    @property
    def pump_until(self) -> float:
        """Monotonic time until which pumping counts as active (in the past when it is not)."""
        return self._pump_until

    # ---------------------------------------------------------------- busy

    def pre_run_cell(self, info: Any = None) -> None:
        """IPython event: a cell starts (only the main shell's cells make the kernel busy)."""
        if threading.current_thread() is threading.main_thread():
            self._busy_mono = time.monotonic()
            self.busy_since = time.time()
            self.cells += 1
            self._wake()

    def post_run_cell(self, result: Any = None) -> None:
        """IPython event: a cell ended."""
        if threading.current_thread() is threading.main_thread():
            self.busy_since = None
            self._pump_until = -1.0  # a pump never outlives its cell
            self._wake()

    # ---------------------------------------------------------------- pumping

    def pump(self) -> None:
        """A ``Runner.wait`` hook: handle pending main-shell messages for chainlib panels."""
        kernel = self._kernel
        if (kernel is None or self._pumping or self._shut_down or not self._pumped
                or threading.current_thread() is not threading.main_thread()):
            return
        self._pumping = True
        try:
            started = self._pump_until < time.monotonic()
            self._pump_until = time.monotonic() + PUMP_GRACE
            if started:
                self._wake()
            pump_main_shell(kernel, self._comm_for)
        finally:
            self._pumping = False

    def _comm_for(self, comm_id: Any) -> Any | None:
        with self._lock:
            ref = self._pumped.get(comm_id) if isinstance(comm_id, str) else None
        return None if ref is None else ref()

    # ---------------------------------------------------------------- shutdown

    def shutdown(self, reason: str) -> None:
        """The kernel shuts down (the first caller wins): first the process-wide shutdown
        (from now on nothing a node raises is a failure; every active run, with a panel or
        not, is stopped with ``reason`` and waited for), then the panels' hooks (goodbye)."""
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
            hooks = [h() for h in self._shutdown_hooks]
        deadline = time.monotonic() + SHUTDOWN_WAIT
        lifecycle.begin_shutdown(reason, deadline)
        for hook in hooks:
            if hook is not None:
                # one broken panel must not keep the others from saying goodbye
                with contextlib.suppress(Exception):
                    hook(reason, deadline)


def pump_main_shell(kernel: Any, comm_for: Callable[[Any], Any | None]) -> int:
    """Handle the main shell's pending ``comm_msg`` for comms ``comm_for`` knows; keep the rest.

    Runs on the main thread (the owner of the main shell's inproc socket, read here with NOBLOCK
    until it is empty). A message for a chainlib panel is handed to its comm
    (``comm.handle_msg``, as ipykernel's comm manager does); any other message (an
    ``execute_request`` queued behind the blocking cell, another widget's message, ...) is given
    back to the kernel's event loop, in arrival order, to be dispatched as usual once the cell
    yields - so nothing ever runs inside the cell. Only the header (and a comm message's content)
    is peeked at, which does not record the message's signature, so its later dispatch is accepted.
    Returns how many messages were handled.
    """
    import zmq

    manager = kernel.shell_channel_thread.manager
    socket = manager.get_shell_channel_to_subshell_pair(None).to_socket
    session = kernel.session
    handled = 0
    while True:
        try:
            raw = socket.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return handled
        comm = None
        try:
            _, frames = session.feed_identities(raw, copy=False)
            peek = session.deserialize(frames, content=False, copy=False)
            if peek["header"]["msg_type"] == "comm_msg":
                comm = comm_for(session.unpack(peek["content"]).get("comm_id"))
        except Exception:
            comm = None  # not ours to judge: the kernel reports it when it dispatches it
        if comm is None:
            kernel.io_loop.add_callback(kernel.shell_main, None, raw)
            continue
        msg = session.deserialize(frames, content=True, copy=False)
        comm.handle_msg(msg)
        handled += 1


class PanelLink:
    """One panel's connection to :class:`KernelWatch`: routing, busy, pumping, shutdown."""

    def __init__(self, comm: Any, flag: threading.Event,
                 on_shutdown: Callable[[str, float], None]) -> None:
        self._watch = KernelWatch.get()
        self._flag = flag
        self._comm_id: str | None = getattr(comm, "comm_id", None)
        self.subshells = honour_frontend_subshell(comm) if comm is not None else False
        self._off_main = False  # the last message from a view was handled off the main thread
        self._heard_in_cell = -1  # the cell during which the main shell handled one (async cell)
        self._watch.add_listener(flag)
        self._watch.on_shutdown(on_shutdown)
        if self._watch.can_pump and comm is not None:
            self._watch.serve(comm)  # weakly

    def view_message(self) -> None:
        """Note that a message from a view is being handled on the current thread.

        Off the main thread: the front end uses a subshell (it will go on doing so). On the main
        thread while a cell runs, not pumped: the cell awaits, and the main shell hears clicks
        until that cell ends.
        """
        watch = self._watch
        off_main = threading.current_thread() is not threading.main_thread()
        changed = off_main != self._off_main
        self._off_main = off_main
        if not off_main and watch.busy_since is not None and not watch.pumping_now \
                and self._heard_in_cell != watch.cells:
            self._heard_in_cell = watch.cells
            changed = True
        if changed:
            self._flag.set()

    def info(self) -> dict[str, Any]:
        """The ``kernel`` trait's value now (see the panel's protocol)."""
        watch = self._watch
        pumping = watch.pump_until >= time.monotonic()
        awaiting = watch.busy_since is not None and self._heard_in_cell == watch.cells
        busy = watch.busy
        return {
            "busy": busy,
            "busy_since": watch.busy_since if busy else None,
            "hears_clicks": pumping or (self.subshells and self._off_main) or awaiting,
            "pid": watch.pid,
        }

    def changes_at(self) -> float | None:
        """Monotonic time at which :meth:`info` changes by itself (busy starts, pumping ends)."""
        now = time.monotonic()
        due = [t for t in (self._watch.busy_at, self._watch.pump_until)
               if t is not None and t >= now]
        return min(due) if due else None

    def close(self) -> None:
        self._watch.remove_listener(self._flag)
        if self._comm_id is not None:
            self._watch.unserve(self._comm_id)
