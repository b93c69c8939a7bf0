"""The end of the process as runs see it: a "shutting down" flag and the registry of active runs.

When the interpreter (a script, or a Jupyter kernel shutting down or restarting) tears itself
down, code that is still running fails in ways that have nothing to do with it: IPython clears
the user namespace (``NameError: name 'time' is not defined`` in a user's node), modules lose
their globals, files close. None of that is a node failure. So the first thing a shutdown does
is :func:`begin_shutdown`: from then on the engine treats anything a node raises as a stop
(:func:`shutting_down` gives the reason the run ends with), and every active run is asked to
stop with that reason, then waited for briefly so it ends ``stopped`` truthfully.

Who calls :func:`begin_shutdown`: chainlib's own ``atexit`` hook (registered when this module is
imported; reason :data:`INTERPRETER_REASON`), and, in a Jupyter kernel, the kernel's
``shutdown_request`` handler through :class:`chainlib.kernel.KernelWatch` (reason "kernel shutting
down"), which comes first. The first call wins; later calls change nothing.

Shared state: ``_reason`` is written once, under ``_lock``, and read without it (a single
reference read; once set it never changes back). ``_active`` holds the controls of active runs
weakly, under ``_lock``: a run is tracked from its start (``Engine`` creation) to its end.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Final

from .states import ACTIVE_STATES

if TYPE_CHECKING:
    from .control import Control

__all__ = ["INTERPRETER_REASON", "KERNEL_REASON", "SHUTDOWN_WAIT", "begin_shutdown",
           "shutting_down", "track", "untrack"]

INTERPRETER_REASON: Final = "interpreter shutting down"
"""The reason a run stopped by the interpreter's exit (a plain script) carries."""

KERNEL_REASON: Final = "kernel shutting down"
"""The reason a run stopped by a Jupyter kernel's shutdown or restart carries."""

SHUTDOWN_WAIT: Final = 3.0
"""Seconds :func:`begin_shutdown` waits, in all, for the runs it stopped to reach ``stopped``."""

_lock = threading.Lock()
_reason: str | None = None
_active: weakref.WeakSet[Control] = weakref.WeakSet()


def shutting_down() -> str | None:
    """The reason the process is shutting down, or None while it is not."""
    return _reason


def track(control: Control) -> None:
    """A run of ``control`` started: stop it at shutdown (held weakly)."""
    with _lock:
        _active.add(control)


def untrack(control: Control) -> None:
    """The run of ``control`` ended."""
    with _lock:
        _active.discard(control)


def begin_shutdown(reason: str, deadline: float | None = None) -> None:
    """Set the flag (first caller only), stop every active run with ``reason`` and wait for them.

    Waits until every run it stopped has ended, or until ``deadline`` (``time.monotonic()``;
    default: :data:`SHUTDOWN_WAIT` s from now): a node that never reaches a checkpoint must not
    keep the process from exiting.
    """
    global _reason
    with _lock:
        if _reason is not None:
            return
        _reason = reason
        controls = list(_active)
    if deadline is None:
        deadline = time.monotonic() + SHUTDOWN_WAIT
    for control in controls:
        with control.cond:
            if control.active:
                control.command("stop", reason)
    for control in controls:
        with control.cond:
            while control.state in ACTIVE_STATES:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                control.cond.wait(left)


def _at_exit() -> None:
    # In a kernel whose shutdown request was not seen (no panel installed the kernel's hook),
    # the kernel is what is shutting down; IPython clears the user namespace in its own atexit
    # hook, registered before this one and so run after it.
    kernelbase = sys.modules.get("ipykernel.kernelbase")
    kernel = getattr(kernelbase, "Kernel", None)
    in_kernel = kernel is not None and kernel.initialized()
    begin_shutdown(KERNEL_REASON if in_kernel else INTERPRETER_REASON)


atexit.register(_at_exit)
