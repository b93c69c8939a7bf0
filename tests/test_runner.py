from __future__ import annotations

import asyncio
import threading
import time

import pytest

import chainlib as cl
from tests.conftest import Gates, gated_chain, run_loop, wait_until


def sum_chain(n: int) -> tuple[cl.Chain, cl.NodeHandle]:
    chain = cl.Chain()
    src = chain.add("core.range", n=n)
    total = chain.add("core.collect", values=src)
    return chain, total


def test_idle_status_before_start() -> None:
    chain, _ = sum_chain(3)
    run = cl.Runner(chain)
    s = run.status()
    assert (s.state, s.seq, s.run_id, s.done, s.failed, s.total) == ("idle", 0, "", 0, 0, None)
    assert run.wait(0) == s


def test_completes_and_collects_in_order_with_many_workers() -> None:
    @cl.node("t.jitter")
    def jitter(x: int) -> int:
        time.sleep(0.0005 * (x % 3))
        return x * 10

    chain = cl.Chain()
    src = chain.add("core.range", n=40)
    col = chain.add("core.collect", values=chain.add("t.jitter", x=src))
    run = cl.Runner(chain, workers=4)
    assert run.start().accepted
    s = run.wait(10)
    assert (s.state, s.done, s.failed, s.total) == ("completed", 40, 0, 40)
    assert run.result(col) == [x * 10 for x in range(40)]
    assert s.nodes["jitter"].count == 40
    assert s.nodes["jitter"].state == "done"
    assert s.nodes["jitter"].mean_s > 0
    assert s.current == ()


def test_work_runs_off_the_callers_thread() -> None:
    seen: list[str] = []

    @cl.node("t.where")
    def where(x: int) -> int:
        seen.append(threading.current_thread().name)
        return x

    chain = cl.Chain()
    chain.add("t.where", x=chain.add("core.range", n=3))
    run = cl.Runner(chain, workers=2)
    run.start()
    run.wait(10)
    assert seen and threading.current_thread().name not in seen


def test_pause_resume_stop(gates: Gates) -> None:
    run = cl.Runner(gated_chain(3))
    run.start()
    gates.wait_entered()
    ack = run.pause()
    assert ack.accepted and ack.status.state == "pausing"
    wait_until(lambda: run.status().state == "paused", what="paused")
    s = run.status()
    # parked inside the node, at its checkpoint: in flight, but nothing executes
    assert s.current == () and (s.nodes["gated"].state, s.nodes["gated"].running) == ("paused", 1)
    assert s.rate is None and s.eta is None
    assert run.pause().reason == "already paused"
    assert run.resume().accepted
    assert run.status().state == "running"
    ack = run.stop()
    assert ack.accepted and ack.status.state == "stopping"
    final = run.wait(10)
    assert final.state == "stopped"
    assert final.done == 0 and final.failed == 0
    assert gates.calls == [0]  # no node started after the stop


def test_stopping_names_the_node_it_waits_for() -> None:
    release = threading.Event()
    started = threading.Event()

    @cl.node("t.stubborn")
    def stubborn(x: int) -> int:  # never checkpoints
        started.set()
        release.wait(10)
        return x

    chain = cl.Chain()
    chain.add("t.stubborn", x=chain.add("core.range", n=5))
    run = cl.Runner(chain)
    run.start()
    assert started.wait(10)
    run.stop()
    s = run.status()
    assert s.state == "stopping" and s.current == ("stubborn",)
    release.set()
    final = run.wait(10)
    assert final.state == "stopped"
    assert final.done == 1  # the item in flight finished; no further item started
    assert final.nodes["stubborn"].count == 1


def test_rejections_name_the_reason(gates: Gates) -> None:
    run = cl.Runner(gated_chain(1))
    for cmd in ("pause", "resume", "stop"):
        ack = run.command(cmd)
        assert not ack.accepted and "idle" in ack.reason
    assert run.status().seq == 0  # a rejected command changes nothing
    assert not run.command("explode").accepted
    run.start()
    gates.wait_entered()
    assert not run.start().accepted
    assert run.resume().reason == "already running"
    gates.release.set()
    assert run.wait(10).state == "completed"
    seq = run.status().seq
    for cmd in ("pause", "resume", "stop"):
        ack = run.command(cmd)
        assert not ack.accepted and "completed" in ack.reason
    assert run.status().seq == seq


