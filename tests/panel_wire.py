"""The panel's wire, captured without a kernel: every message a ControlPanel would send.

A module of its own (not imported from ``test_panel``): pytest imports test files as top-level
modules, so ``from tests.test_panel import ...`` loaded that file a second time, and its second
copy re-registered the test nodes with functions bound to the copy's globals. The fixtures
``wire`` and ``panels`` are in ``conftest.py``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import chainlib as cl
from chainlib.panel import ControlPanel


@dataclass
class Sent:
    at: float
    thread: threading.Thread
    msg: dict[str, Any]
    buffers: list[Any] | None


@dataclass
class Wire:
    """Everything the panels sent, in order."""

    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, panel: ControlPanel, msg: dict[str, Any], buffers: Any = None) -> None:
        with self.lock:
            self.sent.append(Sent(time.monotonic(), threading.current_thread(), msg, buffers))

    def all(self) -> list[Sent]:
        with self.lock:
            return list(self.sent)

    def updates(self, key: str | None = None, since: float = -1.0) -> list[Sent]:
        return [s for s in self.all() if s.msg.get("method") == "update" and s.at >= since
                and (key is None or key in s.msg["state"])]

    def statuses(self, since: float = -1.0) -> list[dict[str, Any]]:
        return [s.msg["state"]["status"] for s in self.updates("status", since)]

    def replies(self) -> list[dict[str, Any]]:
        return [s.msg["content"] for s in self.all() if s.msg.get("method") == "custom"]

    def clear(self) -> None:
        with self.lock:
            self.sent.clear()


def make_panel(panels: list[ControlPanel], run: cl.Runner, **kw: Any) -> ControlPanel:
    p = ControlPanel(run, **kw)
    panels.append(p)
    return p


def ask(panel: ControlPanel, wire: Wire, content: Any, buffers: list[Any] | None = None
        ) -> dict[str, Any]:
    """Deliver a custom message as the kernel would; return the one reply."""
    before = len(wire.replies())
    panel._handle_custom_msg(content, buffers or [])
    replies = wire.replies()
    assert len(replies) == before + 1, "exactly one reply per message"
    return replies[-1]


def last_published(wire: Wire) -> dict[str, Any] | None:
    statuses = wire.statuses()
    return statuses[-1] if statuses else None
