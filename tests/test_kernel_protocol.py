"""The panel's wire protocol against a real ipykernel (the test plays the browser).

Custom messages go out as the ipywidgets front end sends them (``comm_msg`` with
``{"method": "custom", "content": ...}``); replies and trait updates are read from IOPub.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kernel_harness import Comm, FrontEnd, KernelHarness

pytestmark = pytest.mark.kernel

_names = itertools.count()


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelHarness]:
    h = KernelHarness()
    try:
        h.start()
        yield h
    finally:
        h.shutdown()


@pytest.fixture
def names(kernel: KernelHarness) -> Iterator[tuple[str, str]]:
    """Fresh kernel-side variable names for a run and its panel; the run is stopped afterwards."""
    n = next(_names)
    run, panel = f"run{n}", f"panel{n}"
    yield run, panel
    kernel.execute(f"{run}.stop(); {run}.wait(10); {panel}.close()", timeout=30)


def make(kernel: KernelHarness, run: str, panel: str, chain: str = "slow_chain(2000, 10)",
         **panel_args: Any) -> Comm:
    args = "".join(f", {k}={v}" for k, v in panel_args.items())
    kernel.execute(f"{run} = cl.Runner({chain})\n{panel} = ControlPanel({run}{args})\n"
                   f"display({panel})")
    return kernel.panel_comm(panel)


def same(snapshot: dict[str, Any] | None, truth: dict[str, Any]) -> bool:
    keys = ("run_id", "seq", "state", "done")
    return snapshot is not None and all(snapshot[k] == truth[k] for k in keys)


def test_clicks_are_acked_while_the_main_thread_is_free(
    kernel: KernelHarness, names: tuple[str, str]
) -> None:
    run, panel = names
    comm = make(kernel, run, panel)
    assert comm.open_state["status"]["state"] == "idle"
    assert comm.open_state["title"] == "slow"
    # the cell has returned: the kernel's shell is free to handle clicks
    expected = {"start": "running", "pause": ("pausing", "paused"), "resume": "running",
                "stop": ("stopping", "stopped")}
    fe = FrontEnd(kernel, comm)
    for i, (command, states) in enumerate(expected.items()):
        kernel.send_custom(comm, {"type": "command", "command": command, "id": i})
        ack = kernel.reply_to(comm, i, timeout=10)
        assert (ack["type"], ack["command"], ack["accepted"]) == ("ack", command, True), ack
        assert ack["status"]["state"] in states
        target = states if isinstance(states, str) else states[1]
        fe.run_until(lambda f, t=target: f.state == t, 10, f"front end shows {target}")
        if target == "paused":
            assert same(fe.snapshot, kernel.truth(run))
    truth = kernel.truth(run)
    assert truth["state"] == "stopped" and same(fe.snapshot, truth)


def test_status_pull_and_error_replies(kernel: KernelHarness, names: tuple[str, str]) -> None:
    run, panel = names
    comm = make(kernel, run, panel)
    kernel.send_custom(comm, {"type": "status_request", "id": 41})
    reply = kernel.reply_to(comm, 41, timeout=10)
    assert reply["type"] == "status"
    assert same(reply["status"], kernel.truth(run))
    kernel.send_custom(comm, {"type": "command", "command": "explode", "id": 42})
    reply = kernel.reply_to(comm, 42, timeout=10)
    assert reply["type"] == "error" and "explode" in reply["error"]
    before = len(kernel.customs(comm))
    kernel.send_custom(comm, ["not", "an", "object"])
    kernel.wait_for(lambda: len(comm.customs) > before, 10, "error reply")
    reply = kernel.customs(comm)[before].msg
    assert reply["type"] == "error" and reply["id"] is None and "JSON object" in reply["error"]
    assert kernel.truth(run)["state"] == "idle"


def test_coalescing_is_visible_on_the_wire(kernel: KernelHarness, names: tuple[str, str]) -> None:
    run, panel = names
    comm = make(kernel, run, panel, chain="spin_chain(6, 100_000)")
    n0 = len(kernel.updates(comm))
    i0 = len(kernel.iopub)
    kernel.send_custom(comm, {"type": "command", "command": "start", "id": 1})
    assert kernel.reply_to(comm, 1, timeout=10)["accepted"]
    fe = FrontEnd(kernel, comm)
    took = fe.run_until(lambda f: f.state == "completed", 60, "completed")
    truth = kernel.truth(run)
    # the final value arrived as a trait update (not only through a pull)
    kernel.wait_for(lambda: comm.updates[-1].msg["state"].get("status", {}).get("seq")
                    == truth["seq"], 2, "final update")
    updates = [u for u in kernel.updates(comm)[n0:] if "status" in u.msg["state"]]
    times = [u.at for u in updates]
    events = truth["seq"] - comm.open_state["status"]["seq"]
    assert events / max(took, 1e-3) > 20_000, "producer too slow to show coalescing"
    worst = max(sum(1 for t in times if s <= t < s + 1.0) for s in times)
    assert worst <= 10 + 2, worst  # + the transitions (running, completed)
    span = max(times[-1] - times[0], 1.0)
    iopub_rate = (len(kernel.iopub) - i0) / span
    assert iopub_rate < 100, iopub_rate  # far under the server's 1000 msg/s


def test_status_keeps_flowing_while_a_cell_blocks(
    kernel: KernelHarness, names: tuple[str, str]
) -> None:
    run, panel = names
    comm = make(kernel, run, panel)
    kernel.execute(f"{run}.start()")
    n0 = len(kernel.updates(comm))
    cell = kernel.execute("time.sleep(2.0)", wait=False)
    kernel.wait_for(lambda: len(comm.updates) - n0 >= 5, 10, "updates during a blocking cell")
    assert cell not in kernel._idle  # they came while the main thread was busy
    kernel.result(cell)


def test_convergence_with_half_the_updates_and_acks_dropped(
    kernel: KernelHarness, names: tuple[str, str]
) -> None:
    run, panel = names
    comm = make(kernel, run, panel,
                fault_injection="FaultInjection(drop_updates=0.5, drop_acks=0.5, seed=3)")
    fe = FrontEnd(kernel, comm)
    plan = [("start", "running"), ("pause", "paused"), ("resume", "running"),
            ("pause", "paused"), ("resume", "running"), ("stop", "stopped")]
    for command, target in plan:
        fe.command(command)
        fe.run_until(lambda f, t=target: f.state == t, 15, f"{command} -> {target}")
        if target in ("paused", "stopped"):  # stable states: compare with the kernel's truth
            assert same(fe.snapshot, kernel.truth(run))
    dropped = kernel.execute(f"print({panel}.dropped_updates, {panel}.dropped_replies)")
    d_updates, d_replies = map(int, dropped.split())
    assert d_updates > 0 and d_replies > 0


def test_a_run_started_before_the_panel_is_displayed(
    kernel: KernelHarness, names: tuple[str, str]
) -> None:
    run, panel = names
    kernel.execute(f"{run} = cl.Runner(slow_chain(2000, 10)); {run}.start()\n"
                   f"while {run}.status().done < 3: time.sleep(0.01)")
    kernel.execute(f"{panel} = ControlPanel({run}); display({panel})")
    comm = kernel.panel_comm(panel)
    status = comm.open_state["status"]
    assert status["state"] == "running" and status["done"] >= 3 and status["run_id"]
    fe = FrontEnd(kernel, comm)
    fe.command("stop")
    fe.run_until(lambda f: f.state == "stopped", 10, "stopped")
    assert same(fe.snapshot, kernel.truth(run))


# ---------------------------------------------------------------------- a busy kernel (issue 9)

BLOCKING = {
    "sleep": "time.sleep(4)",
    "loop": "_t = time.monotonic()\nwhile time.monotonic() - _t < 4: pass",
    "wait": "{run}.wait(60)",
}


def facts(kernel: KernelHarness, comm: Comm) -> dict[str, Any]:
    """The newest value of the panel's ``kernel`` trait."""
    return dict(kernel.kernel_facts(comm)[-1].msg)