def test_stop_while_paused(gates: Gates) -> None:
    run = cl.Runner(gated_chain(3), workers=2)
    run.start()
    gates.wait_entered(2)
    run.pause()
    wait_until(lambda: run.status().state == "paused")
    assert run.stop().accepted
    assert run.wait(10).state == "stopped"
    assert sorted(gates.calls) == [0, 1]
    assert run.stop().reason == "already stopped"


def test_resume_cancels_a_pending_pause(gates: Gates) -> None:
    run = cl.Runner(gated_chain(2))
    run.start()
    gates.wait_entered()
    run.pause()
    run.resume()
    gates.release.set()
    s = run.wait(10)
    assert s.state == "completed" and s.done == 2


def test_pause_between_items_blocks_new_nodes() -> None:
    started: list[int] = []

    @cl.node("t.quick")
    def quick(x: int) -> int:
        started.append(x)
        time.sleep(0.002)
        return x

    chain = cl.Chain()
    chain.add("t.quick", x=chain.add("core.range", n=500))
    run = cl.Runner(chain, workers=2)
    run.start()
    wait_until(lambda: len(started) >= 3)
    run.pause()
    wait_until(lambda: run.status().state == "paused")
    frozen = len(started)
    time.sleep(0.05)
    assert len(started) == frozen
    assert run.status().current == ()
    run.stop()
    assert run.wait(10).state == "stopped"


def test_restart_gets_a_new_run_id_and_seq_keeps_growing() -> None:
    chain, col = sum_chain(3)
    run = cl.Runner(chain)
    run.start()
    first = run.wait(10)
    run.start()
    second = run.wait(10)
    assert first.run_id != second.run_id
    assert second.seq > first.seq
    assert second.done == 3
    assert run.result(col) == [0, 1, 2]


def test_seq_increases_by_one_per_change_as_seen_by_a_subscriber() -> None:
    chain, _ = sum_chain(20)
    run = cl.Runner(chain, workers=3)
    events: list[cl.Event] = []
    sub = run.subscribe(events.append)
    run.start()
    final = run.wait(10)
    sub.flush(5)
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, final.seq + 1))
    assert events[-1].kind == "state" and events[-1].state == "completed"
    kinds = {e.kind for e in events}
    assert {"state", "node_started", "node_finished", "item_done", "total"} <= kinds


def test_identical_seq_means_identical_snapshot() -> None:
    chain, _ = sum_chain(5)
    run = cl.Runner(chain)
    run.start()
    s = run.wait(10)
    assert run.status() is s or run.status() == s


def test_on_error_skip_counts_failures_and_goes_on() -> None:
    @cl.node("t.picky")
    def picky(x: int) -> int:
        if x % 4 == 1:
            raise ValueError(f"bad item {x}")
        return x

    chain = cl.Chain()
    src = chain.add("core.range", n=12)
    col = chain.add("core.collect", values=chain.add("t.picky", x=src))
    run = cl.Runner(chain, workers=3, on_error="skip")
    run.start()
    s = run.wait(10)
    assert (s.state, s.done, s.failed, s.total) == ("completed", 9, 3, 12)
    assert run.result(col) == [x for x in range(12) if x % 4 != 1]
    assert sorted(f.item for f in s.failures if f.item is not None) == [1, 5, 9]
    assert all(f.node == "picky" and "ValueError: bad item" in f.message for f in s.failures)
    assert s.error is not None and s.error.node == "picky" and "Traceback" in s.error.traceback
    assert s.nodes["picky"].state == "failed"
    d = s.to_dict()
    assert d["failures"][0]["node"] == "picky"


