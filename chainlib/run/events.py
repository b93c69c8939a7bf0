"""Events: the fast path next to the status snapshot.

Every change of a runner's state bumps ``seq`` by one and produces exactly one event carrying that
seq, so a subscriber that sees ``event.seq > last_seq + 1`` knows it missed events and can resync
from ``Runner.status()``. Each subscriber has its own bounded buffer and delivery thread: a slow or
raising subscriber never slows or breaks the run; when its buffer is full the oldest queued event
is dropped (so the newest, such as the final state, always arrives) and the next delivered event
reports the gap in ``gap``.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

log = logging.getLogger("chainlib")

EventKind = Literal[
    "state",
    "node_started",
    "node_finished",
    "node_failed",
    "item_done",
    "item_failed",
    "progress",
    "total",
]


@dataclass(frozen=True, slots=True)
class Event:
    """One change. ``gap`` counts events this subscriber missed just before this one."""

    kind: EventKind
    seq: int
    run_id: str
    state: str
    node: str | None = None
    item: int | None = None
    label: str | None = None
    message: str | None = None
    progress: float | None = None
    gap: int = 0


class Subscription:
    """A callback receiving a runner's events on its own thread. Close it to stop delivery."""

    def __init__(
        self,
        callback: Callable[[Event], object],
        *,
        maxlen: int = 10_000,
        on_close: Callable[[Subscription], None] | None = None,
    ) -> None:
        self._callback = callback
        self._maxlen = maxlen
        self._on_close = on_close
        self._cv = threading.Condition(threading.Lock())
        self._buffer: deque[Event] = deque()
        self._last_seq: int | None = None  # seq of the last event delivered (or before the first)
        self._closed = False
        self._busy = False  # the callback is running (flush waits for it)
        self.errors = 0
        """How many times the callback raised (each is logged, delivery goes on)."""
        self._thread = threading.Thread(
            target=self._deliver, name="chainlib-subscriber", daemon=True
        )
        self._thread.start()

    def push(self, event: Event) -> None:
        """Queue an event; called by the runner under its lock, so it must never block long."""
        with self._cv:
            if self._closed:
                return
            if self._last_seq is None:
                self._last_seq = event.seq - 1
            if len(self._buffer) >= self._maxlen:
                self._buffer.popleft()  # drop the oldest: the newest (the final state) must arrive
            self._buffer.append(event)
            self._cv.notify()

    def close(self, *, drain: bool = False, timeout: float | None = None) -> None:
        """Stop delivering. With ``drain``, first deliver what is already queued."""
        with self._cv:
            if drain:
                self._cv.wait_for(lambda: not self._buffer, timeout)
            self._closed = True
            self._buffer.clear()
            self._cv.notify()
        if self._on_close is not None:
            self._on_close(self)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event has been delivered."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._buffer and not self._busy, timeout)

    def _deliver(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._buffer or self._closed)
                if self._closed:
                    return
                event = self._buffer.popleft()
                last, self._last_seq = self._last_seq, event.seq
                self._busy = True
            if last is not None and event.seq > last + 1:
                event = replace(event, gap=event.seq - last - 1)
            try:
                self._callback(event)
            except Exception:
                self.errors += 1
                if self.errors == 1:  # once: a broken callback usually raises on every event
                    log.exception("chainlib subscriber %r raised on %s (further errors of this "
                                  "subscriber are counted in .errors, not logged)",
                                  self._callback, event)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()


class Fanout:
    """Who hears about changes: subscriptions (every event) and watcher flags (a wake-up).

    No lock of its own: its owner (:class:`~chainlib.run.control.Control`) guards it with the run's
    lock, and publishes every change to it while holding that lock.
    """

    __slots__ = ("subscribers", "watchers")

    def __init__(self) -> None:
        self.subscribers: list[Subscription] = []
        self.watchers: list[threading.Event] = []

    def add_subscriber(self, sub: Subscription) -> None:
        self.subscribers.append(sub)

    def remove_subscriber(self, sub: Subscription) -> None:
        if sub in self.subscribers:
            self.subscribers.remove(sub)

    def add_watcher(self, flag: threading.Event) -> None:
        self.watchers.append(flag)

    def remove_watcher(self, flag: threading.Event) -> None:
        if flag in self.watchers:
            self.watchers.remove(flag)
