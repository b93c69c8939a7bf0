"""Run a control server (uvicorn on its own thread) beside a run: :func:`serve`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import sys
import threading
import time
import warnings
from typing import Any, Final, TextIO

from .app import build_app
from .gallery import GalleryCache
from .hub import CLOSED_REASON, Controllable, Hub, ServeFaults
from .page import load_page
from .security import AuthMiddleware, Receive, Scope, Send, is_loopback, new_token, send_json

__all__ = ["ControlServer", "serve"]

STALL_GRACE: Final = 0.5
"""Seconds a closing server gives its event streams to end before it drops those whose clients
stopped reading."""


class _Faults:
    """Fault-injection layer: during a cut every request gets a 503 (as if the link were down)."""

    def __init__(self, app: Any, hub: Hub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.hub.cutting:
            await send_json(send, 503, {"error": "connection cut (fault injection)"})
            return
        await self.app(scope, receive, send)


class ControlServer:
    """A running control server. ``url`` (with the token) opens the page and attaches clients.

    Use :func:`serve` (or ``Runner.serve``) to make one; :meth:`close` stops it (the run goes on).
    """

    def __init__(self, hub: Hub, server: Any, thread: threading.Thread,
                 loop: asyncio.AbstractEventLoop, *, host: str, port: int, token: str,
                 url_host: str, gallery: GalleryCache | None = None) -> None:
        self._hub = hub
        self._gallery = gallery
        self._server = server
        self._thread = thread
        self._loop = loop
        self.host = host
        self.port = port
        self.token = token
        self.base_url = f"http://{url_host}:{port}"
        self.url = f"{self.base_url}/?token={token}"
        """The address to open or attach to, token included (keep it secret)."""

    @property
    def hub(self) -> Hub:
        """The snapshot fan-out (its counters are handy in tests and benchmarks)."""
        return self._hub

    @property
    def gallery(self) -> GalleryCache | None:
        """The ``/gallery`` cache (None when the server shows no gallery); its ``encodes``
        counter is handy in tests."""
        return self._gallery

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def cut(self, seconds: float) -> None:
        """Test-only (needs ``fault_injection``): drop every event stream now and answer every
        request with 503 for ``seconds``, as if the network were down."""
        if self._hub.faults is None:
            raise RuntimeError("cut() needs a server started with fault_injection=ServeFaults()")
        self._loop.call_soon_threadsafe(self._hub.cut, float(seconds))

    def close(self, timeout: float = 5.0, reason: str = CLOSED_REASON) -> None:
        """End every stream and stop the server (idempotent). The run itself is not touched.
        Each stream's last event is a goodbye naming ``reason`` (the page then says the server
        closed, not that the connection was lost)."""
        self._hub.close(reason)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            with contextlib.suppress(RuntimeError, concurrent.futures.TimeoutError):
                asyncio.run_coroutine_threadsafe(self._drop_stalled(), self._loop).result(
                    STALL_GRACE + 1.0)
        self._server.should_exit = True
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    async def _drop_stalled(self) -> None:
        """After the goodbye, abort the connections of streams that still have not ended: their
        clients stopped reading (a suspended process, a laptop asleep at the end of a tunnel), so
        their sends wait for ever. Left alone they held the shutdown for uvicorn's graceful
        timeout, which then cancelled them with an 'Exception in ASGI application' traceback."""
        deadline = time.monotonic() + STALL_GRACE
        while self._hub.streams and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if not self._hub.streams:
            return
        state = getattr(self._server, "server_state", None)
        for connection in list(getattr(state, "connections", ())):
            cycle = getattr(connection, "cycle", None)
            transport = getattr(connection, "transport", None)
            if cycle is not None and not cycle.response_complete and transport is not None:
                transport.abort()  # the send returns (uvicorn drops a closed client's data)

    def __enter__(self) -> ControlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "closed"
        return f"<ControlServer {self.base_url} {state}>"


def _bind(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


def serve(
    runner: Controllable,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    allow_remote: bool = False,
    token: str | None = None,
    title: str | None = None,
    max_rate: float = 10.0,
    heartbeat_interval: float = 1.0,
    retry_ms: int = 500,
    pull_interval: float = 5.0,
    gallery: bool = True,
    refuse_start: str | None = None,
    fault_injection: ServeFaults | None = None,
    announce: TextIO | None = sys.stderr,
) -> ControlServer:
    """Start an HTTP control server for ``runner`` on its own thread and return it at once.

    Routes: ``GET /`` (the control panel page), ``GET /status``, ``GET /events`` (SSE),
    ``POST /commands``, ``GET /info``, ``GET /gallery``; see :mod:`chainlib.serve`.
    ``port=0`` picks a free port. A random ``token`` (unless given) guards every route. Binding
    an address other than loopback needs ``allow_remote=True`` and warns (anyone who can reach
    it and has the token controls the run; plain HTTP is not encrypted). ``max_rate`` caps
    status events per second per stream; ``heartbeat_interval`` is the longest silence on a
    stream; ``retry_ms`` is the reconnect delay sent to clients. ``gallery``: keep the newest
    finished items' images (as the notebook panel does, see
    :meth:`~chainlib.Runner.enable_preview`) and show them on the page; a run without image
    outputs shows none. ``refuse_start``: a reason to reject every ``start`` command with (the
    page's Play included), for a run that its process starts once and ends with, as ``chainlib
    run --serve`` does. ``announce`` gets a line with the URL (None: silent).
    """
    for name, value in (("max_rate", max_rate), ("heartbeat_interval", heartbeat_interval),
                        ("pull_interval", pull_interval)):
        if not (isinstance(value, (int, float)) and 0 < value < float("inf")):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not isinstance(retry_ms, int) or retry_ms < 0:
        raise ValueError(f"retry_ms must be a non-negative integer, got {retry_ms!r}")
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer in 0..65535, got {port!r}")
    loopback = is_loopback(host)
    if not loopback and not allow_remote:
        raise ValueError(
            f"refusing to serve on {host!r}, which is not a loopback address: anyone who can "
            f"reach it could try to control the run. Pass allow_remote=True (CLI: "
            f"--allow-remote) if you mean it, or use an SSH tunnel to 127.0.0.1"
        )
    if token is not None and len(token) < 16:
        raise ValueError("token must be at least 16 characters long")
    import uvicorn  # here: the import is slow and only serving needs it

    sock = _bind(host, port)
    port = sock.getsockname()[1]
    token = token or new_token()
    loop = asyncio.new_event_loop()
    hub = Hub(runner, loop, max_rate=max_rate, heartbeat_interval=heartbeat_interval,
              retry_ms=retry_ms, faults=fault_injection)
    chain = getattr(runner, "chain", None)
    title = title or str(getattr(chain, "name", "") or "chain")
    cache: GalleryCache | None = None
    source = getattr(runner, "gallery", None)
    enable = getattr(runner, "enable_preview", None)
    if gallery and callable(source) and callable(enable):  # a RemoteRun keeps no images
        enable()
        cache = GalleryCache(source)
    # the page says `disconnected` after this much silence: three heartbeats, as RemoteRun does
    # (the state machine's 3 s default would flap between heartbeats slower than 1 s)
    disconnect_after = max(3.0, 3 * heartbeat_interval)
    info = {"title": title, "heartbeat_interval": heartbeat_interval, "retry_ms": retry_ms,
            "pull_interval": pull_interval, "disconnect_after": disconnect_after,
            "gallery": cache is not None}
    page, static = load_page(info, token)
    app: Any = build_app(hub, runner, info=info, page=page, static=static, gallery=cache,
                         refuse_start=refuse_start)
    app = AuthMiddleware(app, token=token, port=port, check_host=loopback)
    if fault_injection is not None:
        app = _Faults(app, hub)
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", access_log=False, lifespan="off",
        loop="asyncio", http="h11", ws="none", proxy_headers=False, server_header=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    started = threading.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.005)
        started.set()
        await task

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # SystemExit from a failed startup included
            failure.append(exc)
        finally:
            started.set()
            hub.close()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            sock.close()

    thread = threading.Thread(target=run, name=f"chainlib-serve-{port}", daemon=True)
    hub.start()
    thread.start()
    if not started.wait(10.0) or failure or not server.started:
        server.should_exit = True
        hub.close()
        reason = f": {failure[0]!r}" if failure else ""
        raise RuntimeError(f"the control server on {host}:{port} did not start{reason}")
    url_host = host if loopback or host not in ("0.0.0.0", "::") else socket.gethostname()
    if ":" in url_host:
        url_host = f"[{url_host}]"
    handle = ControlServer(hub, server, thread, loop, host=host, port=port, token=token,
                           url_host=url_host, gallery=cache)
    if not loopback:
        message = (f"the control server listens on {host}:{port}, beyond this machine: anyone "
                   f"who can reach it and has the token controls the run, over plain "
                   f"(unencrypted) HTTP")
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        if announce is not None:
            print(f"chainlib: WARNING: {message}", file=announce, flush=True)
    if announce is not None:
        print(f"chainlib: control server for {title!r} at {handle.url}", file=announce,
              flush=True)
    return handle