def click(kernel: KernelHarness, comm: Comm, command: str, msg_id: int,
          subshell: str | None = None, state: str | None = None) -> tuple[float, float]:
    """Send a command; return (click -> ack, click -> ``state`` published) in seconds."""
    t0 = time.monotonic()
    kernel.send_custom(comm, {"type": "command", "command": command, "id": msg_id}, subshell)
    ack = kernel.reply_to(comm, msg_id, timeout=30)
    assert ack["accepted"], ack
    acked = next(r.at for r in kernel.customs(comm) if r.msg.get("id") == msg_id) - t0
    if state is None:
        return acked, acked
    kernel.wait_for(lambda: kernel.newest_state(comm) == state, 30, f"{state} published")
    return acked, time.monotonic() - t0


@pytest.mark.parametrize("cell", list(BLOCKING))
def test_clicks_on_a_subshell_are_handled_while_a_cell_blocks(
    kernel: KernelHarness, names: tuple[str, str], cell: str
) -> None:
    run, panel = names
    comm = make(kernel, run, panel)
    subshell = kernel.create_subshell()
    click(kernel, comm, "start", 1, subshell)
    blocking = kernel.execute(BLOCKING[cell].format(run=run), wait=False)
    kernel.wait_for(lambda: facts(kernel, comm)["busy"], 2, "busy published")
    acked, paused = click(kernel, comm, "pause", 2, subshell, "paused")
    assert kernel.busy(blocking), "the cell ended before the click was measured"
    assert acked < 1.0 and paused < 1.0, (acked, paused)
    now = facts(kernel, comm)
    assert now["busy"] and now["hears_clicks"] and now["busy_since"] > 0, now
    if cell == "wait":  # stopping ends run.wait() at once
        click(kernel, comm, "stop", 3, subshell)
        kernel.result(blocking, timeout=10)
        assert kernel.truth(run)["state"] == "stopped"
    else:
        kernel.result(blocking, timeout=30)
        assert kernel.truth(run)["state"] == "paused"
    kernel.wait_for(lambda: not facts(kernel, comm)["busy"], 2, "not busy published")


