"""Every figure of a Status is true in the state it shows (issue 9): node states, current nodes,
rate and ETA, elapsed and active time, per-node means, items not run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

import chainlib as cl
from chainlib.run.status import NODE_STATES
from tests.conftest import wait_until

STEP_S = 0.01
STEPS = 5


class Slow:
    """A per-item node of about STEPS * STEP_S seconds that checkpoints at each step; the test
    learns (``inside``) when the item ``hold_at`` is being executed."""

    def __init__(self) -> None:
        self.hold_at = -1
        self.inside = threading.Event()


@pytest.fixture
def slow() -> Iterator[Slow]:
    s = Slow()

    @cl.node("fig.slow")
    def slow_node(ctx: cl.Context, x: int) -> int:
        for i in range(STEPS):
            ctx.checkpoint()
            if x == s.hold_at and i == 1:
                s.inside.set()
            time.sleep(STEP_S)
        return x

    @cl.node("fig.tail")
    def tail(x: int) -> int:
        return x

    @cl.node("fig.sum")
    def sum_all(values: list[int]) -> int:
        return sum(values)

    yield s


def chain_of(n: int) -> cl.Chain:
    """pre (constant) -> range -> slow -> tail -> collect -> post (sum)."""
    chain = cl.Chain()
    start = chain.add("core.constant", value=0)
    src = chain.add("core.range", n=n, start=start)
    tail = chain.add("fig.tail", x=chain.add("fig.slow", x=src))
    chain.add("fig.sum", values=chain.add("core.collect", values=tail))
    return chain


def states(s: cl.Status) -> dict[str, str]:
    found = {nid: ns.state for nid, ns in s.nodes.items()}
    assert set(found.values()) <= set(NODE_STATES)
    return found


def test_paused_shows_nothing_running_and_means_exclude_parked_time(slow: Slow) -> None:
    slow.hold_at = 2
    run = cl.Runner(chain_of(4))
    run.start()
    assert slow.inside.wait(10)
    running = run.status()
    assert running.state == "running" and running.done == 2
    # a per-item node between two items is running (it has items to come), never "done"
    assert states(running) == {"constant": "done", "range": "running", "slow": "running",
                               "tail": "running", "collect": "pending", "sum": "pending"}
    assert running.current == ("slow",)
    assert running.rate == pytest.approx(2 / running.active_s)
    assert running.eta == pytest.approx(2 / running.rate)
    assert run.pause().accepted
    wait_until(lambda: run.status().state == "paused", what="paused")
    paused = run.status()
    # the node is parked inside item 2, at its checkpoint: paused, not running
    assert paused.current == ()
    assert states(paused) == {"constant": "done", "range": "paused", "slow": "paused",
                              "tail": "paused", "collect": "pending", "sum": "pending"}
    assert paused.nodes["slow"].running == 1 and paused.nodes["slow"].count == 2
    assert paused.rate is None and paused.eta is None and paused.not_run is None
    assert paused.active_s <= paused.elapsed
    mean_before = paused.nodes["slow"].mean_s
    time.sleep(0.6)  # paused time: must count in elapsed only
    assert run.resume().accepted
    resumed = run.status()
    assert resumed.state == "running"
    assert resumed.elapsed - paused.elapsed >= 0.6
    assert resumed.active_s - paused.active_s < resumed.elapsed - paused.elapsed - 0.5
    assert resumed.rate == pytest.approx((resumed.done + resumed.failed) / resumed.active_s)
    final = run.wait(10)
    assert final.state == "completed" and final.done == 4
    slow_node = final.nodes["slow"]
    # one worker: the node's own time fits in the run's active (unpaused) time; with the parked
    # 0.6 s counted into the item in flight it could not
    assert slow_node.total_s <= final.active_s
    assert slow_node.mean_s - mean_before < 0.1  # 0.6 s over 4 items would add 0.15 s
    assert all(ns.state == "done" for ns in final.nodes.values())
    assert final.rate is None and final.eta is None and final.not_run == 0
    assert final.to_dict()["not_run"] == 0 and final.to_dict()["active_s"] == final.active_s


def test_a_stopped_run_shows_what_was_done_and_what_was_not(slow: Slow) -> None:
    slow.hold_at = 3
    run = cl.Runner(chain_of(40))
    run.start()
    assert slow.inside.wait(10)
    run.stop()
    final = run.wait(10)
    assert final.state == "stopped" and final.reason == "stopped by user"
    assert final.done == 3 and final.failed == 0 and final.total == 40
    assert final.not_run == 37 and final.to_dict()["not_run"] == 37
    assert final.rate is None and final.eta is None and final.current == ()
    # nothing says "done" for items it never ran
    assert states(final) == {"constant": "done", "range": "stopped", "slow": "stopped",
                             "tail": "stopped", "collect": "not_run", "sum": "not_run"}
    assert final.nodes["slow"].count == 3 and final.nodes["slow"].running == 0
    assert final.active_s == pytest.approx(final.elapsed)  # never paused


def test_a_failed_run_names_the_failed_node_and_the_rest(slow: Slow) -> None:
    @cl.node("fig.picky")
    def picky(x: int) -> int:
        if x == 2:
            raise ValueError("no 2")
        return x

    chain = cl.Chain()
    chain.add("core.collect", values=chain.add("fig.picky", x=chain.add("core.range", n=10)))
    run = cl.Runner(chain)
    run.start()
    s = run.wait(10)
    assert s.state == "failed" and (s.done, s.failed, s.total) == (2, 1, 10)
    assert s.not_run == 7 and s.rate is None and s.eta is None
    assert states(s) == {"range": "stopped", "picky": "failed", "collect": "not_run"}



def test_an_iterator_running_past_its_length_is_not_done() -> None:
    """The iterator is per-item: it runs until it is exhausted, even when its ``length`` said
    fewer items (then ``total`` is corrected at the end), never ``done`` while items still come."""
    inside = threading.Event()
    release = threading.Event()

    @cl.iterator("fig.short_length", length=lambda n: 3)
    def short_length(n: int) -> Iterator[int]:
        yield from range(n)

    @cl.node("fig.hold")
    def hold(x: int) -> int:
        if x == 4:
            inside.set()
            assert release.wait(10)
        return x

    chain = cl.Chain()
    chain.add("fig.hold", x=chain.add("fig.short_length", n=6))
    run = cl.Runner(chain)
    run.start()
    try:
        assert inside.wait(10)
        s = run.status()
        assert s.state == "running" and (s.done, s.total) == (4, 3)  # past the stated length
        assert states(s) == {"short_length": "running", "hold": "running"}
    finally:
        release.set()
    final = run.wait(10)
    assert final.state == "completed" and (final.done, final.total) == (6, 6)
    assert states(final) == {"short_length": "done", "hold": "done"}
