"""``await run`` / ``Runner.wait_async``: the result, the timeout, and a kernel's Interrupt."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import pytest

import chainlib as cl
from tests.conftest import Gates, gated_chain


def test_wait_async_returns_the_final_status_and_times_out(gates: Gates) -> None:
    run = cl.Runner(gated_chain(2))
    assert asyncio.run(run.wait_async()).state == "idle"  # nothing to wait for
    run.start()
    gates.wait_entered()
    with pytest.raises(asyncio.TimeoutError, match=r"still active after 0\.3 s"):
        asyncio.run(run.wait_async(timeout=0.3))
    assert run.status().state == "running"  # a timeout ends the wait, not the run
    gates.release.set()

    async def awaited() -> cl.Status:
        return await run

    final = asyncio.run(awaited())
    assert final.state == "completed" and final == run.status()


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM timers")
def test_a_cancel_scheduled_by_a_signal_handler_ends_the_wait_at_once(gates: Gates) -> None:
    # ipykernel's Interrupt of an awaiting cell (`await run`): its SIGINT handler schedules the
    # cancellation with tornado's add_callback on the loop's own thread, a plain call_soon that
    # does not wake a loop asleep in select(). wait_async slept until the run ended (the cell then
    # said CancelledError about a completed run); it must wake often enough to see it.
    run = cl.Runner(gated_chain(1))
    run.start()
    gates.wait_entered()
    watchdog = threading.Timer(5.0, gates.release.set)  # the run ends after 5 s in any case
    watchdog.start()

    async def interrupted() -> float:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(run.wait_async())

        def on_alarm(*_: object) -> None:
            loop.call_soon(task.cancel)  # as from a signal handler: no wake-up

        previous = signal.signal(signal.SIGALRM, on_alarm)
        try:
            await asyncio.sleep(0.05)  # the task is now waiting for the run
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            started = time.monotonic()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.monotonic() - started
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    try:
        took = asyncio.run(interrupted())
        assert took < 1.0, f"the cancel took effect after {took:.1f} s"
        assert run.status().state == "running"  # the run goes on (the panel can stop it)
    finally:
        gates.release.set()
        watchdog.cancel()
    assert run.wait(10).state == "completed"
