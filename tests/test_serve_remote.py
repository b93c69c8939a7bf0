"""The control server over real HTTP, continued: closing (goodbye, stalled clients), fault
injection, and :class:`~chainlib.serve.RemoteRun` (the fixtures ``gated_run`` and ``server`` are
in ``conftest.py``)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import httpx
import pytest

import chainlib as cl
from chainlib.run.waiting import add_wait_hook
from chainlib.serve import ControlServer, RemoteError, RemoteRun, ServeFaults, serve
from tests.conftest import Gates, wait_until
from tests.serve_helpers import EventReader, progress_chain


def test_close_ends_open_streams_and_frees_the_port(gated_run: cl.Runner) -> None:
    srv = serve(gated_run, announce=None)
    reader = EventReader(srv.base_url, srv.token)
    reader.next("status")
    started = time.monotonic()
    srv.close()
    assert reader.ended.wait(5)
    assert time.monotonic() - started < 5
    assert not srv.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{srv.base_url}/status")
    reader.close()


def test_a_closing_server_says_goodbye_after_the_final_snapshot(
        gated_run: cl.Runner, gates: Gates) -> None:
    """A client must tell a server that closed on purpose (its `chainlib run` ended) from a lost
    connection: the last event of every stream is a goodbye with the reason and the snapshot."""
    srv = serve(gated_run, announce=None)
    readers = [EventReader(srv.base_url, srv.token) for _ in range(2)]
    gated_run.start()
    gates.wait_entered()
    gated_run.stop()
    gates.release.set()
    final = gated_run.wait(10)
    for r in readers:
        r.until(lambda s: s["state"] == "stopped")
    srv.close(reason="its chainlib run command has ended")
    for r in readers:
        assert r.ended.wait(5)
        bye = r.next()
        assert bye.event == "goodbye" and bye.id is None  # no id: Last-Event-ID stays a seq
        assert bye.data == {"reason": "its chainlib run command has ended",
                            "status": json.loads(json.dumps(final.to_dict(max_failures=20)))}
        assert r.events.empty()  # nothing after it
        r.close()


def test_a_client_that_stopped_reading_neither_holds_nor_spoils_the_close(
        caplog: pytest.LogCaptureFixture) -> None:
    """A suspended client (a laptop asleep at the end of an SSH tunnel, a stopped process) fills
    its socket: its stream cannot end. Closing used to wait uvicorn's graceful timeout, then
    cancel it and print 'Exception in ASGI application' tracebacks on the CLI's stderr."""
    progress_chain()  # registers serve_test.spin
    chain = cl.Chain("wide")
    x = chain.add("core.range", n=1_000_000)
    for _ in range(150):  # 150 nodes: ~20 KB snapshots, so the sockets fill in a second or so
        x = chain.add("serve_test.spin", x=x, steps=1)
    run = cl.Runner(chain)
    srv = serve(run, announce=None, max_rate=1000.0)
    stalled = []
    try:
        run.start()
        for _ in range(3):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", srv.port))
            s.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nAuthorization: "
                      f"Bearer {srv.token}\r\n\r\n".encode())
            stalled.append(s)  # and never read
        wait_until(lambda: srv.hub.streams == 3, what="three streams")
        counts = [srv.hub.events_sent]

        def stuck() -> bool:  # the kernel's buffers are full: (almost) nothing goes out
            time.sleep(0.5)
            counts.append(srv.hub.events_sent)
            return counts[-1] - counts[-2] < 10

        wait_until(stuck, 60, "the streams to stall")
        with caplog.at_level(logging.INFO):
            started = time.monotonic()
            srv.close()
            took = time.monotonic() - started
        assert not srv.running
        assert took < 1.5, took
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    finally:
        run.stop()
        run.wait(10)
        srv.close()
        for s in stalled:
            s.close()


# ---------------------------------------------------------------- fault injection


def test_dropped_events_are_counted_and_heartbeats_still_flow(
        gated_run: cl.Runner, gates: Gates) -> None:
    srv = serve(gated_run, announce=None, heartbeat_interval=0.2,
                fault_injection=ServeFaults(drop_events=1.0))
    reader = EventReader(srv.base_url, srv.token)
    try:
        assert reader.next().event == "status"  # the snapshot at connect is never dropped
        gated_run.start()
        gates.wait_entered()
        gated_run.pause()
        wait_until(lambda: srv.hub.events_dropped >= 2, what="dropped events")
        beat = reader.next()
        assert beat.event == "heartbeat"
        assert beat.data["seq"] >= 2  # the heartbeat tells the client it is behind
    finally:
        reader.close()
        srv.close()


