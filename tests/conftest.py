from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

import chainlib as cl
from chainlib import samples
from chainlib.run import lifecycle

if TYPE_CHECKING:
    from chainlib.panel import ControlPanel
    from chainlib.serve import ControlServer
    from tests.panel_wire import Wire
    from tests.served_cli import ServedRun


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll until ``predicate()`` holds (tests wait for states, never sleep fixed times)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.001)


class Gates:
    """Lets a test hold a node inside its body (checkpointing) until released."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def wait_entered(self, n: int = 1, timeout: float = 10.0) -> None:
        for _ in range(n):
            assert self.entered.acquire(timeout=timeout), "node never started"


@pytest.fixture(autouse=True)
def _no_shutdown_left_behind() -> Iterator[None]:
    """The process-wide "shutting down" flag makes every failure a stop: a test that sets it
    must restore it (monkeypatch), or every later test would run in a dying process."""
    yield
    assert lifecycle.shutting_down() is None, "a test left chainlib's shutdown flag set"


@pytest.fixture
def gates() -> Iterator[Gates]:
    g = Gates()

    @cl.node("test.gated")
    def gated(ctx: cl.Context, x: int) -> int:
        with g.lock:
            g.calls.append(x)
        g.entered.release()
        while not g.release.is_set():
            ctx.checkpoint()
            time.sleep(0.001)
        return x

    yield g
    g.release.set()


def gated_chain(n: int = 3) -> cl.Chain:
    chain = cl.Chain()
    src = chain.add("core.range", n=n)
    chain.add("test.gated", x=src)
    return chain


@pytest.fixture(scope="session")
def sample_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled samples (and the corrupt one) generated once; tests copy them."""
    return samples.folder(tmp_path_factory.mktemp("samples"), include_corrupt=True)


def copy_samples(source: Path, dest: Path, *, include_corrupt: bool = False) -> Path:
    shutil.copytree(source, dest, ignore=None if include_corrupt else
                    shutil.ignore_patterns(samples.BROKEN))
    return dest


@pytest.fixture
def inputs(sample_source: Path, tmp_path: Path) -> Path:
    """A private copy of the samples without the corrupt file."""
    return copy_samples(sample_source, tmp_path / "in")


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    """Every message the test's ControlPanels send, captured at ``ControlPanel._send``."""
    from chainlib.panel import ControlPanel
    from tests.panel_wire import Wire

    w = Wire()

    def send(panel: ControlPanel, msg: dict[str, Any], buffers: Any = None) -> None:
        w.record(panel, msg, buffers)

    monkeypatch.setattr(ControlPanel, "_send", send)
    yield w


@pytest.fixture
def panels(gates: Gates) -> Iterator[list[ControlPanel]]:
    """Panels made by the test; closed (and their runs stopped) afterwards."""
    made: list[ControlPanel] = []
    yield made
    for p in made:
        p.close()
        p.runner.stop()


@pytest.fixture
def gated_run(gates: Gates) -> Iterator[cl.Runner]:
    """A run of three gated items (held by ``gates``), stopped and released afterwards."""
    run = cl.Runner(gated_chain(3))
    yield run
    run.stop()
    gates.release.set()
    run.wait(10)


@pytest.fixture
def server(gated_run: cl.Runner) -> Iterator[ControlServer]:
    """A control server for ``gated_run`` (heartbeats every 0.2 s), closed afterwards."""
    from chainlib.serve import serve

    srv = serve(gated_run, announce=None, heartbeat_interval=0.2)
    yield srv
    srv.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedRun]:
    """A ``chainlib run --serve`` process over a long chain of ticks; killed afterwards."""
    from tests.serve_nodes import tick_chain
    from tests.served_cli import ServedRun

    chain = tmp_path / "ticks.json"
    tick_chain(items=100_000, ms=20).save(chain)
    run = ServedRun(chain)
    yield run
    if run.proc.poll() is None:
        run.proc.kill()
        run.proc.wait(10)


# -- sample media (the upscale and video tests) ------------------------------------------------

VIDEO_FRAMES = 48
"""Frames in the ``clip`` fixture's sample video."""


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def clip(media: Path) -> str:
    return str(samples.video(media / "clip.mp4", frames=VIDEO_FRAMES))


@pytest.fixture(scope="module")
def x2(media: Path) -> str:
    return str(samples.model(media / "x2.onnx", scale=2))


def decode(path: str | Path) -> list[Any]:
    """Every frame of a video file, as RGB arrays."""
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


@pytest.fixture
def image_limit() -> Iterator[Callable[[float], None]]:
    """``image_limit(mb)`` sets the per-image memory limit for this test; the default is back
    after it."""
    from chainlib import memory

    yield memory.set_max_image_mb
    memory.set_max_image_mb(None)


T = TypeVar("T")


def run_loop(main: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """``asyncio.run(main())`` on a thread of its own, within ``timeout`` s: the browser tests'
    Playwright keeps an event loop running on the main thread for the whole session."""
    box: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            box.append(asyncio.run(main()))  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the event loop did not finish"
    if errors:
        raise errors[0]
    return box[0]