def test_a_foreign_blocking_cell_without_subshells_is_reported_busy(
    kernel: KernelHarness, names: tuple[str, str]
) -> None:
    run, panel = names
    comm = make(kernel, run, panel)
    click(kernel, comm, "start", 1)
    blocking = kernel.execute("time.sleep(3)", wait=False)
    kernel.wait_for(lambda: facts(kernel, comm)["busy"], 1, "busy published")
    assert facts(kernel, comm)["hears_clicks"] is False
    kernel.send_custom(comm, {"type": "command", "command": "pause", "id": 2})
    kernel.result(blocking, timeout=30)
    ended = time.monotonic()
    ack = kernel.reply_to(comm, 2, timeout=10)  # queued: applied when the cell ends
    assert ack["accepted"] and ack["status"]["state"] in ("pausing", "paused")
    assert next(r.at for r in kernel.customs(comm) if r.msg.get("id") == 2) >= ended - 0.05
    kernel.wait_for(lambda: not facts(kernel, comm)["busy"], 2, "not busy published")


def test_a_browser_cannot_set_kernel_owned_traits(
    kernel: KernelHarness, names: tuple[str, str]
) -> None:
    run, panel = names
    comm = make(kernel, run, panel)
    seq = comm.open_state["status"]["seq"]
    n_updates = len(kernel.updates(comm))
    forged = dict(comm.open_state["status"], seq=10**9, state="completed")
    for state in ({"status": forged}, {"title": "pwned"}, {"pull_interval": -1},
                  {"kernel": {"busy": True}, "heartbeat": 0}):
        before = len(kernel.customs(comm))
        kernel.send_comm(comm, {"method": "update", "state": state, "buffer_paths": []})
        kernel.wait_for(lambda b=before: len(comm.customs) > b, 10, "error reply")
        reply = kernel.customs(comm)[before].msg
        assert reply["type"] == "error" and reply["id"] is None, reply
        assert "owned by the kernel" in reply["error"]
        for name in state:
            assert name in reply["error"]
    out = kernel.execute(f"print({panel}.status['seq'], {panel}.title, {panel}.pull_interval)")
    assert out.split() == [str(seq), "slow", "5.0"]
    assert comm.echoes == []  # echoed to no view
    assert all("title" not in u.msg["state"] and "pull_interval" not in u.msg["state"]
               for u in kernel.updates(comm)[n_updates:])
    assert kernel.truth(run)["seq"] == seq