def test_a_cut_ends_streams_and_answers_503_until_it_is_over(gated_run: cl.Runner) -> None:
    srv = serve(gated_run, announce=None, fault_injection=ServeFaults())
    reader = EventReader(srv.base_url, srv.token)
    headers = {"authorization": f"Bearer {srv.token}"}
    try:
        reader.next("status")
        srv.cut(1.0)
        assert reader.ended.wait(5)
        r = httpx.get(f"{srv.base_url}/status", headers=headers)
        assert r.status_code == 503 and "cut" in r.json()["error"]
        wait_until(lambda: httpx.get(f"{srv.base_url}/status", headers=headers).status_code
                   == 200, timeout=5, what="the cut to end")
    finally:
        reader.close()
        srv.close()
    with pytest.raises(RuntimeError, match="fault_injection"):
        serve(gated_run, announce=None).cut(1)


# ---------------------------------------------------------------- RemoteRun


def test_remote_run_follows_and_controls_a_served_run(
        server: ControlServer, gated_run: cl.Runner, gates: Gates) -> None:
    with RemoteRun(server.url) as remote:
        assert remote.status() == gated_run.status()
        assert remote.title == "chain"
        flag = threading.Event()
        unwatch = remote.watch(flag)
        ack = remote.start()
        assert ack.accepted and ack.reason == "started" and ack.status.state == "running"
        gates.wait_entered()
        assert remote.pause().accepted
        wait_until(lambda: remote.status().state == "paused", what="remote sees paused")
        assert flag.is_set()
        assert remote.status() == gated_run.status()  # the same snapshot, rebuilt exactly
        rejected = remote.command("pause")
        assert rejected.accepted and rejected.reason == "already paused"
        bad = remote.command("explode")
        assert not bad.accepted and "unknown command" in bad.reason
        assert remote.stop().accepted
        gates.release.set()
        assert remote.wait(10).state == "stopped"
        assert remote.connected
        unwatch()


def test_remote_run_refuses_a_wrong_token_or_an_unreachable_server(
        server: ControlServer) -> None:
    with pytest.raises(RemoteError, match="invalid token"):
        RemoteRun(f"{server.base_url}/?token=wrong")
    with pytest.raises(ValueError, match="no token"):
        RemoteRun(server.base_url)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    with pytest.raises(RemoteError, match="cannot reach"):
        RemoteRun(f"http://127.0.0.1:{port}/?token=x")


def test_a_remote_command_to_a_vanished_server_is_a_rejection_not_an_exception(
        gated_run: cl.Runner) -> None:
    # vanished without a goodbye: its streams were cut (as a broken link does) before it went
    srv = serve(gated_run, announce=None, fault_injection=ServeFaults())
    remote = RemoteRun(srv.url, timeout=2.0)
    try:
        srv.cut(60)
        wait_until(lambda: srv.hub.streams == 0, what="the cut to end the stream")
        srv.close()
        ack = remote.start()
        assert not ack.accepted and "cannot reach" in ack.reason
        assert gated_run.status().state == "idle"
        wait_until(lambda: not remote.connected, timeout=10, what="remote notices the loss")
        assert remote.server_closed is None  # lost, not closed: it keeps trying
    finally:
        remote.close()


def test_remote_wait_runs_the_wait_hooks_as_runner_wait_does(server: ControlServer) -> None:
    """An attached panel hears clicks while a cell blocks in wait() through a wait hook; a
    notebook cell blocked in RemoteRun.wait() never ran it (no clicks without subshells)."""
    calls: list[float] = []
    remove = add_wait_hook(lambda: calls.append(time.monotonic()))
    remote = RemoteRun(server.url)
    try:
        assert remote.start().accepted
        with pytest.raises(TimeoutError):
            remote.wait(0.5)
        assert len(calls) >= 4  # every HOOK_SLICE_S (0.05 s)
    finally:
        remove()
        remote.close()


def test_a_remote_run_told_its_server_closed_keeps_the_final_status_and_says_why(
        gated_run: cl.Runner, gates: Gates) -> None:
    srv = serve(gated_run, announce=None)
    remote = RemoteRun(srv.url, timeout=2.0)
    try:
        assert remote.start().accepted
        gates.wait_entered()
        assert remote.server_closed is None and remote.connected
        srv.close(reason="its chainlib run command has ended")  # the run goes on
        wait_until(lambda: remote.server_closed is not None, what="the goodbye")
        assert remote.server_closed == "its chainlib run command has ended"
        assert not remote.connected
        assert remote.status() == gated_run.status()  # the final snapshot (the run waits)
        ack = remote.pause()
        assert not ack.accepted
        assert ack.reason == (f"the control server at {srv.base_url} closed (its chainlib run "
                              f"command has ended)")
        assert gated_run.status().state == "running"  # nothing was sent
        with pytest.raises(RemoteError, match=r"closed .* while the run was running"):
            remote.wait(10)  # returns at once: it would wait for ever
    finally:
        remote.close()
        srv.close()
