"""Adversarial, randomized interleavings of commands against runs of random chains.

Hypothesis drives a state machine that fires random command sequences from several threads at
once (a barrier releases them together) while the run is working, and checks the Runner's
invariants after every step, from the acks, the status snapshots, the event stream and a log of
every node execution.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import chainlib as cl
from chainlib.run.status import FINISHED_STATES, STATES

_log_lock = threading.Lock()
_executions: list[tuple[str, str, int | None]] = []


@cl.node("hyp.work")
def work(
    ctx: cl.Context,
    x: int,
    fail_every: int = 0,
    fail_rem: int = 0,
    sleep_s: float = 0.0,
    checkpoints: int = 0,
) -> int:
    with _log_lock:
        _executions.append((ctx.run_id, ctx.node, ctx.item))
    for _ in range(checkpoints):
        ctx.checkpoint()
        if sleep_s:
            time.sleep(sleep_s)
    if fail_every and x % fail_every == fail_rem:
        raise ValueError(f"planned failure on {x}")
    return x + 1


@dataclass(frozen=True)
class ChainShape:
    n_items: int
    depth: int
    workers: int
    on_error: str
    fail_every: int
    sleep_s: float
    checkpoints: int
    collect: bool


shapes = st.builds(
    ChainShape,
    n_items=st.integers(0, 40),
    depth=st.integers(1, 3),
    workers=st.integers(1, 3),
    on_error=st.sampled_from(["stop", "skip"]),
    fail_every=st.sampled_from([0, 0, 3, 7]),
    sleep_s=st.sampled_from([0.0, 0.0005, 0.002]),
    checkpoints=st.integers(0, 3),
    collect=st.booleans(),
)

commands = st.sampled_from(["start", "pause", "resume", "stop"])


def build(shape: ChainShape) -> cl.Chain:
    chain = cl.Chain()
    prev: Any = chain.add("core.range", n=shape.n_items)
    for i in range(shape.depth):
        last = i == shape.depth - 1
        prev = chain.add(
            "hyp.work",
            x=prev,
            fail_every=shape.fail_every if last else 0,
            fail_rem=1 + i,
            sleep_s=shape.sleep_s,
            checkpoints=shape.checkpoints,
        )
    if shape.collect:
        chain.add("core.collect", values=prev)
    return chain


class RunnerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.run: cl.Runner | None = None
        self.events: list[cl.Event] = []
        self.acks: list[cl.Ack] = []
        self.fired = 0
        self.snapshots: dict[tuple[str, int], dict[str, Any]] = {}

    @initialize(shape=shapes)
    def setup(self, shape: ChainShape) -> None:
        with _log_lock:
            _executions.clear()
        self.shape = shape
        self.run = cl.Runner(build(shape), workers=shape.workers, on_error=shape.on_error)
        self.sub = self.run.subscribe(self.events.append, maxlen=10_000_000)

    @rule(batch=st.lists(commands, min_size=1, max_size=4))
    def fire_concurrently(self, batch: list[str]) -> None:
        assert self.run is not None
        barrier = threading.Barrier(len(batch))
        results: list[cl.Ack] = []
        lock = threading.Lock()

        def send(cmd: str) -> None:
            barrier.wait()
            ack = self.run.command(cmd)  # type: ignore[union-attr]
            with lock:
                results.append(ack)

        threads = [threading.Thread(target=send, args=(c,)) for c in batch]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
            assert not t.is_alive(), "a command did not return at once"
        self.fired += len(batch)
        assert len(results) == len(batch), "every command is acknowledged"
        for ack in results:
            assert ack.status.state in STATES
            assert ack.reason
            if not ack.accepted:
                assert ack.command in ("start", "pause", "resume", "stop")
        self.acks.extend(results)

    @rule(ms=st.sampled_from([0, 1, 5, 20]))
    def let_it_work(self, ms: int) -> None:
        time.sleep(ms / 1000)

    @rule()
    def settle_a_pause(self) -> None:
        """If a pause is pending, it must settle: every node reaches a checkpoint or finishes.

        (A node suspended at ``ctx.checkpoint()`` stays in ``current``; that no node *starts*
        while paused is checked on the event stream in teardown.)
        """
        assert self.run is not None
        deadline = time.monotonic() + 10
        while self.run.status().state == "pausing":
            assert time.monotonic() < deadline, "pausing never became paused"
            time.sleep(0.001)

    @invariant()
    def snapshot_is_consistent(self) -> None:
        if self.run is None:
            return
        s = self.run.status()
        assert s.state in STATES
        if s.total is not None:
            assert 0 <= s.done + s.failed <= s.total
        if s.state == "completed":
            assert s.total is not None and s.done + s.failed == s.total
        # every figure is true in the state shown
        if s.state != "running":
            assert s.rate is None and s.eta is None, s
        if s.state == "paused":
            assert s.current == () and all(n.state != "running" for n in s.nodes.values()), s
        if s.state in FINISHED_STATES:
            assert s.current == () and s.not_run == s.remaining
            items_over = s.total is not None and s.done + s.failed == s.total
            if not items_over:  # the run ended early: no per-item node says done
                assert all(n.state != "done" for nid, n in s.nodes.items()
                           if not nid.startswith("collect")), s
        else:
            assert s.not_run is None
        assert s.active_s <= s.elapsed
        key = (s.run_id, s.seq)
        d = dict(s.to_dict())
        if key in self.snapshots:
            assert self.snapshots[key] == d, "same (run_id, seq) must be the same snapshot"
        self.snapshots[key] = d

    @invariant()
    def no_item_executed_twice(self) -> None:
        with _log_lock:
            counts = Counter(_executions)
        dup = [k for k, n in counts.items() if n > 1]
        assert not dup, f"executed more than once: {dup[:5]}"

    def teardown(self) -> None:
        if self.run is None:
            return
        run = self.run
        run.stop()
        final = run.wait(20)  # must not hang: every run reaches a final state
        assert final.state in FINISHED_STATES or final.state == "idle"
        self.sub.flush(10)
        self.sub.close()
        events = list(self.events)
        # seq strictly increasing, by one per change, as seen by the subscriber
        seqs = [e.seq for e in events]
        assert seqs == list(range(1, len(seqs) + 1)), "subscriber saw a gap or a reorder"
        assert not events or events[-1].seq == final.seq
        # a node starts only while the run is running: never after pause or stop was accepted
        bad = [e for e in events if e.kind == "node_started" and e.state != "running"]
        assert not bad, f"node started while {bad[0].state}: {bad[0]}"
        # per run: item accounting matches the final snapshot of that run
        by_run: dict[str, Counter[str]] = {}
        last_state: dict[str, str] = {}
        for e in events:
            by_run.setdefault(e.run_id, Counter())[e.kind] += 1
            if e.kind == "state":
                last_state[e.run_id] = e.state
        if final.run_id:
            c = by_run[final.run_id]
            assert c["item_done"] == final.done
            assert c["item_failed"] == final.failed
            assert last_state[final.run_id] == final.state
        # a stop that was accepted while active leads to stopped (or failed, if an item failure
        # under on_error="stop" won the race)
        for run_id, state in last_state.items():
            assert state in FINISHED_STATES, f"run {run_id} ended {state}"
        # every accepted stop was followed by no node start in that run
        stops = [a for a in self.acks if a.command == "stop" and a.accepted and
                 a.status.state == "stopping"]
        for a in stops:
            later = [e for e in events if e.run_id == a.status.run_id and e.seq > a.status.seq
                     and e.kind == "node_started"]
            assert not later, f"node started after stop: {later[0]}"
        assert len(self.acks) == self.fired


RunnerMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRunnerMachine = RunnerMachine.TestCase
