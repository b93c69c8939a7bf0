"""A real ipykernel driven through jupyter_client, with the test playing the browser.

``KernelHarness`` starts a kernel with this interpreter, reads *every* IOPub message on a
background thread (timestamped), runs cells, and talks to a widget exactly as the ipywidgets front
end does: custom messages go out as ``comm_msg`` with ``{"method": "custom", "content": ...}`` and
come back the same way; trait syncs arrive as ``comm_msg`` with ``{"method": "update", "state"}``.

``FrontEnd`` is a small Python model of ``widget/state.js``'s convergence rules (adopt newer
snapshots, periodic pull, fast pull while a command is unconfirmed, pull on a seq gap), used by
the kernel-protocol tests and the benchmarks.

Used by ``tests/test_kernel_protocol.py`` and ``benchmarks/b3_*.py`` / ``b4_*.py``.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parents[1]

SETUP_CELL = r'''
import json, threading, time
import numpy as np
import chainlib as cl
from chainlib.panel import ControlPanel, FaultInjection

@cl.node("kp.slow")
def kp_slow(ctx: cl.Context, x: int, ms: float = 10.0) -> int:
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        ctx.checkpoint()
        time.sleep(0.002)
    return x

@cl.node("kp.spin")
def kp_spin(ctx: cl.Context, x: int, n: int = 100_000) -> int:
    for i in range(n):
        ctx.progress(i / n)
    return x

def slow_chain(items=2000, ms=10.0):
    chain = cl.Chain("slow")
    chain.add("kp.slow", x=chain.add("core.range", n=items), ms=ms)
    return chain

def spin_chain(items=10, n=100_000):
    chain = cl.Chain("spin")
    chain.add("kp.spin", x=chain.add("core.range", n=items), n=n)
    return chain

def truth(run):
    print("TRUTH" + json.dumps(run.status().to_dict()))
'''


@dataclass
class Received:
    at: float
    msg: dict[str, Any]


@dataclass
class Comm:
    """What one widget comm received."""

    comm_id: str
    open_state: dict[str, Any]
    updates: list[Received] = field(default_factory=list)
    customs: list[Received] = field(default_factory=list)
    echoes: list[Received] = field(default_factory=list)  # ipywidgets echo_update messages
    closed_at: float | None = None


class KernelHarness:
    """Start with :meth:`start`, always :meth:`shutdown` (fixture finalizer)."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="chainlib-kernel-")
        spec_dir = Path(self._tmp.name) / "chainlib-test"
        spec_dir.mkdir()
        (spec_dir / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "chainlib test", "language": "python",
        }))
        self.km = KernelManager(
            kernel_name="chainlib-test",
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[self._tmp.name]),
        )
        self.kc: BlockingKernelClient | None = None
        self._cond = threading.Condition()
        self.iopub: list[Received] = []  # everything, in arrival order
        self.comms: dict[str, Comm] = {}
        self._outputs: dict[str, list[str]] = {}
        self._errors: dict[str, list[str]] = {}
        self._idle: set[str] = set()
        self.connected = True  # False: messages are read and thrown away (a lost connection)
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._sendq: queue.Queue[dict[str, Any]] = queue.Queue()

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60.0) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        self.km.start_kernel(cwd=str(ROOT), env=env)
        kc = self.km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=timeout)
        self.kc = kc
        self._reader = threading.Thread(target=self._read, name="iopub-reader", daemon=True)
        self._reader.start()
        self.execute(SETUP_CELL, timeout=timeout)

    def shutdown(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km.has_kernel:
            self.km.shutdown_kernel(now=True)
        self._tmp.cleanup()

    # ------------------------------------------------------------------ iopub

    def _read(self) -> None:
        assert self.kc is not None
        while not self._stop.is_set():
            try:
                msg = self.kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                continue
            except Exception:  # channels closing
                if self._stop.is_set():
                    return
                continue
            self._dispatch(msg)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        now = time.monotonic()
        kind = msg["header"]["msg_type"]
        content = msg["content"]
        parent = msg.get("parent_header", {}).get("msg_id", "")
        with self._cond:
            self.iopub.append(Received(now, msg))
            if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
                state = content["data"]["state"]
                self.comms[content["comm_id"]] = Comm(content["comm_id"], state)
            elif kind == "comm_msg" and content["comm_id"] in self.comms:
                if self.connected:
                    comm = self.comms[content["comm_id"]]
                    data = content["data"]
                    if data.get("method") == "update":
                        comm.updates.append(Received(now, data))
                    elif data.get("method") == "custom":
                        comm.customs.append(Received(now, data["content"]))
                    elif data.get("method") == "echo_update":
                        comm.echoes.append(Received(now, data))
            elif kind == "comm_close" and content["comm_id"] in self.comms:
                self.comms[content["comm_id"]].closed_at = now
            elif kind == "stream" and content.get("name") == "stdout":
                self._outputs.setdefault(parent, []).append(content["text"])
            elif kind == "error":
                self._errors.setdefault(parent, []).append("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                self._idle.add(parent)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait (on the reader's notifications, never a fixed sleep) until ``predicate()``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
                self._cond.wait(min(left, 0.05))

    # ------------------------------------------------------------------ shell

    def execute(self, code: str, timeout: float = 30.0, wait: bool = True) -> str:
        """Run a cell; return its stdout (raises on an error). ``wait=False``: return the msg id."""
        assert self.kc is not None
        msg_id: str = self.kc.execute(code, store_history=False)
        if not wait:
            return msg_id
        return self.result(msg_id, timeout)

    def result(self, msg_id: str, timeout: float = 30.0) -> str:
        self.wait_for(lambda: msg_id in self._idle, timeout, f"cell {msg_id} to finish")
        with self._cond:
            if msg_id in self._errors:
                raise RuntimeError("cell failed:\n" + "\n".join(self._errors[msg_id]))
            return "".join(self._outputs.get(msg_id, []))

    def truth(self, run_var: str, timeout: float = 30.0) -> dict[str, Any]:
        """``run.status().to_dict()`` read through an execute_request."""
        out = self.execute(f"truth({run_var})", timeout=timeout)
        line = next(x for x in out.splitlines() if x.startswith("TRUTH"))
        result: dict[str, Any] = json.loads(line[len("TRUTH"):])
        return result

    def panel_comm(self, panel_var: str, timeout: float = 30.0) -> Comm:
        """The comm of the panel held in ``panel_var`` (its comm_open already read)."""
        model_id = self.execute(f"print({panel_var}.model_id)", timeout=timeout).strip()
        self.wait_for(lambda: model_id in self.comms, timeout, f"comm_open of {model_id}")
        return self.comms[model_id]

    def send_custom(self, comm: Comm, content: Any, subshell: str | None = None) -> None:
        """A custom message, exactly as the ipywidgets front end sends ``model.send(content)``
        (on ``subshell`` when given, as JupyterLab's "comms over subshells" does)."""
        self.send_comm(comm, {"method": "custom", "content": content}, subshell)

    def send_comm(self, comm: Comm, data: dict[str, Any], subshell: str | None = None) -> None:
        """A raw ``comm_msg`` to the widget (e.g. an ipywidgets ``update``)."""
        assert self.kc is not None
        msg = self.kc.session.msg("comm_msg", {"comm_id": comm.comm_id, "data": data})
        if subshell is not None:
            msg["header"]["subshell_id"] = subshell
        self.kc.shell_channel.send(msg)

    def create_subshell(self, timeout: float = 10.0) -> str:
        """A new subshell (``create_subshell_request`` on the control channel)."""
        assert self.kc is not None
        request = self.kc.session.msg("create_subshell_request", {})
        self.kc.control_channel.send(request)
        while True:
            reply = self.kc.control_channel.get_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == request["header"]["msg_id"]:
                subshell: str = reply["content"]["subshell_id"]
                return subshell

    def kernel_facts(self, comm: Comm) -> list[Received]:
        """Every value of the panel's ``kernel`` trait, in arrival order (the comm_open's first)."""
        with self._cond:
            first = [Received(0.0, comm.open_state["kernel"])] if "kernel" in comm.open_state \
                else []
            return first + [Received(u.at, u.msg["state"]["kernel"]) for u in comm.updates
                            if "kernel" in u.msg["state"]]

    def newest_state(self, comm: Comm) -> str | None:
        """The state of the highest-seq snapshot the panel sent (trait update or reply)."""
        newest: tuple[int, str] | None = None
        with self._cond:
            snaps = [r.msg["state"].get("status") for r in comm.updates]
            snaps += [r.msg.get("status") for r in comm.customs]
        for snap in snaps:
            if isinstance(snap, dict) and (newest is None or snap["seq"] >= newest[0]):
                newest = (snap["seq"], snap["state"])
        return None if newest is None else newest[1]

    def first_index(self, msg_id: str, msg_type: str, state: str | None = None) -> int:
        """Where in IOPub the first ``msg_type`` message of request ``msg_id`` arrived (or -1)."""
        with self._cond:
            for i, r in enumerate(self.iopub):
                if (r.msg["parent_header"].get("msg_id") == msg_id
                        and r.msg["header"]["msg_type"] == msg_type
                        and (state is None or r.msg["content"].get("execution_state") == state)):
                    return i
        return -1

    def busy(self, msg_id: str) -> bool:
        """Whether the cell ``msg_id`` has not finished yet."""
        with self._cond:
            return msg_id not in self._idle

    def customs(self, comm: Comm) -> list[Received]:
        with self._cond:
            return list(comm.customs)

    def updates(self, comm: Comm) -> list[Received]:
        with self._cond:
            return list(comm.updates)

    def reply_to(self, comm: Comm, msg_id: int, timeout: float) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [r.msg for r in comm.customs if r.msg.get("id") == msg_id]
            return bool(found)

        self.wait_for(seen, timeout, f"reply to message {msg_id}")
        return found[0]


# ---------------------------------------------------------------------- front-end model

ACTIVE = ("running", "pausing", "paused", "stopping")
VALID_FROM = {
    "start": ("idle", "stopped", "completed", "failed"),
    "pause": ("running",),
    "resume": ("pausing", "paused"),
    "stop": ("running", "pausing", "paused"),
}


class FrontEnd:
    """The convergence rules of ``widget/state.js``, driven by a harness' comm.

    ``snapshot`` is the newest accepted snapshot (highest seq) from trait updates, acks and status
    replies. :meth:`step` consumes new messages and sends pulls when due: every
    ``pull_interval`` s, every ``fast_pull_interval`` s while a command is unconfirmed, and on a seq
    gap (at most once a second, never while a pull is outstanding).
    """

    def __init__(self, harness: KernelHarness, comm: Comm, *, pull_interval: float = 5.0,
                 fast_pull_interval: float = 0.5) -> None:
        self.h = harness
        self.comm = comm
        self.pull_interval = pull_interval
        self.fast_pull_interval = fast_pull_interval
        self.snapshot: dict[str, Any] | None = None
        self.seq = -1
        self.pending: dict[str, Any] | None = None
        self.next_id = 1_000_000
        self.pulls: set[int] = set()
        self.last_pull = -1e9
        self.last_gap_pull = -1e9
        self.n_updates = 0
        self.n_customs = 0
        self.pulls_sent = 0
        self.adopt(comm.open_state.get("status"))

    def adopt(self, snap: Any) -> tuple[bool, bool]:
        if not (isinstance(snap, dict) and isinstance(snap.get("seq"), int)) \
                or snap["seq"] <= self.seq:
            return False, False
        gap = self.seq >= 0 and snap["seq"] > self.seq + 1
        self.seq, self.snapshot = snap["seq"], snap
        if self.pending and (snap["run_id"] != self.pending["run_id"]
                             or snap["state"] not in VALID_FROM[self.pending["command"]]):
            self.pending = None
        return True, gap

    def pull(self) -> None:
        msg_id = self.next_id
        self.next_id += 1
        self.pulls.add(msg_id)
        self.last_pull = time.monotonic()
        self.pulls_sent += 1
        self.h.send_custom(self.comm, {"type": "status_request", "id": msg_id})

    def command(self, name: str) -> int:
        msg_id = self.next_id
        self.next_id += 1
        self.pending = {"command": name, "id": msg_id, "sent": time.monotonic(),
                        "run_id": (self.snapshot or {}).get("run_id", "")}
        self.h.send_custom(self.comm, {"type": "command", "command": name, "id": msg_id})
        return msg_id

    def step(self) -> None:
        now = time.monotonic()
        updates = self.h.updates(self.comm)[self.n_updates:]
        customs = self.h.customs(self.comm)[self.n_customs:]
        self.n_updates += len(updates)
        self.n_customs += len(customs)
        for u in updates:
            if "status" in u.msg["state"]:
                accepted, gap = self.adopt(u.msg["state"]["status"])
                if accepted and gap and not self.pulls and \
                        now - max(self.last_pull, self.last_gap_pull) >= \
                        max(1.0, self.fast_pull_interval):
                    self.pull()
                    self.last_gap_pull = now
        for c in customs:
            msg = c.msg
            if msg.get("type") == "status":
                self.pulls.discard(msg["id"])
                self.adopt(msg["status"])
            elif msg.get("type") == "ack":
                self.adopt(msg["status"])
                if self.pending and self.pending["id"] == msg["id"] and not msg["accepted"]:
                    self.pending = None
        interval = self.fast_pull_interval if self.pending else self.pull_interval
        since = max(self.last_pull, self.pending["sent"]) if self.pending else self.last_pull
        if now - since >= interval:
            self.pulls.clear()  # older ones are presumed lost
            self.pull()

    def run_until(self, predicate: Callable[[FrontEnd], bool], timeout: float, what: str) -> float:
        """Step until ``predicate(self)``; return the time it took."""
        t0 = time.monotonic()

        def check() -> bool:  # runs under the harness' (re-entrant) lock
            self.step()
            return predicate(self)

        self.h.wait_for(check, timeout, what)
        return time.monotonic() - t0

    @property
    def state(self) -> str | None:
        return None if self.snapshot is None else str(self.snapshot["state"])
