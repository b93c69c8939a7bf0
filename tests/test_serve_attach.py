"""A notebook panel attached to a CLI run (``ControlPanel.attach(URL)``) survives a kernel restart.

Kernel-protocol level: a real ipykernel (``tests/kernel_harness.py``, the test plays the browser)
and a real ``chainlib run --serve`` process. The run lives in the CLI process; the kernel only
watches and controls it, so restarting the kernel leaves the run going, and the new kernel
attaches again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kernel_harness import SETUP_CELL, Comm, KernelHarness
from tests.serve_nodes import tick_chain
from tests.test_serve_cli import ServedRun

pytestmark = pytest.mark.kernel


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedRun]:
    chain = tmp_path / "ticks.json"
    tick_chain(items=100_000, ms=20).save(chain)
    run = ServedRun(chain)
    yield run
    if run.proc.poll() is None:
        run.proc.kill()
        run.proc.wait(10)


def attach(h: KernelHarness, url: str) -> Comm:
    h.execute(f"panel = ControlPanel.attach({url!r})\ndisplay(panel)")
    return h.panel_comm("panel")


def command(h: KernelHarness, comm: Comm, name: str, msg_id: int) -> dict[str, Any]:
    h.send_custom(comm, {"type": "command", "command": name, "id": msg_id})
    return h.reply_to(comm, msg_id, 10)


def panel_truth(h: KernelHarness, comm: Comm, msg_id: int) -> dict[str, Any]:
    h.send_custom(comm, {"type": "status_request", "id": msg_id})
    status: dict[str, Any] = h.reply_to(comm, msg_id, 10)["status"]
    return status


def test_an_attached_panel_survives_a_kernel_restart(served: ServedRun) -> None:
    served.wait_state("running")
    h = KernelHarness()
    try:
        h.start()
        comm = attach(h, served.url)
        assert comm.open_state["title"] == "ticks"
        assert comm.open_state["status"]["state"] == "running"
        ack = command(h, comm, "pause", 1)
        assert ack["accepted"] and ack["status"]["state"] in ("pausing", "paused")
        paused = served.wait_state("paused")  # the CLI process really paused
        h.wait_for(lambda: h.newest_state(comm) == "paused", 10, "the panel to publish paused")

        h.km.restart_kernel(now=False)  # the shutdown hook runs: an attached run is not stopped
        h.wait_for(lambda: any(r.msg.get("type") == "goodbye" for r in h.customs(comm)), 20,
                   "the panel's goodbye")
        goodbyes = [r.msg for r in h.customs(comm) if r.msg.get("type") == "goodbye"]
        assert len(goodbyes) == 1 and goodbyes[0]["status"]["state"] == "paused"
        assert served.proc.poll() is None
        after = served.status()
        assert after["state"] == "paused" and after["run_id"] == paused["run_id"]

        # A new kernel: nothing of the old one is left. The harness's reader thread owns the
        # IOPub socket, so readiness is the setup cell's answer (kc.wait_for_ready would read
        # IOPub from this thread too and tear multipart messages apart).
        h.execute(SETUP_CELL, timeout=60)
        comm2 = attach(h, served.url)
        assert comm2.open_state["status"]["run_id"] == paused["run_id"]
        # paused: the seq is stable, so the panel, the terminal and the server agree exactly
        assert panel_truth(h, comm2, 2) == served.status()
        assert command(h, comm2, "resume", 3)["accepted"]
        served.wait_state("running")
        assert panel_truth(h, comm2, 4)["state"] == "running"
        assert command(h, comm2, "stop", 5)["accepted"]
        served.proc.communicate(timeout=30)
        assert served.proc.returncode == 130  # stopped (by the attached panel)
    finally:
        h.shutdown()