def test_on_error_stop_fails_the_run() -> None:
    @cl.node("t.boom")
    def boom(x: int) -> int:
        if x == 3:
            raise RuntimeError("kaboom")
        return x

    chain = cl.Chain()
    chain.add("t.boom", x=chain.add("core.range", n=100))
    run = cl.Runner(chain)
    run.start()
    s = run.wait(10)
    assert s.state == "failed"
    assert s.failed == 1 and s.done == 3
    assert s.error is not None and (s.error.node, s.error.item) == ("boom", 3)
    assert "kaboom" in s.error.message


def test_failure_outside_items_fails_the_run_with_node_id() -> None:
    @cl.node("t.setup")
    def setup() -> int:
        raise OSError("no disk")

    chain = cl.Chain()
    chain.add("t.setup")
    run = cl.Runner(chain, on_error="skip")
    run.start()
    s = run.wait(10)
    assert s.state == "failed" and s.error is not None
    assert s.error.node == "setup" and "OSError: no disk" in s.error.message


def test_broken_iterator_fails_the_run() -> None:
    @cl.iterator("t.broken_iter")
    def broken(n: int):  # type: ignore[no-untyped-def]
        yield 1
        raise OSError("disk vanished")

    chain = cl.Chain()
    chain.add("core.collect", values=chain.add("t.broken_iter", n=1))
    run = cl.Runner(chain, on_error="skip")
    run.start()
    s = run.wait(10)
    assert s.state == "failed"
    assert s.error is not None and s.error.node == "broken_iter"


