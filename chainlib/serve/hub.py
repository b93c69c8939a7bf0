"""One run's snapshots, coalesced once and fanned out to every Server-Sent Events stream.

Threads. The *publisher* thread waits on the runner's watch flag and decides what goes on the
wire: a state transition at once, otherwise at most ``max_rate`` snapshots a second, the newest
one winning and the last one always flushed (within ``1 / max_rate`` s of the last change). It
serializes each chosen snapshot once and hands it to the server's event loop
(``call_soon_threadsafe``). Everything else in a :class:`Hub` (the newest published snapshot, the
wake-up event, the cut, the counters) is owned by that event loop's thread, so it needs no lock.

Streams. Each ``GET /events`` runs :meth:`Hub.stream` on the loop: ``retry:`` first, then the
newest snapshot unless the client's ``Last-Event-ID`` says it has it, then every published
snapshot newer than what this stream sent (``id:`` = seq, ``event: status``), and a ``heartbeat``
event whenever the stream has been silent for ``heartbeat_interval`` s. The heartbeat is an event,
not a comment, because ``EventSource`` hides comments from the page, which needs the heartbeat
to tell a quiet run from a lost connection. Snapshots are whole, so a resumed stream needs no
history: the newest snapshot is the truth. When the server closes, each stream gets the run's
newest snapshot, then ``event: goodbye`` (``{"reason", "status"}``, no id), and ends: a client
tells a server that closed on purpose (its ``chainlib run`` ended) from a lost connection, as the
notebook panel tells a restarted kernel from one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from ..run.status import Status

__all__ = ["CLOSED_REASON", "MAX_FAILURES", "Controllable", "Hub", "Published", "ServeFaults",
           "snapshot_json"]

CLOSED_REASON: Final = "the control server was closed"
"""The goodbye's reason when whoever closes the server gives none."""

MAX_FAILURES: Final = 20
"""How many of the newest failures a served snapshot keeps (as in the notebook panel)."""


class Controllable(Protocol):
    """What the server needs from a run: :class:`~chainlib.Runner`'s public control surface."""

    def status(self) -> Status: ...

    def command(self, name: str) -> Any: ...

    def watch(self, flag: threading.Event) -> Callable[[], None]: ...


@dataclass(frozen=True)
class ServeFaults:
    """Test-only fault injection for a control server.

    ``drop_events``: the fraction of ``status`` events each stream silently skips (seeded per
    stream; heartbeats are never dropped, so the page stays connected and must converge through
    its periodic pulls). Also enables :meth:`ControlServer.cut`, which cuts the connection.
    """

    drop_events: float = 0.0
    seed: int | None = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_events <= 1.0:
            raise ValueError(f"ServeFaults.drop_events must be in [0, 1], got {self.drop_events!r}")


@dataclass(frozen=True, slots=True)
class Published:
    """A snapshot chosen for the wire, serialized once."""

    seq: int
    state: str
    data: str


def snapshot_json(snap: Status) -> str:
    """The JSON text of a snapshot as served (``/status``, ``/events``, command acks)."""
    return json.dumps(snap.to_dict(max_failures=MAX_FAILURES), separators=(",", ":"))


def _event(seq: int, kind: str, data: str) -> str:
    return f"id: {seq}\nevent: {kind}\ndata: {data}\n\n"


