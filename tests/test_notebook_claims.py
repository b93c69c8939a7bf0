"""What notebooks 03 and 04 explain in prose and pictures, checked here (the notebooks show; the
tests assert)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import chainlib as cl
import chainlib.panel as panel_mod
from tests.conftest import wait_until


@cl.node("nbclaims.slow")
def slow(ctx: cl.Context, x: int, steps: int = 20) -> int:
    for i in range(steps):
        ctx.checkpoint()
        time.sleep(0.005)
        ctx.progress((i + 1) / steps)
    return x * x


def squares_chain(n: int = 12) -> tuple[cl.Chain, cl.NodeHandle]:
    chain = cl.Chain("squares")
    sq = chain.add("nbclaims.slow", id="slow", x=chain.add("core.range", n=n), steps=20)
    return chain, chain.add("core.collect", values=sq)


def test_03_observer_sees_the_pause_and_nothing_finishes_while_paused() -> None:
    chain, squares = squares_chain()
    run = cl.Runner(chain, workers=2)
    states: list[str] = []
    seqs: list[int] = []
    run.state.observe(lambda c: states.append(c["new"]), names="state")
    run.state.observe(lambda c: seqs.append(c["new"]), names="seq")
    run.start()
    wait_until(lambda: run.state.done >= 4, 20, "four items done")
    assert run.pause().status.state == "pausing"
    wait_until(lambda: run.status().state == "paused", 10, "paused")
    held = run.status()
    assert held.nodes["slow"].running > 0  # parked inside the node, at its checkpoint
    deadline = time.monotonic() + 0.3  # an observation window: the count stands still
    while time.monotonic() < deadline:
        assert run.status().done == held.done
        time.sleep(0.01)
    assert run.resume().accepted
    final = run.wait(60)
    assert final.state == "completed" and final.done == 12
    assert run.result(squares) == [i * i for i in range(12)]
    wait_until(lambda: run.state.seq == final.seq, 5, "the mirror caught up")
    assert states[0] == "running" and states[-1] == "completed"
    assert states.index("pausing") < states.index("paused") < len(states) - 1
    assert seqs == sorted(set(seqs))  # strictly increasing
    assert (run.state.state, run.state.done) == (final.state, final.done)
    assert not run.pause().accepted and "completed" in run.pause().reason


def test_04_panel_coalesces_drops_and_never_runs_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []
    lock = threading.Lock()

    def record(panel: Any, msg: dict[str, Any], buffers: Any = None) -> None:
        with lock:
            sent.append(msg)

    monkeypatch.setattr(panel_mod.ControlPanel, "_send", record)

    @cl.node("nbclaims.work")
    def work(ctx: cl.Context, x: int, steps: int = 5) -> int:
        for i in range(steps):
            ctx.checkpoint()
            time.sleep(0.002)
            ctx.progress((i + 1) / steps)
        return x

    chain = cl.Chain("lossy")
    chain.add("nbclaims.work", x=chain.add("core.range", n=150))
    run = cl.Runner(chain, workers=2)
    panel = panel_mod.ControlPanel(
        run, pull_interval=2.0,
        fault_injection=panel_mod.FaultInjection(drop_updates=0.5, drop_acks=0.5, seed=1))
    try:
        seq0 = run.status().seq
        run.start()
        final = run.wait(120)
        assert final.state == "completed" and final.done == 150
        changes = final.seq - seq0
        assert changes > 5 * final.total  # every progress report is a status change
        assert 0 < panel.publish_count < changes / 4  # coalesced
        assert panel.dropped_updates > 0
        with lock:
            published = [m["state"]["status"]["seq"] for m in sent
                         if m.get("method") == "update" and "status" in m.get("state", {})]
        assert published and max(published) <= run.status().seq  # never ahead of the truth
    finally:
        panel.close()
