"""Wait hooks: work to do while a thread blocks in :meth:`chainlib.Runner.wait` (and the waking
await of :meth:`chainlib.Runner.wait_async`, :func:`await_waking`).

The control panel registers one to process pending comm messages while a notebook cell blocks in
``wait()`` (without comms over subshells, nothing else would hear its clicks). A hook takes no
arguments and should return quickly; ``wait()`` calls it about every 0.05 s, outside the
runner's lock. An exception in a hook is logged and ignored. A hook that itself calls ``wait()``
does not run the hooks again on that thread (no recursion).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("chainlib")

HOOK_SLICE_S = 0.05
"""How long ``wait()`` blocks between two calls of the hooks while any is registered."""

_hooks: list[Callable[[], object]] = []
_lock = threading.Lock()
_local = threading.local()


def add_wait_hook(fn: Callable[[], object]) -> Callable[[], None]:
    """Register ``fn``; returns the function that removes it (idempotent)."""
    with _lock:
        _hooks.append(fn)

    def remove() -> None:
        with _lock:
            if fn in _hooks:
                _hooks.remove(fn)

    return remove


def has_wait_hooks() -> bool:
    return bool(_hooks)


def run_wait_hooks() -> None:
    """Call every registered hook once (unless this thread is already inside one)."""
    if getattr(_local, "running", False):
        return
    with _lock:
        hooks = list(_hooks)
    if not hooks:
        return
    _local.running = True
    try:
        for fn in hooks:
            try:
                fn()
            except Exception:
                log.exception("chainlib wait hook %r raised (ignored)", fn)
    finally:
        _local.running = False


ASYNC_WAKE_S = 0.2
"""Longest sleep of the event loop in :func:`await_waking` (``Runner.wait_async``)."""


async def await_waking(future: asyncio.Future[T], timeout: float | None, what: str) -> T:
    """Await ``future`` (``asyncio.TimeoutError`` naming ``what`` after ``timeout`` s), waking
    the event loop at least every :data:`ASYNC_WAKE_S` s.

    Why wake it: a callback scheduled from a signal handler without waking the loop runs only at
    the loop's next wake-up. ipykernel's Interrupt of an awaiting cell is one (its SIGINT handler
    uses tornado's ``add_callback`` on the loop's own thread, a plain ``call_soon``): awaiting the
    future alone, the Interrupt stayed pending until the run ended. ``future`` is not cancelled.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while not future.done():
        left = ASYNC_WAKE_S if deadline is None else min(ASYNC_WAKE_S, deadline - loop.time())
        if left <= 0:
            raise asyncio.TimeoutError(f"{what} still active after {timeout} s")
        await asyncio.wait((future,), timeout=left)
    return future.result()