def test_lazy_item_failure_is_one_failed_item() -> None:
    def load(i: int) -> int:
        if i == 2:
            raise ValueError("corrupt file 2.png")
        return i

    @cl.iterator("t.lazy_iter", length=lambda n: n)
    def lazy_iter(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            yield cl.Item(cl.Lazy(load, i), label=f"{i}.png")

    chain = cl.Chain()
    col = chain.add("core.collect", values=chain.add("t.lazy_iter", n=5))
    run = cl.Runner(chain, on_error="skip", workers=2)
    run.start()
    s = run.wait(10)
    assert (s.state, s.done, s.failed, s.total) == ("completed", 4, 1, 5)
    assert s.failures[0].label == "2.png" and s.failures[0].node == "lazy_iter"
    assert run.result(col) == [0, 1, 3, 4]


def test_raising_and_slow_subscribers_never_break_or_slow_the_run() -> None:
    chain, _ = sum_chain(2000)
    run = cl.Runner(chain)

    def raising(event: cl.Event) -> None:
        raise RuntimeError("subscriber bug")

    block = threading.Event()
    slow_seen: list[cl.Event] = []

    def slow(event: cl.Event) -> None:
        block.wait()
        slow_seen.append(event)

    bad = run.subscribe(raising)
    lagging = run.subscribe(slow, maxlen=10)
    run.start()
    final = run.wait(10)
    assert final.state == "completed" and final.done == 2000
    block.set()
    lagging.flush(5)
    bad.flush(5)
    assert bad.errors > 0
    gaps = [e for e in slow_seen if e.gap]
    assert gaps, "a full buffer must report the gap"
    # every gap is accounted for: seqs seen plus gaps cover everything up to the last seen
    seen = slow_seen[0].seq - slow_seen[0].gap - 1
    for e in slow_seen:
        assert e.seq == seen + e.gap + 1
        seen = e.seq
    assert slow_seen[-1].seq == final.seq and slow_seen[-1].state == "completed"


def test_progress_and_eta() -> None:
    @cl.node("t.progressing")
    def progressing(ctx: cl.Context, x: int) -> int:
        for i in range(3):
            ctx.progress((i + 1) / 3)
        time.sleep(0.002)
        return x

    chain = cl.Chain()
    chain.add("t.progressing", x=chain.add("core.range", n=20))
    run = cl.Runner(chain)
    events: list[cl.Event] = []
    sub = run.subscribe(events.append)
    run.start()
    wait_until(lambda: run.status().done >= 5)
    s = run.status()
    assert s.eta is not None and s.eta >= 0 and s.rate is not None and s.rate > 0
    run.wait(10)
    sub.flush(5)
    assert any(e.kind == "progress" and e.progress == 1.0 for e in events)
    assert run.status().nodes["progressing"].progress == 1.0


def test_eta_excludes_paused_time(gates: Gates) -> None:
    run = cl.Runner(gated_chain(4))
    run.start()
    gates.wait_entered()
    run.pause()
    wait_until(lambda: run.status().state == "paused")
    time.sleep(0.2)
    run.resume()
    gates.release.set()
    s = run.wait(10)
    # elapsed is wall-clock (the pause included), active_s leaves the pause out
    assert s.elapsed >= 0.2 and s.active_s <= s.elapsed - 0.2
    assert s.rate is None and s.eta is None  # given only while running


def test_wait_timeout_and_async_wait(gates: Gates) -> None:
    run = cl.Runner(gated_chain(1))
    run.start()
    with pytest.raises(TimeoutError):
        run.wait(0.01)

    async def main() -> cl.Status:
        asyncio.get_running_loop().call_later(0.05, gates.release.set)
        return await run

    assert run_loop(main, timeout=10).state == "completed"


def test_command_acks_are_thread_safe(gates: Gates) -> None:
    run = cl.Runner(gated_chain(50), workers=3)
    run.start()
    acks: list[cl.Ack] = []
    lock = threading.Lock()

    def hammer(cmds: list[str]) -> None:
        for c in cmds * 50:
            a = run.command(c)
            with lock:
                acks.append(a)

    threads = [threading.Thread(target=hammer, args=(c,)) for c in
               (["pause", "resume"], ["resume", "pause"], ["pause"], ["resume"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(acks) == 300
    assert all(a.status.state in ("running", "pausing", "paused") for a in acks)
    run.stop()
    assert run.wait(10).state == "stopped"


def test_state_mirror_follows_status() -> None:
    chain, _ = sum_chain(50)
    run = cl.Runner(chain)
    mirror = run.state
    seen: list[int] = []
    mirror.observe(lambda ch: seen.append(ch["new"]), names="seq")
    run.start()
    final = run.wait(10)
    wait_until(lambda: mirror.seq == final.seq, what="mirror caught up")
    assert mirror.state == "completed" and mirror.done == 50 and mirror.total == 50
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_interrupt_during_wait_stops_the_run(gates: Gates) -> None:
    import _thread

    run = cl.Runner(gated_chain(3))
    run.start()
    gates.wait_entered()
    timer = threading.Timer(0.05, _thread.interrupt_main)  # what Ctrl-C / a kernel interrupt does
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        run.wait(10)
    timer.join()
    assert run.status().state == "stopped"
    assert gates.calls == [0]


@pytest.mark.parametrize(("start", "step", "expected"), [
    (5, 0, [5, 5, 5]),          # "n integers: start, start+step, ...": n copies, not a crash
    (0, -2, [0, -2, -4]),
    (10**20, 1, [10**20, 10**20 + 1, 10**20 + 2]),
])
def test_core_range_yields_n_integers_whatever_the_step(start: int, step: int,
                                                          expected: list[int]) -> None:
    chain = cl.Chain()
    col = chain.add("core.collect", values=chain.add("core.range", n=3, start=start, step=step))
    run = cl.Runner(chain)
    run.start()
    s = run.wait(10)
    assert (s.state, s.done, s.total, s.error) == ("completed", 3, 3, None)
    assert run.result(col) == expected


def test_core_range_beyond_the_platforms_sizes_counts_and_stops() -> None:
    # len(range(...)) raises OverflowError above sys.maxsize: the run used to fail at once
    chain = cl.Chain()
    chain.add("core.range", n=10**20)
    run = cl.Runner(chain)
    run.start()
    wait_until(lambda: run.status().done >= 3 or run.status().state != "running")
    assert (run.status().state, run.status().total) == ("running", 10**20)
    run.stop()
    s = run.wait(10)
    assert (s.state, s.error) == ("stopped", None)