class Hub:
    """Coalesced snapshots of one run for any number of SSE streams (see the module docstring)."""

    def __init__(
        self,
        runner: Controllable,
        loop: asyncio.AbstractEventLoop,
        *,
        max_rate: float = 10.0,
        heartbeat_interval: float = 1.0,
        retry_ms: int = 500,
        faults: ServeFaults | None = None,
    ) -> None:
        self._runner = runner
        self._loop = loop
        self._period = 1.0 / max_rate
        self.heartbeat_interval = heartbeat_interval
        self.retry_ms = retry_ms
        self.faults = faults  # fixed at construction; None outside tests
        # loop-owned
        self._latest: Published | None = None
        self._changed = asyncio.Event()
        self._cut_until = -math.inf
        self._ended = False  # set after the final snapshot is published: streams end
        self._goodbye = ""  # the goodbye event every stream sends before it ends
        self._streams = 0
        self.events_sent = 0
        self.heartbeats_sent = 0
        self.events_dropped = 0
        self.published = 0  # snapshots handed over by the publisher
        # publisher-owned
        self._closing = threading.Event()
        self._flag = threading.Event()
        self._unwatch = runner.watch(self._flag)
        self._thread = threading.Thread(target=self._publisher, name="chainlib-serve-publisher",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, reason: str = CLOSED_REASON) -> None:
        """Stop publishing and end every stream, after sending each one the run's newest
        snapshot and a goodbye naming ``reason`` (callable from any thread; idempotent)."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._flag.set()
        self._unwatch()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        snap = self._runner.status()
        final = Published(snap.seq, snap.state, snapshot_json(snap))
        goodbye = f'{{"reason":{json.dumps(reason)},"status":{final.data}}}'
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            # in this order: the loop publishes the final snapshot before the streams end
            self._loop.call_soon_threadsafe(self._publish, final)
            self._loop.call_soon_threadsafe(self._end_streams, goodbye)

    # ------------------------------------------------------------------ publisher thread

    def _publisher(self) -> None:
        last_seq, last_state = -1, ""
        last_pub = -math.inf
        timeout: float | None = 0.0
        while True:
            self._flag.wait(timeout)
            if self._closing.is_set():
                return
            self._flag.clear()  # before reading: a later change sets it again (no lost wake-up)
            snap = self._runner.status()
            now = time.monotonic()
            timeout = None
            if snap.seq == last_seq:
                continue
            if snap.state != last_state or now - last_pub >= self._period:
                pub = Published(snap.seq, snap.state, snapshot_json(snap))
                try:
                    self._loop.call_soon_threadsafe(self._publish, pub)
                except RuntimeError:  # the server's loop has closed
                    return
                last_seq, last_state, last_pub = snap.seq, snap.state, now
            else:
                timeout = last_pub + self._period - now  # flush the newest when the slot opens

    # ------------------------------------------------------------------ event loop thread

    def _publish(self, pub: Published) -> None:
        if self._latest is None or pub.seq > self._latest.seq:
            self._latest = pub
            self.published += 1
            self._wake()

    def _end_streams(self, goodbye: str) -> None:
        self._goodbye = f"event: goodbye\ndata: {goodbye}\n\n"
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    @property
    def cutting(self) -> bool:
        """Whether a fault-injection cut is in effect (loop thread)."""
        return time.monotonic() < self._cut_until

    @property
    def streams(self) -> int:
        """Open event streams."""
        return self._streams

    def cut(self, seconds: float) -> None:
        """Cut every stream now and refuse connections for ``seconds`` (loop thread)."""
        self._cut_until = time.monotonic() + seconds
        self._wake()

    def fresh(self) -> Published:
        """The run's newest snapshot, read now (not the newest published one)."""
        snap = self._runner.status()
        latest = self._latest
        if latest is not None and latest.seq == snap.seq:
            return latest
        return Published(snap.seq, snap.state, snapshot_json(snap))

    async def stream(self, last_event_id: int | None, stream_no: int) -> AsyncIterator[str]:
        """The body of one ``GET /events`` response (see the module docstring)."""
        faults = self.faults
        drop = (random.Random(None if faults.seed is None else faults.seed + stream_no)
                if faults is not None and faults.drop_events > 0 else None)
        self._streams += 1
        try:
            yield f"retry: {self.retry_ms}\n\n"
            first = self.fresh()
            sent = first.seq
            if first.seq != last_event_id:
                self.events_sent += 1
                yield _event(first.seq, "status", first.data)
            last_write = time.monotonic()
            while not self.cutting:  # a cut loses what is in flight, as a broken link does
                changed = self._changed
                latest = self._latest
                if latest is not None and latest.seq > sent:
                    sent = latest.seq
                    if drop is not None and faults is not None and (
                            drop.random() < faults.drop_events):
                        self.events_dropped += 1
                    else:
                        self.events_sent += 1
                        last_write = time.monotonic()
                        yield _event(latest.seq, "status", latest.data)
                    continue
                if self._ended:  # after the final snapshot went out
                    yield self._goodbye
                    return
                wait = last_write + self.heartbeat_interval - time.monotonic()
                if wait <= 0:
                    self.heartbeats_sent += 1
                    last_write = time.monotonic()
                    beat = {"seq": sent, "time": time.time()}
                    yield f"event: heartbeat\ndata: {json.dumps(beat)}\n\n"
                    continue
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(changed.wait(), wait)
        finally:
            self._streams -= 1
