"""Interpreter / kernel shutdown: nothing raised during teardown is a failure, and every active
run is stopped with the reason (issue 9)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import chainlib as cl
from chainlib.run import lifecycle
from tests.conftest import Gates, gated_chain, wait_until

REASON = lifecycle.INTERPRETER_REASON


@pytest.fixture
def teardown(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """An event that, once set, means "the interpreter tears down": the flag is set and the
    nodes below raise as teardown makes user code raise. Restored after the test."""
    monkeypatch.setattr(lifecycle, "_reason", None)
    torn = threading.Event()

    def begin() -> None:
        monkeypatch.setattr(lifecycle, "_reason", REASON)
        torn.set()

    torn.begin = begin  # type: ignore[attr-defined]
    yield torn


@cl.node("life.victim")
def victim(ctx: cl.Context, x: int, torn: threading.Event) -> int:
    for _ in range(3):
        ctx.checkpoint()
        if torn.is_set():
            raise NameError("name 'time' is not defined")  # as after IPython cleared globals
        time.sleep(0.002)
    return x


@pytest.mark.parametrize(("workers", "on_error"), [(1, "stop"), (3, "stop"), (2, "skip")])
def test_a_failure_during_teardown_is_a_stop(teardown: threading.Event, workers: int,
                                             on_error: str) -> None:
    chain = cl.Chain()
    chain.add("core.collect", values=chain.add("life.victim", x=chain.add("core.range", n=500),
                                               torn=teardown))
    run = cl.Runner(chain, workers=workers, on_error=on_error)  # type: ignore[arg-type]
    run.start()
    wait_until(lambda: run.status().done >= 5, what="5 items done")
    teardown.begin()  # type: ignore[attr-defined]
    final = run.wait(10)
    assert final.state == "stopped" and final.reason == REASON
    assert final.failed == 0 and final.failures == () and final.error is None
    assert final.nodes["victim"].state == "stopped"  # not "failed"
    assert final.not_run == 500 - final.done > 0  # the items cut short are not run, not failed


def test_a_once_node_failing_during_teardown_is_a_stop(teardown: threading.Event) -> None:
    @cl.node("life.pre")
    def pre() -> int:
        raise NameError("name 'os' is not defined")

    chain = cl.Chain()
    chain.add("life.victim", x=chain.add("core.range", n=3, start=chain.add("life.pre")),
              torn=teardown)
    teardown.begin()  # type: ignore[attr-defined]
    run = cl.Runner(chain)
    run.start()
    final = run.wait(10)
    assert (final.state, final.reason, final.error) == ("stopped", REASON, None)
    assert final.nodes["pre"].state != "failed" and final.failures == ()


def test_an_iterator_failing_during_teardown_is_a_stop(teardown: threading.Event) -> None:
    @cl.iterator("life.source")
    def source(torn: threading.Event) -> Iterator[int]:
        for i in range(100):
            if torn.is_set():
                raise NameError("name 'Path' is not defined")
            time.sleep(0.002)
            yield i

    chain = cl.Chain()
    chain.add("core.constant", value=chain.add("life.source", torn=teardown))
    run = cl.Runner(chain, workers=2)
    run.start()
    wait_until(lambda: run.status().done >= 3, what="3 items done")
    teardown.begin()  # type: ignore[attr-defined]
    final = run.wait(10)
    assert (final.state, final.reason, final.failed, final.error) == ("stopped", REASON, 0, None)


def test_shutdown_stops_every_active_run_without_a_panel(
        monkeypatch: pytest.MonkeyPatch, gates: Gates) -> None:
    monkeypatch.setattr(lifecycle, "_reason", None)
    running, paused, done = (cl.Runner(gated_chain(5)) for _ in range(3))
    done.start()
    gates.release.set()
    done.wait(10)
    gates.release.clear()  # type: ignore[attr-defined]
    running.start()
    paused.start()
    gates.wait_entered(2)
    paused.pause()
    wait_until(lambda: paused.status().state == "paused", what="paused")
    lifecycle.begin_shutdown("kernel shutting down")  # returns once they have stopped
    for run in (running, paused):
        s = run.status()
        assert (s.state, s.reason) == ("stopped", "kernel shutting down")
    assert done.status().state == "completed"
    assert lifecycle.shutting_down() == "kernel shutting down"
    lifecycle.begin_shutdown("interpreter shutting down")  # the first reason stays
    assert lifecycle.shutting_down() == "kernel shutting down"
    assert not list(lifecycle._active)  # ended runs leave the registry


def test_a_script_that_exits_mid_run_ends_it_stopped(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent("""
        import atexit, json, time

        run = None

        def report():  # registered before chainlib's own hook: runs after it
            s = run.status()
            print("FINAL", json.dumps([s.state, s.reason, s.failed]))

        atexit.register(report)
        import chainlib as cl

        @cl.node("script.forever")
        def forever(ctx: cl.Context, x: int) -> int:
            for _ in range(1000):
                ctx.checkpoint()
                time.sleep(0.005)
            return x

        chain = cl.Chain()
        src = chain.add("core.range", n=100)
        chain.add("script.forever", x=src)
        run = cl.Runner(chain, workers=2)
        run.start()
        while run.status().state != "running":
            time.sleep(0.01)
        # the script ends here, the run still going
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("FINAL"))
    assert line == 'FINAL ["stopped", "interpreter shutting down", 0]', out.stdout
