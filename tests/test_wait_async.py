"""``await run`` / ``Runner.wait_async``: the result, the timeout, and a kernel's Interrupt."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import chainlib as cl
from tests.conftest import Gates, gated_chain, run_loop


def test_wait_async_returns_the_final_status_and_times_out(gates: Gates) -> None:
    run = cl.Runner(gated_chain(2))
    assert run_loop(run.wait_async).state == "idle"  # nothing to wait for
    run.start()
    gates.wait_entered()
    with pytest.raises(asyncio.TimeoutError, match=r"still active after 0\.3 s"):
        run_loop(lambda: run.wait_async(timeout=0.3))
    assert run.status().state == "running"  # a timeout ends the wait, not the run
    gates.release.set()

    async def awaited() -> cl.Status:
        return await run

    final = run_loop(awaited)
    assert final.state == "completed" and final == run.status()


def test_a_cancel_scheduled_without_waking_the_loop_ends_the_wait_at_once(gates: Gates) -> None:
    # ipykernel's Interrupt of an awaiting cell (`await run`): its SIGINT handler schedules the
    # cancellation with tornado's add_callback, a plain call_soon that does not wake a loop asleep
    # in select(). wait_async slept until the run ended (the cell then said CancelledError about
    # a completed run); it must wake often enough to see it. A plain call_soon from a timer
    # thread schedules without waking the loop in the same way.
    run = cl.Runner(gated_chain(1))
    run.start()
    gates.wait_entered()
    watchdog = threading.Timer(5.0, gates.release.set)  # the run ends after 5 s in any case
    watchdog.start()

    async def interrupted() -> float:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(run.wait_async())
        await asyncio.sleep(0.05)  # the task is now waiting for the run
        timer = threading.Timer(0.3, lambda: loop.call_soon(task.cancel))  # no wake-up
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.monotonic() - started
        finally:
            timer.cancel()

    try:
        took = run_loop(interrupted)
        assert took < 1.0, f"the cancel took effect after {took:.1f} s"
        assert run.status().state == "running"  # the run goes on (the panel can stop it)
    finally:
        gates.release.set()
        watchdog.cancel()
    assert run.wait(10).state == "completed"
