"""Helpers for the control-server tests: a background SSE reader and a few chains."""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

import chainlib as cl
from chainlib.serve.client import _iter_sse


@dataclass
class SSEEvent:
    at: float
    event: str
    data: Any
    id: str | None


class EventReader:
    """Reads one ``GET /events`` stream on a thread; events land in ``self.events`` (a queue)."""

    def __init__(self, base_url: str, token: str, *, last_event_id: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.events: queue.Queue[SSEEvent] = queue.Queue()
        self.lines: list[str] = []
        self.status_code: int | None = None
        self.ended = threading.Event()
        self._client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(10.0, read=30.0))
        h = {"authorization": f"Bearer {token}", **(headers or {})}
        if last_event_id is not None:
            h["last-event-id"] = last_event_id
        self._headers = h
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self._connected.wait(10), "no response to GET /events"

    def _read(self) -> None:
        try:
            with self._client.stream("GET", "/events", headers=self._headers) as response:
                self.status_code = response.status_code
                self._connected.set()
                if response.status_code != 200:
                    return

                def lines() -> Any:
                    for line in response.iter_lines():
                        self.lines.append(line)
                        yield line

                for event, data, event_id in _iter_sse(lines()):
                    self.events.put(SSEEvent(time.monotonic(), event, json.loads(data), event_id))
        except httpx.HTTPError:
            pass
        finally:
            self._connected.set()
            self.ended.set()

    def next(self, kind: str | None = None, timeout: float = 10.0) -> SSEEvent:
        """The next event (of ``kind`` if given; others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind or ''} event within {timeout} s")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if kind is None or ev.event == kind:
                return ev

    def until(self, predicate: Any, timeout: float = 10.0) -> SSEEvent:
        """Skip status events until one satisfies ``predicate(status dict)``."""
        deadline = time.monotonic() + timeout
        while True:
            ev = self.next("status", max(0.01, deadline - time.monotonic()))
            if predicate(ev.data):
                return ev

    def close(self) -> None:
        self._client.close()
        self._thread.join(5)


def progress_chain(items: int = 3, steps: int = 200_000) -> cl.Chain:
    """A chain whose node reports progress as fast as it can (a very chatty event source)."""

    @cl.node("serve_test.spin")
    def spin(ctx: cl.Context, x: int, steps: int = 1000) -> int:
        for i in range(steps):
            ctx.progress(i / steps)
        return x

    chain = cl.Chain("spin")
    chain.add("serve_test.spin", x=chain.add("core.range", n=items), steps=steps)
    return chain