def seen_statuses(kernel: KernelHarness, comm: Comm) -> list[tuple[float, dict[str, Any]]]:
    """Every snapshot the front end received (trait updates, replies, goodbye), by arrival."""
    seen = [(r.at, r.msg["state"]["status"]) for r in kernel.updates(comm)
            if "status" in r.msg["state"]]
    seen += [(r.at, r.msg["status"]) for r in kernel.customs(comm)
             if isinstance(r.msg.get("status"), dict)]
    return sorted(seen, key=lambda x: x[0])


BARE_RUN = """
@cl.node("kp.bare")
def kp_bare(ctx: cl.Context, x: int, path: str) -> int:
    try:
        while True:
            ctx.checkpoint()
            time.sleep(0.002)
    except cl.RunStopped:  # what the run says when the shutdown stops it
        s = bare.status()
        with open(path, "w") as f:
            json.dump({"state": s.state, "reason": s.reason}, f)
        raise

bare_chain = cl.Chain()
bare_chain.add("kp.bare", x=bare_chain.add("core.range", n=5), path=PATH)
bare = cl.Runner(bare_chain)
bare.start()
"""


@pytest.mark.parametrize("how", ["shutdown", "restart"])
def test_kernel_shutdown_mid_run_ends_the_run_as_stopped(how: str, tmp_path: Path) -> None:
    h = KernelHarness()
    bare_says = tmp_path / "bare.json"
    try:
        h.start()
        comm = make(h, "run", "panel")
        h.execute(BARE_RUN.replace("PATH", repr(str(bare_says))))  # a run without a panel
        h.execute("run.start()\nwhile run.status().done < 3: time.sleep(0.01)")
        if how == "shutdown":
            h.km.shutdown_kernel(now=False)  # a shutdown_request, then waits for the process
        else:
            h.km.restart_kernel(now=False)
        h.wait_for(lambda: any(r.msg.get("type") == "goodbye" for r in h.customs(comm)), 10,
                   "the panel's goodbye")
        # A comm_close would follow the goodbye at once on the same IOPub socket; the comm must
        # stay open (closing it makes ipywidgets remove the views before they can say so).
        time.sleep(0.5)
        assert comm.closed_at is None, "the panel closed its comm at kernel shutdown"
        goodbyes = [r.msg for r in h.customs(comm) if r.msg.get("type") == "goodbye"]
        assert len(goodbyes) == 1, goodbyes
        goodbye = goodbyes[0]
        assert goodbye["reason"] == "kernel shutting down"
        assert goodbye["status"]["state"] == "stopped" and goodbye["status"]["done"] >= 3
        assert goodbye["status"]["reason"] == "kernel shutting down"
        assert goodbye["status"]["rate"] is None and goodbye["status"]["eta"] is None
        assert goodbye["status"]["not_run"] == 2000 - goodbye["status"]["done"]
        # the run without a panel was stopped by the same shutdown, with the same reason
        assert json.loads(bare_says.read_text()) == {"state": "stopping",
                                                     "reason": "kernel shutting down"}
        seen = seen_statuses(h, comm)
        assert all(s["state"] != "failed" for _, s in seen)
        newest = max((s for _, s in seen), key=lambda s: s["seq"])
        assert newest == goodbye["status"]
    finally:
        h.shutdown()


def test_an_interrupt_during_wait_stops_the_run(
    kernel: KernelHarness, names: tuple[str, str]
) -> None:
    run, panel = names
    comm = make(kernel, run, panel)
    click(kernel, comm, "start", 1)
    blocking = kernel.execute(f"{run}.wait(60)", wait=False)
    kernel.wait_for(lambda: facts(kernel, comm)["busy"], 2, "busy published")
    kernel.km.interrupt_kernel()
    with pytest.raises(RuntimeError, match="KeyboardInterrupt"):
        kernel.result(blocking, timeout=20)
    truth = kernel.truth(run)
    assert (truth["state"], truth["reason"]) == ("stopped", "interrupted by the user")
    kernel.wait_for(lambda: kernel.newest_state(comm) == "stopped", 5, "stopped published")


def test_wait_handles_the_panels_clicks_without_subshells(
    kernel: KernelHarness, names: tuple[str, str]
) -> None:
    run, panel = names
    comm = make(kernel, run, panel)
    kernel.execute(f"import ipywidgets\nother_{panel} = ipywidgets.IntSlider()\n"
                   f"display(other_{panel})")
    other = kernel.panel_comm(f"other_{panel}")
    click(kernel, comm, "start", 1)
    blocking = kernel.execute(f"{run}.wait(60)", wait=False)
    kernel.wait_for(lambda: facts(kernel, comm)["busy"], 2, "busy published")
    # queued behind the blocking cell: a cell and another widget's message, then our click
    queued = kernel.execute("print('queued cell ran')", wait=False)
    kernel.send_comm(other, {"method": "update", "state": {"value": 5}, "buffer_paths": []})
    acked, paused = click(kernel, comm, "pause", 2, None, "paused")
    assert kernel.busy(blocking) and kernel.busy(queued)
    assert acked < 1.0 and paused < 1.0, (acked, paused)
    now = facts(kernel, comm)
    assert now["busy"] and now["hears_clicks"], now
    assert other.echoes == []  # not ours: left for the kernel, not handled inside the cell
    acked, _ = click(kernel, comm, "stop", 3)
    assert acked < 1.0
    kernel.result(blocking, timeout=10)
    assert kernel.result(queued, timeout=10) == "queued cell ran\n"
    ended = kernel.first_index(blocking, "status", "idle")
    assert 0 < ended < kernel.first_index(queued, "execute_input")  # in order, after the cell
    kernel.wait_for(lambda: bool(other.echoes), 5, "the other widget's update handled")
    assert kernel.execute(f"print(other_{panel}.value)").strip() == "5"
    assert kernel.truth(run)["state"] == "stopped"
    kernel.wait_for(lambda: not facts(kernel, comm)["hears_clicks"], 2, "pumping over")


def test_an_awaiting_cell_hears_clicks_on_the_main_shell(
    kernel: KernelHarness, names: tuple[str, str]
) -> None:
    run, panel = names
    comm = make(kernel, run, panel)
    click(kernel, comm, "start", 1)
    blocking = kernel.execute(f"await {run}", wait=False)  # the event loop stays free
    kernel.wait_for(lambda: facts(kernel, comm)["busy"], 2, "busy published")
    assert facts(kernel, comm)["hears_clicks"] is False  # not known before a click is heard
    acked, paused = click(kernel, comm, "pause", 2, None, "paused")
    assert acked < 1.0 and paused < 1.0 and kernel.busy(blocking)
    kernel.wait_for(lambda: facts(kernel, comm)["hears_clicks"], 2, "hears_clicks published")
    click(kernel, comm, "stop", 3)
    kernel.result(blocking, timeout=10)
    kernel.wait_for(lambda: not facts(kernel, comm)["hears_clicks"], 2, "cell over")
